"""Birthday earning: a bonus once per contact and calendar year of the birthday (EarningBonusGrant unique per
(contact, event, period), ledger key bonus:birthday:<contact>:<year>), on a receipt in the birthday week; and a
birthday-week multiplier when the receipt's Asia/Shanghai date is within 3 days of the birthday."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from crm.errors import ApplicationError
from loyalty.models import Card, EarningBonusGrant, PointsLedger
from loyalty.qr import qr_token_mint
from loyalty.services import scan_record
from loyalty.services.earning import earn_evaluate, earning_rule_save

pytestmark = pytest.mark.django_db
CHINA = ZoneInfo("Asia/Shanghai")


def _rule(kind, **fields):
    return earning_rule_save({"name": f"{kind} {fields}", "kind": kind, **fields})


def _born(card, birthday):
    card.contact.birthday = birthday
    card.contact.save(update_fields=["birthday"])
    return Card.objects.select_related("contact").get(pk=card.pk)


def _at(y, m, d, hour=12):
    return dt.datetime(y, m, d, hour, 0, tzinfo=CHINA)


def _points(card, store, at, amount=10_000):
    return earn_evaluate(card=card, store=store, amount_fen=amount, at=at)


@pytest.mark.parametrize(
    ("birthday", "at", "doubled"),
    [
        (dt.date(1990, 6, 15), _at(2026, 6, 15), True),
        (dt.date(1990, 6, 15), _at(2026, 6, 12), True),  # 3 days before
        (dt.date(1990, 6, 15), _at(2026, 6, 18, 23), True),  # 3 days after, late evening in Shanghai
        (dt.date(1990, 6, 15), _at(2026, 6, 11), False),
        (dt.date(1990, 6, 15), _at(2026, 6, 19), False),
        (dt.date(1990, 12, 30), _at(2027, 1, 2), True),  # across the new year
        (dt.date(1992, 2, 29), _at(2027, 3, 2), True),  # 29 February is the 28th in other years
        (None, _at(2026, 6, 15), False),
    ],
)
def test_birthday_week_multiplier(card, store, birthday, at, doubled):
    week = _rule("birthday_week", multiplier_pct=200)
    card = _born(card, birthday)
    result = _points(card, store, at)
    assert result.points == (200 if doubled else 100)
    assert any(b["rule"] == week.pk for b in result.breakdown) is doubled


def test_the_shanghai_date_decides_not_utc(card, store):
    _rule("birthday_week", multiplier_pct=200)
    card = _born(card, dt.date(1990, 6, 15))
    # 2026-06-18 23:30 UTC is already 06-19 in Shanghai: 4 days after, outside the week.
    late = dt.datetime(2026, 6, 18, 23, 30, tzinfo=dt.UTC)
    assert _points(card, store, late).points == 100


def test_birthday_week_rule_is_validated_by_field():
    with pytest.raises(ApplicationError) as refused:
        _rule("birthday_week")
    assert refused.value.field == "multiplier_pct"
    with pytest.raises(ApplicationError) as no_sku:
        _rule("birthday_week", multiplier_pct=150, sku="TEA")
    assert no_sku.value.field == "sku"
    with pytest.raises(ApplicationError) as bad_event:
        _rule("bonus", event="wedding", bonus_points=10)
    assert bad_event.value.field == "event"


def _scan(card, store, receipt, at, monkeypatch):
    from django.utils import timezone

    monkeypatch.setattr(timezone, "now", lambda: at)
    return scan_record(
        qr_token=qr_token_mint(card.number, now=at.timestamp()).token, store_code=store.code, receipt_id=receipt,
        amount_fen=10_000, now=at.timestamp(),
    )  # fmt: skip


def test_birthday_bonus_once_per_calendar_year_in_the_birthday_week(card, store, monkeypatch):
    bonus = _rule("bonus", event="birthday", bonus_points=88)
    card = _born(card, dt.date(1990, 12, 30))
    key = f"bonus:birthday:{card.contact_id}:2026"
    _scan(card, store, "B-0", _at(2026, 12, 20), monkeypatch)  # not the birthday week: nothing
    assert not EarningBonusGrant.objects.exists()
    first = _scan(card, store, "B-1", _at(2026, 12, 29), monkeypatch)
    assert any(b.get("event") == "birthday" and b.get("bonus") for b in first.purchase.earn_breakdown)
    _scan(card, store, "B-2", _at(2027, 1, 1), monkeypatch)  # same birthday (2026's), a few days on: not again
    assert PointsLedger.objects.filter(idempotency_key=key).count() == 1
    assert list(EarningBonusGrant.objects.values_list("event", "period", "rule")) == [("birthday", "2026", bonus.pk)]
    _scan(card, store, "B-3", _at(2027, 12, 31), monkeypatch)  # next year's birthday week: again, once
    assert EarningBonusGrant.objects.filter(period="2027").count() == 1
    assert PointsLedger.objects.filter(idempotency_key=f"bonus:birthday:{card.contact_id}:2027").count() == 1
    card.refresh_from_db()
    assert card.points_balance == 4 * 100 + 2 * 88


def test_no_birthday_rule_reads_no_contact(card, store):
    """A scan's card comes without its contact: without birthday rules, evaluating costs no extra query."""
    _rule("multiplier", multiplier_pct=150)
    bare = Card.objects.get(pk=card.pk)
    with CaptureQueriesContext(connection) as ctx:
        earn_evaluate(card=bare, store=store, amount_fen=10_000, at=_at(2026, 6, 15))
    assert not any('"crm_contact"' in q["sql"] for q in ctx.captured_queries)
