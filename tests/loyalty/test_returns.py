"""Till returns over HTTP: points of the returned lines reversed once, proportionally; spent points per setting;
every refusal a 4xx with a reason code and nothing written."""

from __future__ import annotations

import itertools

import pytest

from loyalty.models import Card, PointsLedger, PointsLot, PurchaseLine, PurchaseReturn, ReturnLine
from loyalty.qr import qr_token_mint
from loyalty.selectors import card_ledger_sum
from loyalty.services import points_credit, store_upsert
from loyalty.services.lots import lots_open_sum
from loyalty.services.tiers import card_spend_fen

pytestmark = pytest.mark.django_db
_ids = itertools.count(1)

ITEMS = [
    {"sku": "TEA-1", "name": "Tea", "qty": 4, "amount_fen": 40_000},
    {"sku": "CUP-1", "name": "Cup", "qty": 1, "amount_fen": 20_000},
]


def _scan(client, card, store, receipt="R-1", amount=60_000, items=ITEMS):
    response = client.post(
        "/api/loyalty/scans",
        {
            "qr_token": qr_token_mint(card.number).token,
            "store": store.code,
            "receipt_id": receipt,
            "amount_fen": amount,
            "items": items,
        },
        format="json",
    )
    assert response.status_code == 201, response.content
    return response.json()


def _return(client, store, lines, receipt="R-1", return_id=None):
    return client.post(
        "/api/loyalty/returns",
        {"store": store.code, "receipt_id": receipt, "return_id": return_id or f"RT-{next(_ids)}", "lines": lines},
        format="json",
    )


def _balanced(card) -> int:
    card = Card.objects.get(pk=card.pk)
    assert card.points_balance == card_ledger_sum(card.pk)
    assert lots_open_sum(card.pk) == max(card.points_balance, 0)
    return card.points_balance


def test_partial_then_full_return_reverses_exactly_what_the_lines_earned(cashier_client, card, store):
    _scan(cashier_client, card, store)  # 600 points; lines carry no points of their own -> shares by amount
    first = _return(cashier_client, store, [{"sku": "TEA-1", "qty": 1}])
    assert first.status_code == 201, first.content
    body = first.json()
    assert body["points_reversed"] == 100 and body["amount_fen"] == 10_000 and body["shortfall"] == 0
    assert body["balance"] == 500 == _balanced(card)
    rest = _return(cashier_client, store, [{"sku": "TEA-1", "qty": 3}, {"sku": "CUP-1", "qty": 1}]).json()
    assert rest["points_reversed"] == 500 and _balanced(card) == 0
    assert PointsLedger.objects.filter(card=card, kind="return").count() == 2
    # Net spend for tiers (loyalty.services.tiers reads PurchaseReturn.amount_fen).
    assert card_spend_fen(Card.objects.get(pk=card.pk), None) == 0


def test_line_points_from_earning_are_what_is_reversed(cashier_client, card, store):
    _scan(cashier_client, card, store)
    # A multiplier gave the cup 3x: earning writes per-line points (here by hand); the return follows them.
    PurchaseLine.objects.filter(sku="TEA-1").update(points=300)
    PurchaseLine.objects.filter(sku="CUP-1").update(points=300)
    assert _return(cashier_client, store, [{"sku": "CUP-1", "qty": 1}]).json()["points_reversed"] == 300
    # 4 teas earned 300: returning 1, then 1, then 2 takes back 75 + 75 + 150 (cumulative, never over).
    got = [_return(cashier_client, store, [{"sku": "TEA-1", "qty": q}]).json()["points_reversed"] for q in (1, 1, 2)]
    assert got == [75, 75, 150] and _balanced(card) == 0


def test_rounding_never_takes_back_more_than_earned(cashier_client, card, store):
    _scan(cashier_client, card, store, amount=1_000, items=[{"sku": "A", "qty": 3, "amount_fen": 1_000}])
    got = [_return(cashier_client, store, [{"sku": "A", "qty": 1}]).json()["points_reversed"] for _ in range(3)]
    assert got == [3, 3, 4] and sum(got) == 10 and _balanced(card) == 0


