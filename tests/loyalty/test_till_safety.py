"""Till safety (issue 12 item 7): single-use QR tokens, store binding, rate limits, velocity flags and their review
queue, and the bad-input reason codes, over real HTTP to the API with the real Redis cache."""

from __future__ import annotations

import time

import pytest
from django.contrib.auth.models import Group, Permission
from django.core.cache import cache

from loyalty.api import TillThrottle
from loyalty.models import Card, PointsLedger, Purchase, ScanReview, Store
from loyalty.qr import qr_token_mint
from loyalty.selectors import card_ledger_sum
from loyalty.services import card_get_or_create, store_upsert
from loyalty.services.scans import MAX_AMOUNT_FEN
from loyalty.services.velocity import scan_review_approve, scan_review_reverse, store_amount_p99
from loyalty.till_cache import VERSION_KEY as TILL_CONFIG_VERSION_KEY
from loyalty.till_cache import redis_client

pytestmark = pytest.mark.django_db
URL = "/api/loyalty/scans"


def _scan(client, token, store_code, receipt="R-1", amount=10_000):
    body = {"qr_token": token, "receipt_id": receipt, "store": store_code, "amount_fen": amount}
    return client.post(URL, body, format="json")


def _error(response):
    return response.status_code, response.json()["error"]["code"], response.json()["error"]["field"]


def _fresh(card):
    return qr_token_mint(card.number).token


# --- Single-use tokens -------------------------------------------------------------------------------------


def test_a_token_pays_for_one_receipt_only(cashier_client, card, store):
    token = _fresh(card)
    assert _scan(cashier_client, token, store.code, "R-1").status_code == 201
    reused = _scan(cashier_client, token, store.code, "R-2")
    assert _error(reused) == (409, "token_reused", "qr_token")
    assert Purchase.objects.count() == 1 and PointsLedger.objects.count() == 1
    # The same receipt again with the used token is the till's retry: the original answer, nothing credited.
    again = _scan(cashier_client, token, store.code, "R-1")
    assert again.status_code == 200 and again.json()["duplicate"] is True and again.json()["points"] == 100
    assert Card.objects.get(pk=card.pk).points_balance == 100 == card_ledger_sum(card.pk)


def test_two_tokens_minted_in_one_second_are_two_tokens(cashier_client, card, store):
    now = time.time()
    first, second = qr_token_mint(card.number, now=now).token, qr_token_mint(card.number, now=now).token
    assert first != second
    assert _scan(cashier_client, first, store.code, "R-1").status_code == 201
    assert _scan(cashier_client, second, store.code, "R-2").status_code == 201


def test_a_used_token_is_refused_at_another_store_too(cashier_client, cashier, card, store):
    other = store_upsert(code="store-bj-002", name="Beijing Sanlitun")
    other.members.add(cashier)
    token = _fresh(card)
    assert _scan(cashier_client, token, store.code, "R-1").status_code == 201
    assert _error(_scan(cashier_client, token, other.code, "R-1")) == (409, "token_reused", "qr_token")


def test_expired_and_forged_tokens(cashier_client, card, store):
    old = qr_token_mint(card.number, now=time.time() - 61).token
    assert _error(_scan(cashier_client, old, store.code)) == (400, "qr_expired", "qr_token")
    forged = _fresh(card).rsplit(".", 1)[0] + ".AAAAAAAAAAAAAAAAAAAAAAAA"
    assert _error(_scan(cashier_client, forged, store.code)) == (403, "qr_forged", "qr_token")
    assert _error(_scan(cashier_client, "L1.1.2.AAAAAA", store.code)) == (400, "qr_malformed", "qr_token")
    assert not Purchase.objects.exists()


# --- Store binding and other bad input ----------------------------------------------------------------------


