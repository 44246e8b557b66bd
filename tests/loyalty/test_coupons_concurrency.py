"""Concurrent redemptions on PostgreSQL (real threads, one connection each, released together): the last units of
stock go to exactly as many customers as there are units, a per-customer limit holds under a burst from one card,
and every refused redemption wrote nothing (points, coupon, redemption)."""

from __future__ import annotations

import pytest
from django.db import connection

from crm.errors import ApplicationError
from loyalty.models import Card, Coupon, PointsLedger, Redemption, Reward
from loyalty.selectors import card_ledger_sum
from loyalty.services import card_get_or_create, points_credit, redemption_create
from tests.loyalty.threads import in_threads

pytestmark = pytest.mark.django_db(transaction=True)
THREADS = 8


def _redeem(card_id, reward_id, key):
    return redemption_create(card_id=card_id, reward_id=reward_id, idempotency_key=key)[1]


def _funded_cards(make_contact, n, points):
    cards = []
    for i in range(n):
        card = card_get_or_create(make_contact().pk)
        points_credit(card_id=card.pk, delta=points, kind=PointsLedger.Kind.ADJUST, idempotency_key=f"fund-{card.pk}")
        cards.append(card)
    return cards


def _codes(results):
    return sorted(r.code if isinstance(r, ApplicationError) else r for r in results if r is not True)


@pytest.fixture(autouse=True)
def _postgres_only():
    if connection.vendor != "postgresql":
        pytest.skip("row locks only matter on PostgreSQL (DATABASE_URL=postgres://...)")


@pytest.mark.parametrize("stock", [1, 3])
def test_the_last_stock_goes_to_exactly_that_many_customers(tiers, make_contact, stock):
    reward = Reward.objects.create(name="Last mug", points_cost=100, stock=stock)
    cards = _funded_cards(make_contact, THREADS, 150)
    results = in_threads(_redeem, [(c.pk, reward.pk, f"k-{c.pk}") for c in cards])
    assert results.count(True) == stock, results
    assert _codes(results) == ["out_of_stock"] * (THREADS - stock), results
    reward.refresh_from_db()
    assert reward.stock == 0
    assert Redemption.objects.count() == Coupon.objects.count() == stock
    assert PointsLedger.objects.filter(kind=PointsLedger.Kind.REDEEM).count() == stock
    for card in Card.objects.filter(pk__in=[c.pk for c in cards]):
        redeemed = Coupon.objects.filter(card=card).exists()
        assert card.points_balance == (50 if redeemed else 150) == card_ledger_sum(card.pk)


def test_a_burst_from_one_card_stays_within_its_limit(card):
    reward = Reward.objects.create(name="One per customer", points_cost=10, stock=100, per_customer_limit=2)
    points_credit(card_id=card.pk, delta=1000, kind=PointsLedger.Kind.ADJUST, idempotency_key="fund")
    results = in_threads(_redeem, [(card.pk, reward.pk, f"burst-{n}") for n in range(THREADS)])
    assert results.count(True) == 2, results
    assert _codes(results) == ["over_customer_limit"] * (THREADS - 2)
    card.refresh_from_db()
    reward.refresh_from_db()
    assert card.points_balance == 980 == card_ledger_sum(card.pk)
    assert reward.stock == 98 and Coupon.objects.filter(card=card).count() == 2


def test_a_burst_cannot_spend_more_points_than_the_card_has(card):
    reward = Reward.objects.create(name="Pricey", points_cost=300)
    points_credit(card_id=card.pk, delta=1000, kind=PointsLedger.Kind.ADJUST, idempotency_key="fund")
    results = in_threads(_redeem, [(card.pk, reward.pk, f"spend-{n}") for n in range(THREADS)])
    assert results.count(True) == 3, results
    assert _codes(results) == ["insufficient_points"] * (THREADS - 3)
    card.refresh_from_db()
    assert card.points_balance == 100 == card_ledger_sum(card.pk)
