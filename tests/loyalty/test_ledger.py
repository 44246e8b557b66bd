"""The points ledger: append-only, idempotent per key, balance == sum(ledger); manual adjust; redemptions."""

from __future__ import annotations

import pytest
from django.contrib import admin

from crm.errors import ApplicationError, Conflict
from loyalty.models import Card, PointsLedger, Redemption, Reward
from loyalty.qr import qr_token_mint
from loyalty.selectors import card_ledger_sum
from loyalty.services import points_credit, redemption_create

pytestmark = pytest.mark.django_db


def _credit(card, delta=100, key="k1", kind="earn"):
    return points_credit(card_id=card.pk, delta=delta, kind=kind, idempotency_key=key, reason="test")


def test_credit_is_idempotent_per_key(card):
    first = _credit(card)
    assert _credit(card).pk == first.pk
    card.refresh_from_db()
    assert card.points_balance == 100 == card_ledger_sum(card.pk)
    assert PointsLedger.objects.count() == 1


def test_same_key_for_another_movement_is_409(card):
    _credit(card)
    with pytest.raises(Conflict) as info:
        _credit(card, delta=5)
    assert info.value.field == "idempotency_key"


def test_balance_cannot_go_negative(card):
    _credit(card, delta=50)
    with pytest.raises(ApplicationError) as info:
        _credit(card, delta=-51, key="k2", kind="expire")
    assert info.value.code == "insufficient_points"
    card.refresh_from_db()
    assert card.points_balance == 50 and PointsLedger.objects.count() == 1


@pytest.mark.parametrize(
    ("kwargs", "field"), [({"delta": 0}, "delta"), ({"kind": "gift"}, "kind"), ({"key": ""}, "idempotency_key")]
)
def test_bad_credit_names_the_field(card, kwargs, field):
    with pytest.raises(ApplicationError) as info:
        _credit(card, **kwargs)
    assert info.value.field == field


def test_the_key_is_backed_by_a_unique_constraint(card):
    from django.db import IntegrityError, transaction

    entry = _credit(card)
    with pytest.raises(IntegrityError), transaction.atomic():
        PointsLedger.objects.create(
            card=card, delta=1, kind="earn", idempotency_key=entry.idempotency_key, balance_after=1
        )


def test_ledger_is_append_only(card):
    entry = _credit(card)
    entry.delta = 1_000_000
    with pytest.raises(TypeError):
        entry.save()
    with pytest.raises(TypeError):
        entry.delete()
    with pytest.raises(TypeError):
        PointsLedger.objects.filter(pk=entry.pk).update(delta=5)
    with pytest.raises(TypeError):
        PointsLedger.objects.all().delete()
    assert PointsLedger.objects.get(pk=entry.pk).delta == 100


def test_admin_cannot_add_change_or_delete_ledger_rows(rf, admin_user):
    model_admin = admin.site._registry[PointsLedger]
    request = rf.get("/")
    request.user = admin_user
    assert not model_admin.has_add_permission(request)
    assert not model_admin.has_change_permission(request)
    assert not model_admin.has_delete_permission(request)


def test_every_loyalty_model_is_in_the_admin_and_searchable():
    from django.apps import apps

    for model in apps.get_app_config("loyalty").get_models():
        assert model in admin.site._registry, model
        assert admin.site._registry[model].search_fields, model


def test_admin_pages_render(admin_client, card, store, cashier_client):
    cashier_client.post(
        "/api/loyalty/scans",
        {"qr_token": qr_token_mint(card.number).token, "receipt_id": "R-1", "store": store.code, "amount_fen": 500},
        format="json",
    )
    for name in [
        "tier",
        "card",
        "pointsledger",
        "store",
        "purchase",
        "purchaseline",
        "tierchange",
        "reward",
        "redemption",
    ]:
        response = admin_client.get(f"/admin/loyalty/{name}/?q=R-1")
        assert response.status_code == 200, name
    assert admin_client.get(f"/admin/loyalty/card/{card.pk}/change/").status_code == 200


# --- Manual adjust (staff API) ---------------------------------------------------------------------------------


def test_adjust_requires_the_ledger_permission(staff_client, card):
    response = staff_client.post(
        f"/api/loyalty/cards/{card.pk}/adjust", {"delta": 10, "reason": "x", "idempotency_key": "a"}, format="json"
    )
    assert response.status_code == 403


