"""balance == sum(ledger) == sum(open lots) under concurrent scans, returns, redemptions and expiry on one card.

Each client is a thread with its own database connection calling the services the till's endpoints call. Run it
against PostgreSQL (DATABASE_URL=postgres://...) for the row locks to matter; on SQLite writers serialise anyway."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
from django.db import connection, connections
from django.utils import timezone

from loyalty.models import Card, PointsLedger, PointsLot, PurchaseReturn
from loyalty.qr import qr_token_mint
from loyalty.selectors import card_ledger_sum
from loyalty.services import redemption_create, reward_save, scan_record
from loyalty.services.lots import expire_due_lots, lots_open_sum
from loyalty.services.returns import return_record

pytestmark = pytest.mark.django_db(transaction=True)


def _in_threads(calls):
    """Run each zero-argument call in its own thread, released together; results or exceptions, in order."""
    barrier = threading.Barrier(len(calls))

    def run(fn):
        try:
            barrier.wait(timeout=20)
            return fn()
        except Exception as exc:
            return exc
        finally:
            connections.close_all()

    with ThreadPoolExecutor(max_workers=len(calls)) as pool:
        return list(pool.map(run, calls))


def _assert_invariant(card_id: int) -> Card:
    card = Card.objects.get(pk=card_id)
    assert card.points_balance == card_ledger_sum(card_id)
    assert lots_open_sum(card_id) == max(card.points_balance, 0)
    running = 0
    for entry in PointsLedger.objects.filter(card_id=card_id).order_by("id"):
        running += entry.delta
        assert entry.balance_after == running, entry
    return card


@pytest.mark.parametrize("negative_ok", [False, True])
def test_concurrent_scans_returns_redemptions_and_expiry_on_one_card(settings, card, store, tiers, negative_ok):
    assert connection.vendor in ("sqlite", "postgresql")
    settings.LOYALTY_RETURN_NEGATIVE_BALANCE = negative_ok
    items = [{"sku": "TEA", "qty": 4, "amount_fen": 40_000}, {"sku": "CUP", "qty": 2, "amount_fen": 20_000}]
    # Receipts to return from, already scanned (600 points each), plus a lot that lapsed a minute ago.
    for n in range(4):
        scan_record(
            qr_token=qr_token_mint(card.number).token,
            store_code=store.code,
            receipt_id=f"OLD-{n}",
            amount_fen=60_000,
            items=items,
        )
    PointsLot.objects.filter(entry__purchase__receipt_id="OLD-0").update(expires_at=timezone.now())
    reward = reward_save(name="Mug", points_cost=350)

    calls = []
    for n in range(6):  # new scans
        calls.append(
            lambda n=n: scan_record(
                qr_token=qr_token_mint(card.number).token,
                store_code=store.code,
                receipt_id=f"NEW-{n}",
                amount_fen=10_000 * (n + 1),
                items=[],
            )
        )
    for n in range(4):  # returns: two per old receipt, the same return posted twice by a retrying till
        for line in ({"sku": "TEA", "qty": 3}, {"sku": "CUP", "qty": 2}):
            rid = f"RT-{n}-{line['sku']}"
            calls += [
                lambda n=n, line=line, rid=rid: return_record(
                    store_code=store.code, receipt_id=f"OLD-{n}", return_id=rid, lines=[line]
                )
            ] * 2
    for n in range(6):  # redemptions (some refused for too few points, which is fine)
        calls.append(lambda n=n: redemption_create(card_id=card.pk, reward_id=reward.pk, idempotency_key=f"rd-{n}"))
    calls.append(expire_due_lots)
    calls.append(expire_due_lots)

    results = _in_threads(calls)
    unexpected = [
        r
        for r in results
        if isinstance(r, Exception)
        and "Not enough points" not in str(r)
        and getattr(r, "code", "") != "insufficient_points"
    ]
    assert not unexpected, unexpected

    card = _assert_invariant(card.pk)
    assert PurchaseReturn.objects.count() == 8  # each return once despite the retries
    # The lapsed lot is gone: expired once for what was left, or spent first (redemptions take the oldest lot).
    assert PointsLot.objects.get(entry__purchase__receipt_id="OLD-0").remaining == 0
    assert PointsLedger.objects.filter(kind="expire").count() <= 1
    if not negative_ok:
        assert card.points_balance >= 0
    # Every return's points are either reversed or its recorded shortfall.
    for ret in PurchaseReturn.objects.prefetch_related("lines"):
        assert ret.points_reversed + ret.shortfall == sum(line.points for line in ret.lines.all())
