"""Rewards catalogue and coupons: refusals with reason codes write nothing; a redemption issues one single-use
code; the till redeems it once (store-scoped); a grant is idempotent per key and costs no points."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from crm.errors import ApplicationError
from loyalty.models import Coupon, PointsLedger, Redemption, Reward
from loyalty.services import points_credit, redemption_create, store_upsert
from loyalty.services.coupons import CODE_ALPHABET, CODE_LENGTH, coupon_grant
from loyalty.services.rewards import reward_save

pytestmark = pytest.mark.django_db


def _fund(card, points):
    points_credit(card_id=card.pk, delta=points, kind=PointsLedger.Kind.ADJUST, idempotency_key=f"fund-{card.pk}")
    card.refresh_from_db()


def _nothing_written(card, balance):
    card.refresh_from_db()
    assert card.points_balance == balance
    assert not Redemption.objects.filter(card=card).exists()
    assert not Coupon.objects.filter(card=card).exists()
    assert not PointsLedger.objects.filter(card=card, kind=PointsLedger.Kind.REDEEM).exists()


@pytest.fixture
def coupon_reward(db):
    return reward_save(name="¥20 off", kind="coupon", value_fen=2000, points_cost=100, stock=5, valid_days=30)


def test_redemption_debits_points_takes_stock_and_issues_one_unguessable_code(card, coupon_reward):
    _fund(card, 250)
    redemption, created = redemption_create(card_id=card.pk, reward_id=coupon_reward.pk, idempotency_key="m-1")
    again, created_again = redemption_create(card_id=card.pk, reward_id=coupon_reward.pk, idempotency_key="m-1")
    assert created and not created_again and again.pk == redemption.pk
    card.refresh_from_db()
    coupon_reward.refresh_from_db()
    assert card.points_balance == 150 and coupon_reward.stock == 4
    coupon = Coupon.objects.get(card=card)
    assert coupon.redemption == redemption and coupon.source == "points"
    assert len(coupon.code) == CODE_LENGTH and set(coupon.code) <= set(CODE_ALPHABET)
    assert abs((coupon.expires_at - coupon.issued_at) - timedelta(days=30)) < timedelta(seconds=5)
    ledger = PointsLedger.objects.get(card=card, kind=PointsLedger.Kind.REDEEM)
    assert ledger.delta == -100 and ledger.redemption == redemption


def test_codes_differ_and_are_unique_by_constraint(card, make_contact, coupon_reward):
    codes = {coupon_grant(contact_id=make_contact().pk, reward_id=coupon_reward.pk, source="campaign",
                          idempotency_key=f"c:{n}")[0].code for n in range(4)}  # fmt: skip
    assert len(codes) == 4
    assert Coupon._meta.get_field("code").unique and Coupon._meta.get_field("idempotency_key").unique


@pytest.mark.parametrize(
    "change, code",
    [
        ({"stock": 0}, "out_of_stock"),
        ({"points_cost": 10_000}, "insufficient_points"),
        ({"valid_until": "past"}, "outside_validity"),
        ({"valid_from": "future"}, "outside_validity"),
        ({"is_active": False}, "unknown_reward"),
    ],
)
def test_refusals_have_reason_codes_and_write_nothing(card, coupon_reward, change, code):
    _fund(card, 500)
    now = timezone.now()
    values = {
        k: {"past": now - timedelta(days=1), "future": now + timedelta(days=1)}.get(v, v) for k, v in change.items()
    }
    Reward.objects.filter(pk=coupon_reward.pk).update(**values)
    with pytest.raises(ApplicationError) as info:
        redemption_create(card_id=card.pk, reward_id=coupon_reward.pk, idempotency_key="x-1")
    assert (info.value.code, info.value.field) == (code, "reward")
    _nothing_written(card, 500)


def test_tier_not_eligible(card, tiers, coupon_reward):
    _fund(card, 500)
    card.refresh_from_db()
    other = [t for t in tiers.values() if t.pk != card.tier_id]
    coupon_reward.eligible_tiers.set(other)
    with pytest.raises(ApplicationError) as info:
        redemption_create(card_id=card.pk, reward_id=coupon_reward.pk, idempotency_key="t-1")
    assert info.value.code == "tier_not_eligible"
    _nothing_written(card, 500)
    coupon_reward.eligible_tiers.add(card.tier)
    assert redemption_create(card_id=card.pk, reward_id=coupon_reward.pk, idempotency_key="t-2")[1]


def test_per_customer_limit(card, make_contact, coupon_reward):
    Reward.objects.filter(pk=coupon_reward.pk).update(per_customer_limit=2)
    _fund(card, 1000)
    for n in range(2):
        redemption_create(card_id=card.pk, reward_id=coupon_reward.pk, idempotency_key=f"l-{n}")
    with pytest.raises(ApplicationError) as info:
        redemption_create(card_id=card.pk, reward_id=coupon_reward.pk, idempotency_key="l-3")
    assert (info.value.code, info.value.status_code) == ("over_customer_limit", 409)
    card.refresh_from_db()
    assert card.points_balance == 800 and Coupon.objects.filter(card=card).count() == 2
    # The limit is per card: another customer still redeems.
    from loyalty.services import card_get_or_create

    other = card_get_or_create(make_contact().pk)
    _fund(other, 100)
    assert redemption_create(card_id=other.pk, reward_id=coupon_reward.pk, idempotency_key="l-other")[1]


def test_reward_validation_names_the_field(db):
    with pytest.raises(ApplicationError) as info:
        reward_save(name="Coupon", kind="coupon", points_cost=10)
    assert info.value.field == "value_fen"
    with pytest.raises(ApplicationError) as info:
        reward_save(name="Mug", points_cost=10, per_customer_limit=0)
    assert info.value.field == "per_customer_limit"
    now = timezone.now()
    with pytest.raises(ApplicationError) as info:
        reward_save(name="Mug", points_cost=10, valid_from=now, valid_until=now - timedelta(hours=1))
    assert info.value.field == "valid_until"
    assert not Reward.objects.exists()


# --- grants ---------------------------------------------------------------------------------------------------


def test_grant_is_idempotent_per_source_and_contact_and_costs_no_points(card, coupon_reward):
    key = f"journey:welcome:{card.contact_id}"
    first, created = coupon_grant(contact_id=card.contact_id, reward_id=coupon_reward.pk, source="journey",
                                  idempotency_key=key)  # fmt: skip
    again, created_again = coupon_grant(card_id=card.pk, reward_id=coupon_reward.pk, source="journey",
                                        idempotency_key=key)  # fmt: skip
    assert created and not created_again and first.pk == again.pk
    assert Coupon.objects.filter(card=card).count() == 1
    card.refresh_from_db()
    coupon_reward.refresh_from_db()
    assert card.points_balance == 0 and coupon_reward.stock == 4 and first.redemption is None
    with pytest.raises(ApplicationError) as info:
        coupon_grant(card_id=card.pk, reward_id=coupon_reward.pk + 999, source="journey", idempotency_key=key)
    assert info.value.field == "idempotency_key"


def test_grant_refuses_an_unknown_source_and_out_of_stock(card, coupon_reward):
    with pytest.raises(ApplicationError) as info:
        coupon_grant(card_id=card.pk, reward_id=coupon_reward.pk, source="points", idempotency_key="g-1")
    assert info.value.field == "source"
    Reward.objects.filter(pk=coupon_reward.pk).update(stock=0)
    with pytest.raises(ApplicationError) as info:
        coupon_grant(card_id=card.pk, reward_id=coupon_reward.pk, source="campaign", idempotency_key="g-2")
    assert info.value.code == "out_of_stock"
    assert not Coupon.objects.exists()


# --- the till --------------------------------------------------------------------------------------------------


def _granted(card, reward, key="g"):
    return coupon_grant(card_id=card.pk, reward_id=reward.pk, source="campaign", idempotency_key=key)[0]


def test_till_redeems_a_coupon_once(cashier_client, card, store, coupon_reward):
    coupon = _granted(card, coupon_reward)
    first = cashier_client.post(
        "/api/loyalty/coupons/redeem", {"code": coupon.code, "store": store.code}, format="json"
    )
    assert first.status_code == 200, first.content
    assert first.json()["reward"] == "¥20 off" and first.json()["store"] == store.code
    second = cashier_client.post(
        "/api/loyalty/coupons/redeem", {"code": coupon.code, "store": store.code}, format="json"
    )
    assert second.status_code == 409 and second.json()["error"]["code"] == "coupon_redeemed"
    coupon.refresh_from_db()
    assert coupon.redeemed_at is not None and coupon.redeemed_store == store


def test_till_refuses_expired_unknown_and_other_store(cashier_client, card, store, coupon_reward):
    coupon = _granted(card, coupon_reward)
    Coupon.objects.filter(pk=coupon.pk).update(expires_at=timezone.now() - timedelta(minutes=1))
    response = cashier_client.post(
        "/api/loyalty/coupons/redeem", {"code": coupon.code, "store": store.code}, format="json"
    )
    assert response.status_code == 410 and response.json()["error"]["code"] == "coupon_expired"
    fresh = _granted(card, coupon_reward, key="g2")
    other = store_upsert(code="store-bj-009", name="Beijing", city="Beijing")
    response = cashier_client.post(
        "/api/loyalty/coupons/redeem", {"code": fresh.code, "store": other.code}, format="json"
    )
    assert response.status_code == 403 and response.json()["error"]["code"] == "store_forbidden"
    response = cashier_client.post("/api/loyalty/coupons/redeem", {"code": fresh.code, "store": "nope"}, format="json")
    assert response.status_code == 400 and response.json()["error"]["code"] == "store_unknown"
    response = cashier_client.post(
        "/api/loyalty/coupons/redeem", {"code": "A" * 16, "store": store.code}, format="json"
    )
    assert response.status_code == 404 and response.json()["error"]["code"] == "coupon_unknown"
    assert not Coupon.objects.filter(redeemed_at__isnull=False).exists()


def test_till_redeem_needs_a_cashier(plain_client, staff_client, card, store, coupon_reward):
    coupon = _granted(card, coupon_reward)
    for client in (plain_client, staff_client):
        response = client.post("/api/loyalty/coupons/redeem", {"code": coupon.code, "store": store.code}, format="json")
        assert response.status_code == 403
    coupon.refresh_from_db()
    assert coupon.redeemed_at is None


# --- staff API -----------------------------------------------------------------------------------------------


def test_catalogue_api_writes_through_the_service(admin_client_api, staff_client, tiers):
    gold = tiers["Gold"] if "Gold" in tiers else next(iter(tiers.values()))
    body = {"name": "Tote bag", "kind": "gift", "points_cost": 300, "stock": 10, "per_customer_limit": 1,
            "valid_days": 60, "eligible_tiers": [gold.pk]}  # fmt: skip
    response = admin_client_api.post("/api/loyalty/catalogue", body, format="json")
    assert response.status_code == 201, response.content
    assert response.json()["eligible_tiers"] == [gold.pk]
    bad = admin_client_api.post("/api/loyalty/catalogue", {**body, "kind": "coupon"}, format="json")
    assert bad.status_code == 400 and bad.json()["error"]["field"] == "value_fen"
    assert staff_client.post("/api/loyalty/catalogue", body, format="json").status_code == 403
    assert staff_client.get("/api/loyalty/catalogue").status_code == 200
    reward_id = response.json()["id"]
    changed = admin_client_api.put(f"/api/loyalty/catalogue/{reward_id}", {**body, "stock": 3}, format="json")
    assert changed.status_code == 200 and changed.json()["stock"] == 3
    assert Reward.objects.count() == 1


def test_grant_api_is_idempotent(admin_client_api, card, coupon_reward):
    body = {
        "card": card.pk,
        "reward": coupon_reward.pk,
        "source": "campaign",
        "idempotency_key": f"cmp:1:{card.contact_id}",
    }
    first = admin_client_api.post("/api/loyalty/coupons/grant", body, format="json")
    second = admin_client_api.post("/api/loyalty/coupons/grant", body, format="json")
    assert (first.status_code, second.status_code) == (201, 200)
    assert first.json()["id"] == second.json()["id"] and Coupon.objects.count() == 1


def test_the_redemption_api_answers_the_coupon_code_and_the_card_page(cashier_client, card, coupon_reward, store):
    from crm.services.customer_links import card_link
    from loyalty.qr import qr_token_mint

    _fund(card, 300)
    body = {"qr_token": qr_token_mint(card.number).token, "reward": coupon_reward.pk, "idempotency_key": "till-c1",
            "store": store.code}  # fmt: skip
    first = cashier_client.post("/api/loyalty/redemptions", body, format="json")
    again = cashier_client.post("/api/loyalty/redemptions", body, format="json")
    assert (first.status_code, again.status_code) == (201, 200)
    coupon = Coupon.objects.get(card=card)
    answered = first.json()["coupon"]
    assert answered["code"] == coupon.code and answered["id"] == coupon.pk
    assert answered["card_page_url"] == card_link() and answered["expires_at"]
    assert again.json()["coupon"] == answered  # a retry answers the same coupon


def test_the_coupon_endpoints_are_in_openapi(admin_client_api):
    schema = admin_client_api.get("/api/schema/?format=json").json()
    for p in ("/api/loyalty/coupons/redeem", "/api/loyalty/coupons/grant", "/api/loyalty/catalogue"):
        assert p in schema["paths"], p
    components = schema["components"]["schemas"]
    assert "coupon" in components["RedemptionOutput"]["properties"]
    assert {"code", "card_page_url", "expires_at"} <= set(components["RedemptionCoupon"]["properties"])


# --- console -----------------------------------------------------------------------------------------------


@pytest.fixture
def root_client(client, django_user_model):
    client.force_login(django_user_model.objects.create_superuser("root-coupons", password="pw"))
    return client


def test_the_console_catalogue_writes_through_the_service(root_client, tiers):
    from django.urls import reverse

    gold = max(tiers.values(), key=lambda t: t.rank)
    form = {"name": "¥10 off", "kind": "coupon", "points_cost": 80, "stock": 20, "per_customer_limit": 1,
            "valid_days": 14, "eligible_tiers": [gold.pk], "is_active": "on"}  # fmt: skip
    response = root_client.post(reverse("admin:loyalty_reward_add"), form)
    assert response.status_code == 200 and response.context["adminform"].form.errors == {
        "value_fen": ["A coupon or discount needs its value (fen)."]
    }
    assert not Reward.objects.exists()
    assert root_client.post(reverse("admin:loyalty_reward_add"), {**form, "value_fen": 1000}).status_code == 302
    reward = Reward.objects.get()
    assert (reward.kind, reward.value_fen, reward.per_customer_limit) == ("coupon", 1000, 1)
    assert list(reward.eligible_tiers.all()) == [gold]
    assert root_client.get(reverse("admin:loyalty_coupon_changelist")).status_code == 200
