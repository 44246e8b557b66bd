"""Points lots: each credit a lot with an expiry (Asia/Shanghai days), spending oldest first, the expiry job, the
card's next expiry, and the console/API views of them."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
from django.utils import timezone

from loyalty.models import Card, PointsLedger, PointsLot
from loyalty.selectors import card_ledger_sum
from loyalty.services import points_credit
from loyalty.services.lots import SHANGHAI, expire_due_lots, lot_expiry, lots_open_sum, points_expiring_next
from loyalty.tasks_lots import expire_lots

pytestmark = pytest.mark.django_db


def _invariant(card_id: int) -> int:
    card = Card.objects.get(pk=card_id)
    assert card.points_balance == card_ledger_sum(card_id)
    assert lots_open_sum(card_id) == max(card.points_balance, 0)
    return card.points_balance


def test_expiry_days_are_shanghai_days():
    # 2026-03-31 17:30 UTC is already 1 April in Shanghai: 12 months later is 1 April 2027, lapsing at its end.
    last_day, lapse = lot_expiry(datetime(2026, 3, 31, 17, 30, tzinfo=UTC), "months:12")
    assert last_day == date(2027, 4, 1)
    assert lapse == datetime(2027, 4, 1, 16, 0, tzinfo=UTC)  # 2 April 00:00 in Shanghai
    # Month ends clamp: 31 Jan + 1 month is 28 Feb.
    assert lot_expiry(datetime(2026, 1, 31, 4, 0, tzinfo=UTC), "months:1")[0] == date(2026, 2, 28)
    # The end of next year, from the local day (31 Dec 2026 20:00 UTC is 1 Jan 2027 in Shanghai).
    assert lot_expiry(datetime(2026, 12, 31, 20, 0, tzinfo=UTC), "end_of_next_year")[0] == date(2028, 12, 31)
    assert lot_expiry(datetime(2026, 6, 1, tzinfo=UTC), "end_of_next_year")[1] == datetime(2027, 12, 31, 16, tzinfo=UTC)


def test_expiry_setting_is_read(settings, card):
    settings.LOYALTY_POINTS_EXPIRY = "end_of_next_year"
    points_credit(card_id=card.pk, delta=10, kind="earn", idempotency_key="k1")
    lot = PointsLot.objects.get(card=card)
    local_year = timezone.now().astimezone(SHANGHAI).year
    assert lot.expires_on == date(local_year + 1, 12, 31)


def test_each_credit_is_a_lot_and_spending_takes_the_oldest_first(card):
    for n, points in enumerate([100, 50, 30]):
        points_credit(card_id=card.pk, delta=points, kind="earn", idempotency_key=f"earn-{n}")
    lots = list(PointsLot.objects.filter(card=card).order_by("id"))
    assert [lot.points for lot in lots] == [100, 50, 30] and [lot.remaining for lot in lots] == [100, 50, 30]
    # Make the second lot the oldest to expire: spending follows expiry, not credit order.
    PointsLot.objects.filter(pk=lots[1].pk).update(expires_at=lots[0].expires_at - timedelta(days=1))
    points_credit(card_id=card.pk, delta=-70, kind="redeem", idempotency_key="spend-1")
    assert [PointsLot.objects.get(pk=lot.pk).remaining for lot in lots] == [80, 0, 30]
    assert _invariant(card.pk) == 110
    points_credit(card_id=card.pk, delta=-100, kind="redeem", idempotency_key="spend-2")
    assert [PointsLot.objects.get(pk=lot.pk).remaining for lot in lots] == [0, 0, 10]
    assert _invariant(card.pk) == 10
    # A retried spend is the same row, and takes nothing more.
    points_credit(card_id=card.pk, delta=-100, kind="redeem", idempotency_key="spend-2")
    assert _invariant(card.pk) == 10


def test_the_expiry_job_writes_one_expire_entry_per_lapsed_lot_once(card):
    points_credit(card_id=card.pk, delta=100, kind="earn", idempotency_key="old")
    points_credit(card_id=card.pk, delta=40, kind="earn", idempotency_key="new")
    old, new = PointsLot.objects.filter(card=card).order_by("id")
    past = timezone.now() - timedelta(minutes=1)
    PointsLot.objects.filter(pk=old.pk).update(expires_at=past, expires_on=(past - timedelta(days=1)).date())
    points_credit(card_id=card.pk, delta=-30, kind="redeem", idempotency_key="spend")  # from the old lot
    assert points_expiring_next(card.pk) == (new.remaining, new.expires_on)  # a lapsed lot is not "next"

    assert expire_lots() == 1
    entry = PointsLedger.objects.get(card=card, kind=PointsLedger.Kind.EXPIRE)
    assert entry.delta == -70 and entry.idempotency_key == f"expire:lot:{old.pk}"
    assert PointsLot.objects.get(pk=old.pk).remaining == 0
    assert PointsLot.objects.get(pk=new.pk).remaining == 40
    assert _invariant(card.pk) == 40
    # Beat again (or two overlapping runs): nothing more.
    assert expire_due_lots() == 0
    assert PointsLedger.objects.filter(card=card, kind=PointsLedger.Kind.EXPIRE).count() == 1
    # Expiring does not lower lifetime points (the tier keeps what was earned).
    assert Card.objects.get(pk=card.pk).lifetime_points == 140


def test_the_expiry_job_runs_in_the_future_too(card):
    points_credit(card_id=card.pk, delta=25, kind="earn", idempotency_key="e")
    lot = PointsLot.objects.get(card=card)
    assert expire_due_lots(now=lot.expires_at - timedelta(seconds=1)) == 0
    assert expire_due_lots(now=lot.expires_at) == 1
    assert _invariant(card.pk) == 0


def test_points_expiring_next_sums_the_lots_of_the_first_day(card):
    assert points_expiring_next(card.pk) is None
    for n, points in enumerate([10, 20, 5]):
        points_credit(card_id=card.pk, delta=points, kind="earn", idempotency_key=f"e{n}")
    lots = list(PointsLot.objects.filter(card=card).order_by("id"))
    later = lots[0].expires_on + timedelta(days=30)
    PointsLot.objects.filter(pk=lots[2].pk).update(expires_on=later, expires_at=lots[0].expires_at + timedelta(days=30))
    assert points_expiring_next(card.pk) == (30, lots[0].expires_on)
    points_credit(card_id=card.pk, delta=-30, kind="redeem", idempotency_key="s")
    assert points_expiring_next(card.pk) == (5, later)


def test_a_negative_adjust_takes_from_lots_and_a_later_credit_opens_one(card):
    points_credit(card_id=card.pk, delta=10, kind="earn", idempotency_key="a")
    points_credit(card_id=card.pk, delta=-10, kind="adjust", idempotency_key="b")
    points_credit(card_id=card.pk, delta=7, kind="earn", idempotency_key="c")
    assert _invariant(card.pk) == 7
    assert PointsLot.objects.filter(card=card, remaining__gt=0).count() == 1


def test_lots_api_and_card_ledger_screen(card, staff_client, admin_client, cashier_client):
    points_credit(card_id=card.pk, delta=12, kind="earn", idempotency_key="x")
    body = staff_client.get(f"/api/loyalty/cards/{card.pk}/lots").json()
    assert body["balance"] == body["open_points"] == body["expiring_points"] == 12
    assert body["lots"][0]["remaining"] == 12 and body["expiring_on"] == body["lots"][0]["expires_on"]
    assert cashier_client.get(f"/api/loyalty/cards/{card.pk}/lots").status_code == 403
    page = admin_client.get(f"/admin/loyalty/pointslot/card/{card.pk}/")
    assert page.status_code == 200
    html = page.content.decode()
    assert 'data-testid="card-ledger-balanced"' in html and "12 points expire on" in html
    assert admin_client.get("/admin/loyalty/pointslot/").status_code == 200
    assert admin_client.get("/admin/loyalty/purchasereturn/").status_code == 200
    schema = admin_client.get("/api/schema/").content.decode()
    assert "/api/loyalty/returns" in schema and "/api/loyalty/cards/{card_id}/lots" in schema
