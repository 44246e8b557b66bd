"""One QR token raced for many receipts at once (threads, PostgreSQL): exactly one receipt is credited."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
from django.db import connections

from crm.errors import ApplicationError
from loyalty.models import PointsLedger, Purchase
from loyalty.qr import qr_token_mint
from loyalty.selectors import card_ledger_sum
from loyalty.services import scan_record

pytestmark = pytest.mark.django_db(transaction=True)
THREADS = 8


def _race(fn, args_list):
    barrier = threading.Barrier(len(args_list))

    def run(args):
        try:
            barrier.wait(timeout=10)
            return fn(*args)
        except ApplicationError as exc:
            return exc.code
        finally:
            connections.close_all()

    with ThreadPoolExecutor(max_workers=len(args_list)) as pool:
        return list(pool.map(run, args_list))


def test_one_token_for_many_receipts_at_once_credits_one(card, store):
    token = qr_token_mint(card.number).token

    def scan(receipt):
        return scan_record(qr_token=token, store_code=store.code, receipt_id=receipt, amount_fen=10_000).duplicate

    results = _race(scan, [(f"R-{n}",) for n in range(THREADS)])
    assert sorted(map(str, results)) == ["False"] + ["token_reused"] * (THREADS - 1), results
    assert Purchase.objects.count() == 1 and PointsLedger.objects.count() == 1
    card.refresh_from_db()
    assert card.points_balance == 100 == card_ledger_sum(card.pk)


def test_one_token_retried_for_its_own_receipt_at_once_credits_once(card, store):
    token = qr_token_mint(card.number).token

    def scan():
        return scan_record(qr_token=token, store_code=store.code, receipt_id="R-SAME", amount_fen=10_000).duplicate

    results = _race(scan, [()] * THREADS)
    assert sorted(results) == [False] + [True] * (THREADS - 1), results
    assert PointsLedger.objects.count() == 1