def test_a_return_is_applied_once_per_return_id(cashier_client, card, store):
    _scan(cashier_client, card, store)
    first = _return(cashier_client, store, [{"sku": "TEA-1", "qty": 2}], return_id="RT-SAME")
    again = _return(cashier_client, store, [{"sku": "TEA-1", "qty": 2}], return_id="RT-SAME")
    assert (first.status_code, again.status_code) == (201, 200)
    assert again.json()["duplicate"] is True and again.json()["id"] == first.json()["id"]
    other = _return(cashier_client, store, [{"sku": "TEA-1", "qty": 1}], return_id="RT-SAME")
    assert other.status_code == 409 and other.json()["error"]["code"] == "return_id_reused"
    assert PurchaseReturn.objects.count() == 1 and _balanced(card) == 400


@pytest.mark.parametrize(
    "lines, receipt, status, code, field",
    [
        ([{"sku": "TEA-1", "qty": 5}], "R-1", 409, "return_exceeds_purchase", "lines[0].qty"),
        (
            [{"sku": "TEA-1", "qty": 3}, {"sku": "TEA-1", "qty": 2}],
            "R-1",
            409,
            "return_exceeds_purchase",
            "lines[1].qty",
        ),
        ([{"sku": "NOPE", "qty": 1}], "R-1", 400, "sku_not_bought", "lines[0].sku"),
        ([{"sku": "TEA-1", "qty": 1}], "R-UNKNOWN", 404, "receipt_unknown", "receipt_id"),
        ([{"sku": "TEA-1", "qty": 0}], "R-1", 400, None, "lines"),
        ([], "R-1", 400, None, "lines"),
    ],
)
def test_refusals_write_nothing(cashier_client, card, store, lines, receipt, status, code, field):
    _scan(cashier_client, card, store)
    response = _return(cashier_client, store, lines, receipt=receipt)
    assert response.status_code == status, response.content
    error = response.json()["error"]
    if code:
        assert (error["code"], error["field"]) == (code, field)
    else:
        assert error["field"].startswith(field)
    assert not PurchaseReturn.objects.exists() and not ReturnLine.objects.exists()
    assert _balanced(card) == 600


def test_cumulative_qty_is_checked_across_returns(cashier_client, card, store):
    _scan(cashier_client, card, store)
    assert _return(cashier_client, store, [{"sku": "TEA-1", "qty": 3}]).status_code == 201
    over = _return(cashier_client, store, [{"sku": "TEA-1", "qty": 2}])
    assert over.status_code == 409 and over.json()["error"]["code"] == "return_exceeds_purchase"
    assert PurchaseReturn.objects.count() == 1


def test_unknown_store_and_cashier_of_another_store(cashier_client, card, store, django_user_model):
    _scan(cashier_client, card, store)
    unknown = cashier_client.post(
        "/api/loyalty/returns",
        {"store": "nowhere", "receipt_id": "R-1", "return_id": "X", "lines": [{"sku": "TEA-1", "qty": 1}]},
        format="json",
    )
    assert unknown.status_code == 400 and unknown.json()["error"]["code"] == "store_unknown"
    other = store_upsert(code="store-bj-002", name="Beijing", city="Beijing")
    from django.contrib.auth.models import Group

    from loyalty.permissions import CASHIER_GROUP
    from tests.loyalty.conftest import _client_for

    stranger = django_user_model.objects.create_user(username="till-bj", password="x" * 12)
    stranger.groups.add(Group.objects.get_or_create(name=CASHIER_GROUP)[0])
    other.members.add(stranger)
    forbidden = _return(_client_for(stranger), store, [{"sku": "TEA-1", "qty": 1}])
    assert forbidden.status_code == 403 and forbidden.json()["error"]["code"] == "store_forbidden"
    assert not PurchaseReturn.objects.exists() and _balanced(card) == 600


