"""The till scan's one-statement path (loyalty.services._scan_statement, PostgreSQL) and the till's token cache:
what they write is what the transactional path writes, they step aside whenever the card moved or the tier
could, and a revoked token is refused from the next scan on."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from loyalty.models import Card, PointsLedger, PointsLot, Purchase, TierPolicy
from loyalty.qr import qr_token_mint
from loyalty.selectors import card_ledger_sum
from loyalty.services import _scan_statement, card_get_or_create, points_credit, scan_record, scans
from loyalty.services.tiers import tier_evaluate_locked, tier_unchanged_by_credit
from loyalty.till_cache import till_config, till_config_bump, till_config_held

pytestmark = pytest.mark.skipif(connection.vendor != "postgresql", reason="the one-statement path is PostgreSQL's")


def _lots_sum(card_id: int) -> int:
    return sum(PointsLot.objects.filter(card_id=card_id).values_list("remaining", flat=True))


@pytest.fixture
def spy(monkeypatch):
    """Each scan_write's outcome: 'one' (written in one statement) or 'moved' (nothing written; the scan took the
    transactional path). A scan declined before the statement (it could move the tier) adds nothing."""
    taken: list[str] = []
    real = _scan_statement.scan_write

    def write(*args, **kwargs):
        out = real(*args, **kwargs)
        taken.append("moved" if out is _scan_statement.MOVED else "one")
        return out

    monkeypatch.setattr(scans, "scan_write", write)
    return taken


def test_a_scan_is_one_lookup_and_one_write(card, store, spy):
    till_config_bump()
    scan_record(qr_token=qr_token_mint(card.number).token, store_code=store.code, receipt_id="R-0", amount_fen=500)
    with CaptureQueriesContext(connection) as queries:
        result = scan_record(
            qr_token=qr_token_mint(card.number).token, store_code=store.code, receipt_id="R-1", amount_fen=12_345,
            items=[{"sku": "TEA", "qty": 1, "amount_fen": 12_345}],
        )  # fmt: skip
    assert spy == ["one", "one"]
    assert len(queries.captured_queries) == 2, [(q["sql"] or "")[:80] for q in queries.captured_queries]
    purchase = Purchase.objects.get(pk=result.purchase.pk)
    card.refresh_from_db()
    assert (purchase.points, purchase.balance_after, card.points_balance) == (123, 128, 128)
    assert list(purchase.lines.values_list("sku", "points")) == [("TEA", 123)]
    entry = PointsLedger.objects.get(purchase=purchase)
    assert (entry.delta, entry.kind, entry.balance_after, entry.idempotency_key) == (
        123, "earn", 128, f"receipt:{store.pk}:R-1"
    )
    assert PointsLot.objects.get(entry=entry).remaining == 123
    assert card.lifetime_points == 128 == card_ledger_sum(card.pk) == _lots_sum(card.pk)
    assert result.recent_scans == 2  # the velocity count: R-0 and this one


def test_a_card_in_debt_pays_it_off_first(card, store, spy):
    points_credit(card_id=card.pk, delta=-40, kind="return", idempotency_key="debt", allow_negative=True)
    scan_record(qr_token=qr_token_mint(card.number).token, store_code=store.code, receipt_id="R-D", amount_fen=10_000)
    card.refresh_from_db()
    assert spy == ["one"]
    assert card.points_balance == 60 == card_ledger_sum(card.pk) == _lots_sum(card.pk)


def test_a_card_that_moved_after_the_lookup_takes_the_transactional_path(card, store, spy, monkeypatch):
    real = scans.scan_lookup

    def lookup_then_credit(*args):
        looked = real(*args)
        # Another till's credit commits between this scan's lookup and its write.
        points_credit(card_id=card.pk, delta=7, kind="adjust", idempotency_key="meanwhile")
        return looked

    monkeypatch.setattr(scans, "scan_lookup", lookup_then_credit)
    result = scan_record(
        qr_token=qr_token_mint(card.number).token, store_code=store.code, receipt_id="R-M", amount_fen=10_000
    )
    assert spy == ["moved"]
    card.refresh_from_db()
    assert Purchase.objects.get(pk=result.purchase.pk).balance_after == 107 == card.points_balance
    assert card_ledger_sum(card.pk) == 107 == _lots_sum(card.pk)
    assert PointsLedger.objects.filter(purchase=result.purchase).count() == 1


def test_a_scan_that_crosses_a_threshold_upgrades_through_the_transactional_path(card, store, tiers, spy):
    silver = min((t for t in tiers.values() if t.min_points > 0), key=lambda t: t.min_points)
    amount = silver.min_points * 100  # LOYALTY_FEN_PER_POINT = 100
    result = scan_record(
        qr_token=qr_token_mint(card.number).token, store_code=store.code, receipt_id="R-UP", amount_fen=amount
    )
    assert spy == []  # declined before writing anything
    assert result.tier_change is not None and result.tier_change.to_tier == silver
    card.refresh_from_db()
    assert card.tier == silver


@pytest.mark.parametrize("amount, paths", [
    (10_000, ["one", "moved"]),  # the retry's ledger key: the guard steps aside, the transaction replays
    (50, ["one", "one"]),  # earns nothing, so no key: the purchase's ON CONFLICT finds the retry's row
])  # fmt: skip
def test_a_receipt_recorded_by_a_concurrent_retry_is_answered_as_the_replay(card, store, spy, monkeypatch, amount,
                                                                            paths):  # fmt: skip
    token = qr_token_mint(card.number).token
    real = scans.scan_lookup

    def lookup_then_retry(*args):
        looked = real(*args)
        monkeypatch.setattr(scans, "scan_lookup", real)
        scan_record(qr_token=token, store_code=store.code, receipt_id="R-R", amount_fen=amount)  # the retry wins
        looked.card = Card.objects.get(pk=card.pk)  # as if read after the retry committed: the guard holds
        return looked

    monkeypatch.setattr(scans, "scan_lookup", lookup_then_retry)
    result = scan_record(qr_token=token, store_code=store.code, receipt_id="R-R", amount_fen=amount)
    assert result.duplicate and spy == paths
    assert Purchase.objects.count() == 1 and PointsLedger.objects.count() == (1 if amount >= 100 else 0)
    card.refresh_from_db()
    assert card.points_balance == amount // 100 == card_ledger_sum(card.pk)


@pytest.mark.parametrize("basis_window", [365, 0])
@pytest.mark.parametrize("balance, earned, points, below_since", [
    (0, 0, 10, None), (0, 0, 10_000, None), (900, 950, 60, None), (900, 950, 40, None), (0, 0, 5, "set"),
    (5_000, 5_000, 10, "set"), (100, 100, 1, None),
])  # fmt: skip
def test_the_prediction_agrees_with_the_evaluation(make_contact, tiers, basis_window, balance, earned, points,
                                                   below_since):  # fmt: skip
    TierPolicy.objects.update_or_create(pk=1, defaults={"basis": "points", "window_days": basis_window})
    till_config_bump()
    for tier in [None, *sorted(tiers.values(), key=lambda t: t.rank)]:
        card = card_get_or_create(make_contact().pk)
        Card.objects.filter(pk=card.pk).update(
            points_balance=balance + points, lifetime_points=earned + points, tier=tier,
            tier_below_since=timezone.now() - timedelta(days=1) if below_since else None,
        )  # fmt: skip
        PointsLedger.objects.create(card=card, delta=earned + points, kind="earn", idempotency_key=f"k-{tier}",
                                    balance_after=balance + points)  # fmt: skip
        locked = Card.objects.select_related("tier").get(pk=card.pk)
        before = Card.objects.select_related("tier").get(pk=card.pk)
        before.lifetime_points -= points  # the card as the lookup reads it, before the credit
        predicted = tier_unchanged_by_credit(before, points, earned)
        change = tier_evaluate_locked(locked)
        locked.refresh_from_db()
        unchanged = change is None and locked.tier_below_since == before.tier_below_since
        assert predicted == unchanged, (tier, predicted, change)


# --- the till's token cache ------------------------------------------------------------------------------------


def _scan_body(card, store, receipt):
    return {"qr_token": qr_token_mint(card.number).token, "receipt_id": receipt, "store": store.code,
            "amount_fen": 1_000}  # fmt: skip


def test_a_known_token_costs_no_query_and_a_revoked_one_is_refused_at_once(card, store, cashier):
    token = Token.objects.create(user=cashier)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {token.key}")
    assert client.post("/api/loyalty/scans", _scan_body(card, store, "T-1"), format="json").status_code == 201
    with CaptureQueriesContext(connection) as queries:
        assert client.post("/api/loyalty/scans", _scan_body(card, store, "T-2"), format="json").status_code == 201
    assert not [q for q in queries.captured_queries if "authtoken_token" in (q["sql"] or "")]
    assert till_config().parts.get("tokens", {}).get(token.key) is not None
    token.delete()  # revoked in the console
    refused = client.post("/api/loyalty/scans", _scan_body(card, store, "T-3"), format="json")
    # DRF answers 403 rather than 401 when its first authenticator (the session's) sends no challenge.
    assert (refused.status_code, refused.json()["error"]["code"]) == (403, "authentication_failed")
    assert not Purchase.objects.filter(receipt_id="T-3").exists()


def test_a_deactivated_till_user_is_refused_at_once(card, store, cashier):
    token = Token.objects.create(user=cashier)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {token.key}")
    assert client.post("/api/loyalty/scans", _scan_body(card, store, "U-1"), format="json").status_code == 201
    cashier.is_active = False
    cashier.save()
    refused = client.post("/api/loyalty/scans", _scan_body(card, store, "U-2"), format="json")
    assert (refused.status_code, refused.json()["error"]["code"]) == (403, "authentication_failed")


def test_a_sign_in_does_not_empty_the_till_cache(card, store, cashier):
    till_config().store(store.code)
    held = till_config()
    cashier.last_login = timezone.now()
    cashier.save(update_fields=["last_login"])
    assert till_config() is held


def test_a_token_revoked_by_another_process_is_refused_before_anything_counts(card, store, cashier):
    from django.core.cache import cache

    from crm.api.throttles import redis_client
    from loyalty.till_cache import VERSION_KEY

    token = Token.objects.create(user=cashier)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {token.key}")
    assert client.post("/api/loyalty/scans", _scan_body(card, store, "P-1"), format="json").status_code == 201
    # Another worker revoked it: the row gone without this process's signals, the version token replaced.
    with connection.cursor() as cursor:
        cursor.execute("DELETE FROM authtoken_token WHERE key = %s", [token.key])
    redis_client().set(cache.make_key(VERSION_KEY), "another-process")
    assert till_config_held().parts["tokens"].get(token.key) is not None  # this process still holds it
    refused = client.post("/api/loyalty/scans", _scan_body(card, store, "P-2"), format="json")
    assert (refused.status_code, refused.json()["error"]["code"]) == (403, "authentication_failed")
    window = redis_client().zcard(cache.make_key(f"throttle_loyalty_till_{cashier.pk}:window"))
    assert window == 1, window  # P-1 only: the revoked request counted nothing
    assert not Purchase.objects.filter(receipt_id="P-2").exists()