def test_store_codes(cashier_client, card, store):
    assert _error(_scan(cashier_client, _fresh(card), "store-nowhere")) == (400, "store_unknown", "store")
    store_upsert(code="store-gz-003", name="Guangzhou")
    assert _error(_scan(cashier_client, _fresh(card), "store-gz-003")) == (403, "store_forbidden", "store")
    assert not Purchase.objects.exists()


@pytest.mark.parametrize("amount", [-100, 0, MAX_AMOUNT_FEN + 1, "12.5"])
def test_negative_zero_or_absurd_amounts(cashier_client, card, store, amount):
    status, _code, field = _error(_scan(cashier_client, _fresh(card), store.code, amount=amount))
    assert (status, field) == (400, "amount_fen")
    assert not Purchase.objects.exists()


def test_same_receipt_with_another_amount(cashier_client, card, store):
    assert _scan(cashier_client, _fresh(card), store.code, "R-1", 10_000).status_code == 201
    refused = _scan(cashier_client, _fresh(card), store.code, "R-1", 20_000)
    assert _error(refused) == (409, "receipt_amount_mismatch", "amount_fen")
    assert Card.objects.get(pk=card.pk).points_balance == 100


def test_the_refused_token_is_not_burnt(cashier_client, card, store):
    """A scan refused before anything is written (a bad amount) leaves the token usable for the real receipt."""
    token = _fresh(card)
    assert _scan(cashier_client, token, store.code, "R-1", amount=-1).status_code == 400
    assert _scan(cashier_client, token, store.code, "R-1").status_code == 201


# --- Rate limits --------------------------------------------------------------------------------------------


def test_per_card_rate_limit_is_429_with_retry_after(cashier_client, card, store, settings):
    settings.LOYALTY_VELOCITY_CARD_SCANS = 1000  # this test is about the throttle, not the flag
    for n in range(10):  # LOYALTY_CARD_RATE: 10/min
        assert _scan(cashier_client, _fresh(card), store.code, f"R-{n}").status_code == 201
    limited = _scan(cashier_client, _fresh(card), store.code, "R-10")
    assert limited.status_code == 429 and limited.json()["error"]["code"] == "throttled"
    assert 0 < int(limited["Retry-After"]) <= 60
    assert Purchase.objects.count() == 10


def test_per_till_rate_limit(cashier_client, tiers, make_contact, store, monkeypatch):
    monkeypatch.setattr(TillThrottle, "THROTTLE_RATES", {"loyalty_till": "3/min"})
    cards = [card_get_or_create(make_contact().pk) for _ in range(4)]
    for n, card in enumerate(cards[:3]):
        assert _scan(cashier_client, _fresh(card), store.code, f"R-{n}").status_code == 201
    limited = _scan(cashier_client, _fresh(cards[3]), store.code, "R-3")
    assert limited.status_code == 429 and int(limited["Retry-After"]) > 0


# --- The cached configuration, confirmed in the throttles' Redis call -----------------------------------------


def _till_window(cashier) -> int:
    return redis_client().zcard(cache.make_key(f"throttle_loyalty_till_{cashier.pk}:window"))


def test_a_till_revoked_meanwhile_is_refused_and_not_counted(cashier_client, cashier, tiers, make_contact, store):
    first, second = (card_get_or_create(make_contact().pk) for _ in range(2))
    assert _scan(cashier_client, _fresh(first), store.code, "R-1").status_code == 201
    assert _till_window(cashier) == 1
    cashier.groups.clear()  # the cashier role (loyalty.use_till) taken away: a new configuration version
    assert _scan(cashier_client, _fresh(second), store.code, "R-2").status_code == 403
    assert _till_window(cashier) == 1  # refused on the new configuration, before the throttles counted