def test_spent_points_leave_a_shortfall_by_default(settings, cashier_client, card, store):
    settings.LOYALTY_RETURN_NEGATIVE_BALANCE = False
    _scan(cashier_client, card, store)
    points_credit(card_id=card.pk, delta=-550, kind="redeem", idempotency_key="spent")
    body = _return(cashier_client, store, [{"sku": "CUP-1", "qty": 1}]).json()  # earned 200
    assert (body["points_reversed"], body["shortfall"], body["balance"]) == (50, 150, 0)
    assert _balanced(card) == 0


def test_spent_points_may_take_the_balance_negative(settings, cashier_client, card, store):
    settings.LOYALTY_RETURN_NEGATIVE_BALANCE = True
    _scan(cashier_client, card, store)
    points_credit(card_id=card.pk, delta=-550, kind="redeem", idempotency_key="spent")
    body = _return(cashier_client, store, [{"sku": "CUP-1", "qty": 1}]).json()
    assert (body["points_reversed"], body["shortfall"], body["balance"]) == (200, 0, -150)
    assert _balanced(card) == -150
    # A redemption cannot spend a debt; the next credit pays it off first and its lot keeps the rest.
    with pytest.raises(Exception, match="Not enough points"):
        points_credit(card_id=card.pk, delta=-1, kind="redeem", idempotency_key="more")
    _scan(cashier_client, card, store, receipt="R-2", amount=20_000, items=[])
    assert _balanced(card) == 50
    assert PointsLot.objects.get(entry__purchase__receipt_id="R-2").remaining == 50


def test_returns_list_api(cashier_client, staff_client, admin_client_api, card, store):
    _scan(cashier_client, card, store)
    _return(cashier_client, store, [{"sku": "TEA-1", "qty": 1}], return_id="RT-LIST")
    assert staff_client.get("/api/loyalty/returns/list").status_code == 403  # no view_purchasereturn
    body = admin_client_api.get("/api/loyalty/returns/list").json()
    assert body["results"][0]["return_id"] == "RT-LIST" and body["results"][0]["lines"][0]["qty"] == 1


@pytest.mark.parametrize("order", ["review_then_return", "return_then_review"])
def test_a_flagged_scan_reversed_and_returned_takes_its_points_back_once(cashier_client, card, store, order):
    from loyalty.models import Purchase, ScanReview
    from loyalty.services.velocity import scan_review_reverse

    _scan(cashier_client, card, store)  # 600 points
    purchase = Purchase.objects.get(receipt_id="R-1")
    review = ScanReview.objects.create(purchase=purchase, reasons=[{"code": "test"}])
    if order == "review_then_return":
        scan_review_reverse(review_id=review.pk, user=None)
        assert _balanced(card) == 0
        ret = _return(cashier_client, store, [{"sku": "TEA-1", "qty": 2}]).json()
        assert ret["points_reversed"] == 0 and ret["shortfall"] == 0  # the review took them all back already
    else:
        ret = _return(cashier_client, store, [{"sku": "TEA-1", "qty": 2}]).json()
        assert ret["points_reversed"] == 200
        scan_review_reverse(review_id=review.pk, user=None)
        assert ScanReview.objects.get(pk=review.pk).reversal.delta == -400  # what the return left
    assert _balanced(card) == 0
    assert sum(PointsLedger.objects.filter(card=card).values_list("delta", flat=True)) == 0


def test_returns_count_against_the_tills_rate(cashier_client, card, store, monkeypatch):
    from loyalty.api import TillThrottle

    monkeypatch.setattr(TillThrottle, "THROTTLE_RATES", {"loyalty_till": "3/min"})
    _scan(cashier_client, card, store)  # the till's first request of the minute
    for _ in range(2):
        assert _return(cashier_client, store, [{"sku": "TEA-1", "qty": 1}]).status_code == 201
    limited = _return(cashier_client, store, [{"sku": "TEA-1", "qty": 1}])
    assert limited.status_code == 429 and int(limited["Retry-After"]) > 0
    assert PurchaseReturn.objects.count() == 2  # nothing written for the refused one
