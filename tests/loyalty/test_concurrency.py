"""Concurrent scans: a receipt credits at most once, and balance == sum(ledger), under real threads.

Run against PostgreSQL (DATABASE_URL=postgres://...) for the row locks to matter; SQLite serialises writers."""

from __future__ import annotations

import pytest
import requests
from django.db import connection

from loyalty.models import Card, PointsLedger, Purchase
from loyalty.qr import qr_token_mint
from loyalty.selectors import card_ledger_sum
from loyalty.services import card_get_or_create, points_credit, scan_record
from tests.loyalty.threads import in_threads

pytestmark = pytest.mark.django_db(transaction=True)
THREADS = 8


def _scan(card_number, store_code, receipt, amount):
    result = scan_record(
        qr_token=qr_token_mint(card_number).token, store_code=store_code, receipt_id=receipt, amount_fen=amount
    )
    return result.duplicate


def test_concurrent_scans_of_one_card_keep_balance_equal_to_ledger(card, store, tiers):
    args = [(card.number, store.code, f"R-{n}", 100 * (n + 1) * 37) for n in range(THREADS)]
    results = in_threads(_scan, args)
    assert results == [False] * THREADS, results
    card = Card.objects.get(pk=card.pk)
    expected = sum(37 * (n + 1) for n in range(THREADS))
    assert card.points_balance == card_ledger_sum(card.pk) == card.lifetime_points == expected
    assert PointsLedger.objects.filter(card=card).count() == THREADS
    # The running balance_after is a consistent sequence: each row saw the previous one.
    entries = list(PointsLedger.objects.filter(card=card).order_by("id"))
    running = 0
    for entry in entries:
        running += entry.delta
        assert entry.balance_after == running


def test_the_same_receipt_scanned_concurrently_credits_once(card, store, tiers):
    results = in_threads(_scan, [(card.number, store.code, "R-SAME", 50_000)] * THREADS)
    assert sorted(results, key=str) == [False] + [True] * (THREADS - 1), results
    assert Purchase.objects.count() == 1 and PointsLedger.objects.count() == 1
    card = Card.objects.get(pk=card.pk)
    assert card.points_balance == 500 == card_ledger_sum(card.pk)


def test_concurrent_credits_with_one_key_apply_once(card):
    def credit():
        return points_credit(card_id=card.pk, delta=10, kind="earn", idempotency_key="same-key").pk

    results = in_threads(credit, [()] * THREADS)
    assert len(set(results)) == 1, results
    assert Card.objects.get(pk=card.pk).points_balance == 10 == card_ledger_sum(card.pk)


def test_concurrent_first_opens_make_one_card(make_contact, tiers):
    contact = make_contact()
    results = in_threads(lambda: card_get_or_create(contact.pk).pk, [()] * THREADS)
    assert len(set(results)) == 1, results
    assert Card.objects.filter(contact=contact).count() == 1


def test_concurrent_http_retries_of_one_receipt(live_server, card, store, cashier):
    from rest_framework.authtoken.models import Token

    token = Token.objects.create(user=cashier).key
    body = {
        "qr_token": qr_token_mint(card.number).token,
        "receipt_id": "R-HTTP",
        "store": store.code,
        "amount_fen": 88_800,
        "items": [{"sku": "GIFT-BOX", "qty": 1, "amount_fen": 88_800}],
    }

    def post():
        response = requests.post(
            f"{live_server.url}/api/loyalty/scans", json=body, headers={"Authorization": f"Token {token}"}, timeout=30
        )
        return response.status_code, response.json()

    results = in_threads(post, [()] * THREADS)
    statuses = sorted(status for status, _ in results)
    assert statuses == [200] * (THREADS - 1) + [201], results
    assert {b["purchase_id"] for _, b in results} == {Purchase.objects.get().pk}
    assert sum(b["duplicate"] for _, b in results) == THREADS - 1
    card = Card.objects.get(pk=card.pk)
    assert card.points_balance == 888 == card_ledger_sum(card.pk)
    assert connection.vendor in ("sqlite", "postgresql")
