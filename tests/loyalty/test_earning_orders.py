"""Tmall/JD orders earn points only when LOYALTY_ORDERS_EARN_POINTS; each order once, under the same rules."""

from __future__ import annotations

import datetime as dt

import pytest

from crm.models import DataSource, SourceOrderLine
from loyalty.models import EarningRule, PointsLedger
from loyalty.services.earning import orders_earn

pytestmark = pytest.mark.django_db


def _order(card, order_id="T-1"):
    source = DataSource.objects.get_or_create(name="Tmall", openness="semi_open")[0]
    at = dt.datetime(2026, 11, 11, 4, tzinfo=dt.UTC)
    for no, amount in ((1, 9800), (2, 2100)):
        SourceOrderLine.objects.create(
            source=source, order_id=order_id, line_no=no, phone_hash="h" * 64, contact=card.contact,
            sku=f"S{no}", amount_fen=amount, ordered_at=at,
        )  # fmt: skip
    return source


def test_orders_earn_nothing_by_default(card):
    _order(card)
    assert orders_earn() == 0 and not PointsLedger.objects.exists()


def test_orders_earn_once_under_the_rules_when_the_setting_is_on(card, settings):
    settings.LOYALTY_ORDERS_EARN_POINTS = True
    EarningRule.objects.create(name="11.11", kind="multiplier", multiplier_pct=200, starts_on=dt.date(2026, 11, 11),
                               ends_on=dt.date(2026, 11, 11))  # fmt: skip
    source = _order(card)
    assert orders_earn() == 1
    assert orders_earn() == 0  # once
    entry = PointsLedger.objects.get(card=card)
    assert entry.delta == 238 and entry.idempotency_key == f"order:{source.pk}:T-1"
    card.refresh_from_db()
    assert card.points_balance == 238