def test_admin_adjust_is_idempotent_and_reevaluates_tier(admin_client_api, card, tiers):
    body = {"delta": 1500, "reason": "store opening gift", "idempotency_key": "open-2026"}
    first = admin_client_api.post(f"/api/loyalty/cards/{card.pk}/adjust", body, format="json")
    again = admin_client_api.post(f"/api/loyalty/cards/{card.pk}/adjust", body, format="json")
    assert first.status_code == 201 and first.json()["id"] == again.json()["id"]
    card = Card.objects.get(pk=card.pk)
    assert card.points_balance == 1500 and card.tier == tiers["Silver"]
    assert PointsLedger.objects.get().created_by is not None


@pytest.mark.parametrize(
    ("body", "status", "field"),
    [
        ({"delta": 0, "reason": "x", "idempotency_key": "a"}, 400, "delta"),
        ({"delta": "ten", "reason": "x", "idempotency_key": "a"}, 400, "delta"),
        ({"delta": -1, "reason": "x", "idempotency_key": "a"}, 400, "delta"),
        ({"delta": 5, "idempotency_key": "a"}, 400, "reason"),
        ({"delta": 5, "reason": "x"}, 400, "idempotency_key"),
    ],
)
def test_adjust_bad_input(admin_client_api, card, body, status, field):
    response = admin_client_api.post(f"/api/loyalty/cards/{card.pk}/adjust", body, format="json")
    assert response.status_code == status and response.json()["error"]["field"] == field
    assert not PointsLedger.objects.exists()


def test_adjust_unknown_card_is_404(admin_client_api, tiers):
    body = {"delta": 5, "reason": "x", "idempotency_key": "a"}
    assert admin_client_api.post("/api/loyalty/cards/999999/adjust", body, format="json").status_code == 404


# --- Redemptions -------------------------------------------------------------------------------------------


@pytest.fixture
def reward(db):
    return Reward.objects.create(name="Tea tasting", points_cost=300, stock=2)


def test_redemption_debits_once_per_key(card, reward):
    _credit(card, delta=1000)
    first, created = redemption_create(card_id=card.pk, reward_id=reward.pk, idempotency_key="till-1")
    again, created_again = redemption_create(card_id=card.pk, reward_id=reward.pk, idempotency_key="till-1")
    assert (created, created_again, again.pk) == (True, False, first.pk)
    card.refresh_from_db()
    reward.refresh_from_db()
    assert card.points_balance == 700 == card_ledger_sum(card.pk) and card.lifetime_points == 1000
    assert reward.stock == 1


def test_redemption_refusals_name_the_field(card, reward):
    with pytest.raises(ApplicationError) as info:
        redemption_create(card_id=card.pk, reward_id=reward.pk, idempotency_key="r1")
    assert (info.value.code, info.value.field) == ("insufficient_points", "reward")
    _credit(card, delta=1000)
    Reward.objects.filter(pk=reward.pk).update(stock=0)
    with pytest.raises(Conflict):
        redemption_create(card_id=card.pk, reward_id=reward.pk, idempotency_key="r2")
    assert not Redemption.objects.exists()


def test_redemption_api_with_the_card_qr(cashier_client, card, reward, store):
    _credit(card, delta=1000)
    body = {
        "qr_token": qr_token_mint(card.number).token,
        "reward": reward.pk,
        "idempotency_key": "till-7",
        "store": store.code,
    }
    first = cashier_client.post("/api/loyalty/redemptions", body, format="json")
    again = cashier_client.post("/api/loyalty/redemptions", body, format="json")
    assert (first.status_code, again.status_code) == (201, 200)
    assert first.json()["points_balance"] == 700 and again.json()["duplicate"] is True
    missing = cashier_client.post(
        "/api/loyalty/redemptions", {"reward": reward.pk, "idempotency_key": "x"}, format="json"
    )
    assert missing.status_code == 400 and missing.json()["error"]["field"] == "qr_token"


def test_redemption_api_needs_a_cashier(plain_client, card, reward):
    body = {"card": card.pk, "reward": reward.pk, "idempotency_key": "k"}
    assert plain_client.post("/api/loyalty/redemptions", body, format="json").status_code == 403