def test_another_process_change_is_seen_by_the_next_scan(cashier_client, cashier, tiers, make_contact, store):
    # Another worker's change: rows changed without this process's signals, the version token replaced in Redis.
    first, second = (card_get_or_create(make_contact().pk) for _ in range(2))
    assert _scan(cashier_client, _fresh(first), store.code, "R-1").status_code == 201
    Store.objects.filter(pk=store.pk).update(is_active=False)
    redis_client().set(cache.make_key(TILL_CONFIG_VERSION_KEY), "another-process")
    assert _error(_scan(cashier_client, _fresh(second), store.code, "R-2")) == (400, "store_inactive", "store")
    assert _till_window(cashier) == 2  # counted once, on the confirmed configuration


def test_a_lost_version_token_is_remade(cashier_client, cashier, tiers, make_contact, store):
    first, second = (card_get_or_create(make_contact().pk) for _ in range(2))
    assert _scan(cashier_client, _fresh(first), store.code, "R-1").status_code == 201
    redis_client().delete(cache.make_key(TILL_CONFIG_VERSION_KEY))  # a flushed Redis
    assert _scan(cashier_client, _fresh(second), store.code, "R-2").status_code == 201
    assert redis_client().get(cache.make_key(TILL_CONFIG_VERSION_KEY)) is not None
    assert _till_window(cashier) == 2


# --- Velocity flags and the review queue --------------------------------------------------------------------


def test_a_burst_of_one_cards_scans_is_flagged_but_credited(cashier_client, card, store):
    answers = [_scan(cashier_client, _fresh(card), store.code, f"R-{n}") for n in range(5)]
    assert [a.status_code for a in answers] == [201] * 5
    assert [a.json()["flagged"] for a in answers] == [False] * 4 + [True]
    review = ScanReview.objects.get()
    assert review.purchase.receipt_id == "R-4" and review.reasons[0]["rule"] == "card_burst"
    assert Card.objects.get(pk=card.pk).points_balance == 500  # still credited


def test_amount_over_the_configured_max_is_flagged(cashier_client, card, store, settings):
    settings.LOYALTY_VELOCITY_MAX_AMOUNT_FEN = 50_000
    body = _scan(cashier_client, _fresh(card), store.code, amount=50_001).json()
    assert body["flagged"] is True and body["points"] == 500
    assert ScanReview.objects.get().reasons[0]["rule"] == "amount_over_max"


def test_amount_over_the_stores_p99_is_flagged(cashier_client, tiers, make_contact, store, settings):
    settings.LOYALTY_VELOCITY_MIN_SAMPLE = 10
    cards = [card_get_or_create(make_contact().pk) for _ in range(11)]
    for n, card in enumerate(cards[:10]):
        assert _scan(cashier_client, _fresh(card), store.code, f"R-{n}", 10_000 + n).json()["flagged"] is False
    # The first scans cached "too few receipts" for LOYALTY_VELOCITY_P99_CACHE_SECONDS: as if that time passed.
    cache.delete(f"loyalty:store-p99:{store.pk}")
    assert store_amount_p99(store.pk) == 10_009
    body = _scan(cashier_client, _fresh(cards[10]), store.code, "R-10", 30_000).json()
    assert body["flagged"] is True
    assert ScanReview.objects.get().reasons == [
        {"rule": "amount_over_store_p99", "amount_fen": 30_000, "p99_fen": 10_009}
    ]


def test_the_stores_p99_read_with_the_throttles_is_the_cached_one(cashier_client, tiers, make_contact, store):
    # The view reads the p99 entry in the throttles' Redis call once it holds the store: the value the cache
    # holds (an int, as cache.set stores it) decides, as store_amount_p99 would.
    first, second, third = (card_get_or_create(make_contact().pk) for _ in range(3))
    assert _scan(cashier_client, _fresh(first), store.code, "R-0", 9_000).json()["flagged"] is False
    cache.set(f"loyalty:store-p99:{store.pk}", 8_000, timeout=60)
    assert _scan(cashier_client, _fresh(second), store.code, "R-1", 8_000).json()["flagged"] is False
    assert _scan(cashier_client, _fresh(third), store.code, "R-2", 8_001).json()["flagged"] is True
    assert ScanReview.objects.get().reasons == [
        {"rule": "amount_over_store_p99", "amount_fen": 8_001, "p99_fen": 8_000}
    ]


