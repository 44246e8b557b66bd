"""Journey steps (issue 12 item 5, "granted by a journey"): when a card is made, makes its first purchase or moves
up into a tier, the active steps grant their coupon without points, once per customer and step, after commit;
out of stock is recorded; the console and the API write through the service."""

from __future__ import annotations

import pytest
from django.urls import reverse

from crm.errors import ApplicationError
from loyalty.models import Coupon, JourneyGrant, JourneyStep, PointsLedger
from loyalty.qr import qr_token_mint
from loyalty.services import card_get_or_create, scan_record
from loyalty.services.journeys import journey_run, journey_step_save
from loyalty.services.rewards import reward_save

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def run_journeys_here(monkeypatch):
    """The task runs in this process (after commit, as the worker would), recording each run's counts."""
    from loyalty import tasks_coupons

    runs: list[dict] = []
    monkeypatch.setattr(tasks_coupons.run_journey, "delay", lambda *args: runs.append(journey_run(*args)))
    return runs


@pytest.fixture
def welcome(db):
    return reward_save(name="¥5 welcome", kind="coupon", value_fen=500, points_cost=10, valid_days=30)


def _scan(card, store, receipt, amount_fen):
    return scan_record(
        qr_token=qr_token_mint(card.number).token, store_code=store.code, receipt_id=receipt, amount_fen=amount_fen
    )


def test_a_step_is_validated_by_field(tiers, welcome):
    gift = reward_save(name="Mug", kind="gift", points_cost=50)
    cases = [
        ({"name": "", "trigger": "card_joined", "reward_id": welcome.pk}, "name"),
        ({"name": "x", "trigger": "birthday_party", "reward_id": welcome.pk}, "trigger"),
        ({"name": "x", "trigger": "card_joined", "reward_id": gift.pk}, "reward"),
        ({"name": "x", "trigger": "card_joined", "reward_id": None}, "reward"),
        ({"name": "x", "trigger": "tier_entered", "reward_id": welcome.pk}, "tier"),
        ({"name": "x", "trigger": "card_joined", "reward_id": welcome.pk, "tier_id": tiers["Gold"].pk}, "tier"),
    ]
    for kwargs, field in cases:
        with pytest.raises(ApplicationError) as refused:
            journey_step_save(**kwargs)
        assert refused.value.field == field, kwargs
    assert not JourneyStep.objects.exists()


def test_joining_grants_the_welcome_coupon_once_after_commit(
    tiers, make_contact, welcome, run_journeys_here, django_capture_on_commit_callbacks
):
    journey_step_save(name="Welcome", trigger="card_joined", reward_id=welcome.pk)
    contact = make_contact()
    with django_capture_on_commit_callbacks(execute=True):
        card = card_get_or_create(contact.pk)
        card_get_or_create(contact.pk)  # opened again: no second card, nothing fired
    assert run_journeys_here == [{"granted": 1}]
    coupon = Coupon.objects.get(card=card)
    assert coupon.source == "journey" and coupon.idempotency_key.startswith("journey:")
    assert not PointsLedger.objects.filter(card=card).exists()  # no points
    # The same moment again (a retried task): one coupon only.
    assert journey_run("card_joined", contact.pk) == {"taken": 1}
    assert Coupon.objects.filter(card=card).count() == 1 and JourneyGrant.objects.count() == 1


def test_first_purchase_and_entering_a_tier_grant_their_steps(
    tiers, card, store, welcome, run_journeys_here, django_capture_on_commit_callbacks
):
    first = journey_step_save(name="First buy", trigger="first_purchase", reward_id=welcome.pk)
    gold = journey_step_save(name="Gold", trigger="tier_entered", tier_id=tiers["Gold"].pk, reward_id=welcome.pk)
    with django_capture_on_commit_callbacks(execute=True):
        _scan(card, store, "J-1", 100_000)  # first purchase; to Silver (no step for Silver)
    assert JourneyGrant.objects.filter(step=first, status="granted").count() == 1
    assert not JourneyGrant.objects.filter(step=gold).exists()
    with django_capture_on_commit_callbacks(execute=True):
        _scan(card, store, "J-2", 400_000)  # not the first; into Gold
    assert JourneyGrant.objects.filter(step=first).count() == 1
    assert JourneyGrant.objects.filter(step=gold, status="granted").count() == 1
    assert Coupon.objects.filter(card=card, source="journey").count() == 2


def test_nothing_is_queued_without_a_step_and_out_of_stock_is_recorded(
    tiers, make_contact, run_journeys_here, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        card_get_or_create(make_contact().pk)
    assert callbacks == [] and run_journeys_here == []
    last_one = reward_save(name="Last", kind="coupon", value_fen=100, points_cost=10, stock=1)
    journey_step_save(name="Scarce", trigger="card_joined", reward_id=last_one.pk)
    with django_capture_on_commit_callbacks(execute=True):
        card_get_or_create(make_contact().pk)
        card_get_or_create(make_contact().pk)
    assert run_journeys_here == [{"granted": 1}, {"out_of_stock": 1}]
    refused = JourneyGrant.objects.get(status="refused")
    assert refused.reason == "out_of_stock" and refused.coupon is None


def test_journey_api_writes_through_the_service(admin_client_api, staff_client, tiers, welcome):
    body = {"name": "Gold welcome", "trigger": "tier_entered", "tier": tiers["Gold"].pk, "reward": welcome.pk}
    created = admin_client_api.post("/api/loyalty/journeys", body, format="json")
    assert created.status_code == 201, created.content
    step_id = created.json()["id"]
    assert created.json()["action"] == "grant_coupon" and created.json()["granted"] == 0
    bad = admin_client_api.post("/api/loyalty/journeys", {**body, "tier": None}, format="json")
    assert bad.status_code == 400 and bad.json()["error"]["field"] == "tier"
    changed = admin_client_api.put(f"/api/loyalty/journeys/{step_id}", {**body, "is_active": False}, format="json")
    assert changed.status_code == 200 and changed.json()["is_active"] is False
    assert admin_client_api.put("/api/loyalty/journeys/999999", body, format="json").status_code == 404
    assert staff_client.post("/api/loyalty/journeys", body, format="json").status_code == 403
    assert [s["id"] for s in admin_client_api.get("/api/loyalty/journeys").json()] == [step_id]
    paths = admin_client_api.get("/api/schema/?format=json").json()["paths"]
    assert "/api/loyalty/journeys" in paths and "/api/loyalty/journeys/{step_id}" in paths


def test_the_console_chooses_a_grant_coupon_step(admin_client, tiers, welcome):
    url = reverse("admin:loyalty_journeystep_add")
    page = admin_client.get(url).content.decode()
    assert 'name="trigger"' in page and 'value="grant_coupon"' in page
    form = {"name": "Silver", "trigger": "tier_entered", "action": "grant_coupon", "reward": welcome.pk,
            "is_active": "on"}  # fmt: skip
    refused = admin_client.post(url, form)
    assert refused.status_code == 200 and "tier" in refused.context["adminform"].form.errors
    assert admin_client.post(url, {**form, "tier": tiers["Silver"].pk}).status_code == 302
    step = JourneyStep.objects.get()
    assert (step.trigger, step.tier, step.reward) == ("tier_entered", tiers["Silver"], welcome)
    assert admin_client.get(reverse("admin:loyalty_journeystep_changelist")).status_code == 200
    assert admin_client.get(reverse("admin:loyalty_journeygrant_changelist")).status_code == 200