def test_a_scans_lines_are_written_with_the_purchase_in_order(cashier_client, card, store):
    items = [{"sku": f"SKU-{n}", "name": f"Item {n}", "qty": n + 1, "amount_fen": 1_000 * (n + 1)} for n in range(3)]
    body = {"qr_token": _fresh(card), "receipt_id": "R-L", "store": store.code, "amount_fen": 6_000, "items": items}
    assert cashier_client.post(URL, body, format="json").status_code == 201
    purchase = Purchase.objects.get()
    lines = list(purchase.lines.order_by("id"))
    assert [(x.sku, x.name, x.qty, x.amount_fen, x.points) for x in lines] == [
        ("SKU-0", "Item 0", 1, 1_000, 10),
        ("SKU-1", "Item 1", 2, 2_000, 20),
        ("SKU-2", "Item 2", 3, 3_000, 30),
    ]
    # The same receipt again: answered as the replay, nothing more written.
    body["qr_token"] = _fresh(card)
    assert cashier_client.post(URL, body, format="json").json()["duplicate"] is True
    assert Purchase.objects.count() == 1 and purchase.lines.count() == 3


def _flagged(cashier_client, card, store, settings, amount=12_300):
    settings.LOYALTY_VELOCITY_MAX_AMOUNT_FEN = 1
    assert _scan(cashier_client, _fresh(card), store.code, "R-F", amount).json()["flagged"] is True
    return ScanReview.objects.get()


def test_reverse_takes_the_points_back_once(cashier_client, cashier, card, store, settings):
    review = _flagged(cashier_client, card, store, settings)
    reversed_ = scan_review_reverse(review_id=review.pk, user=None)
    assert reversed_.status == "reversed" and reversed_.reversal.delta == -123
    card.refresh_from_db()
    assert card.points_balance == 0 == card_ledger_sum(card.pk)
    with pytest.raises(Exception) as again:
        scan_review_reverse(review_id=review.pk, user=None)
    assert again.value.code == "review_decided"
    assert PointsLedger.objects.filter(delta__lt=0).count() == 1


def test_approve_keeps_the_points(cashier_client, card, store, settings):
    review = _flagged(cashier_client, card, store, settings)
    assert scan_review_approve(review_id=review.pk, user=None).status == "approved"
    assert Card.objects.get(pk=card.pk).points_balance == 123


def test_console_review_queue_is_scoped_and_reverses_through_the_service(
    cashier_client, card, store, settings, client, django_user_model
):
    review = _flagged(cashier_client, card, store, settings)
    manager = django_user_model.objects.create_user(username="mgr-sh", password="x" * 12, is_staff=True)
    manager.groups.add(Group.objects.get(name="store_manager"))
    other = django_user_model.objects.create_user(username="mgr-bj", password="x" * 12, is_staff=True)
    other.groups.add(Group.objects.get(name="store_manager"))
    store.members.add(manager)
    changelist = "/admin/loyalty/scanreview/"

    client.force_login(other)
    assert "R-F" not in client.get(changelist).content.decode()  # another store's manager sees nothing
    refused = client.post(changelist, {"action": "reverse_selected", "_selected_action": [review.pk]})
    assert refused.status_code in (200, 302)
    assert ScanReview.objects.get().status == "pending"

    client.force_login(manager)
    assert "R-F" in client.get(changelist).content.decode()
    done = client.post(changelist, {"action": "reverse_selected", "_selected_action": [review.pk]})
    assert done.status_code == 302
    assert ScanReview.objects.get().status == "reversed"
    assert Card.objects.get(pk=card.pk).points_balance == 0 == card_ledger_sum(card.pk)
    assert Permission.objects.filter(codename="change_scanreview", group__name="store_manager").exists()
