"""Points lots with expiry (issue 12, item 2).

Every positive credit opens a lot; spending (any negative credit) drains the open lots oldest first (by expiry,
then id); the `expire_due_lots` job writes one `expire` entry per lapsed lot for what is left. All of it runs in
loyalty.services.points.points_credit under the card's row lock, so sum(open lots' remaining) ==
max(card.points_balance, 0) == max(sum(ledger), 0) at every commit.

Expiry days are Asia/Shanghai days: a lot credited on local day d with "months:12" can be used through
d + 12 months (clamped to the month's last day) and lapses at the next local midnight, stored UTC."""

from __future__ import annotations

import calendar
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from django.conf import settings
from django.db import transaction
from django.db.models import Min, Sum
from django.utils import timezone

from crm.errors import ApplicationError
from loyalty.models import Card, PointsLedger, PointsLot

SHANGHAI = ZoneInfo("Asia/Shanghai")
DEFAULT_EXPIRY = "months:12"


def _add_months(day: date, months: int) -> date:
    month0 = day.month - 1 + months
    year, month = day.year + month0 // 12, month0 % 12 + 1
    return date(year, month, min(day.day, calendar.monthrange(year, month)[1]))


def expiry_setting_parse(value: str | None) -> tuple[str, int]:
    """("months", n) or ("end_of_next_year", 0) from LOYALTY_POINTS_EXPIRY; a bad value is a configuration error."""
    value = (value or DEFAULT_EXPIRY).strip()
    if value == "end_of_next_year":
        return value, 0
    kind, _, n = value.partition(":")
    if kind == "months" and n.isdigit() and 0 < int(n) <= 1200:
        return "months", int(n)
    raise ApplicationError(
        f"LOYALTY_POINTS_EXPIRY must be 'months:N' or 'end_of_next_year', not {value!r}.",
        code="bad_setting",
        field="LOYALTY_POINTS_EXPIRY",
    )


def lot_expiry(credited_at: datetime, setting: str | None = None) -> tuple[date, datetime]:
    """(last usable day in Asia/Shanghai, UTC instant the lot lapses) for points credited at `credited_at`."""
    kind, months = expiry_setting_parse(setting or getattr(settings, "LOYALTY_POINTS_EXPIRY", DEFAULT_EXPIRY))
    local_day = credited_at.astimezone(SHANGHAI).date()
    last_day = date(local_day.year + 1, 12, 31) if kind == "end_of_next_year" else _add_months(local_day, months)
    lapse = datetime.combine(last_day + timedelta(days=1), time.min, tzinfo=SHANGHAI).astimezone(UTC)
    return last_day, lapse


def lot_open(card: Card, entry: PointsLedger, points: int, *, debt: int = 0) -> PointsLot:
    """A positive credit's lot. `debt` (a negative balance before it) is paid off first, so the lot keeps only
    what is left; called by points_credit under the card lock."""
    from loyalty.services._insert import insert_rows

    expires_on, expires_at = lot_expiry(entry.created_at or timezone.now())
    lot = PointsLot(
        card=card,
        entry=entry,
        points=points,
        remaining=max(points - debt, 0),
        expires_on=expires_on,
        expires_at=expires_at,
    )
    insert_rows([lot])  # PointsLot.objects.create's INSERT, compiled once (every scan opens a lot)
    return lot


def lots_consume(card: Card, points: int, *, lot_id: int | None = None) -> int:
    """Take up to `points` from the card's open lots, oldest first (or from one lot); returns what was taken.

    Called by points_credit under the card lock; the lots are locked too (a concurrent expiry of one lot)."""
    lots = PointsLot.objects.select_for_update().filter(card=card, remaining__gt=0).order_by("expires_at", "id")
    if lot_id is not None:
        lots = lots.filter(pk=lot_id)
    taken = 0
    for lot in lots:
        if taken >= points:
            break
        take = min(lot.remaining, points - taken)
        lot.remaining -= take
        lot.save(update_fields=["remaining"])
        taken += take
    return taken


def points_expiring_next(card_id: int) -> tuple[int, date] | None:
    """(points, day in Asia/Shanghai) of the next lots to expire on this card, or None.

    The points of every open lot whose last day is the earliest one; "N points expire on D" on the card page."""
    open_lots = PointsLot.objects.filter(card_id=card_id, remaining__gt=0, expires_at__gt=timezone.now())
    first_day = open_lots.aggregate(day=Min("expires_on"))["day"]
    if first_day is None:
        return None
    points = open_lots.filter(expires_on=first_day).aggregate(total=Sum("remaining"))["total"] or 0
    return points, first_day


def lots_open_sum(card_id: int) -> int:
    return PointsLot.objects.filter(card_id=card_id).aggregate(total=Sum("remaining"))["total"] or 0


def lot_expire(lot_id: int, *, now: datetime | None = None) -> PointsLedger | None:
    """Write the `expire` entry for what is left of one lapsed lot (once: key expire:lot:<id>); None if nothing."""
    from loyalty.services.points import points_credit

    now = now or timezone.now()
    card_id = PointsLot.objects.filter(pk=lot_id).values_list("card_id", flat=True).first()
    if card_id is None:
        return None
    with transaction.atomic():
        # The card lock first (as every credit takes it), then what is left of the lot now, not before the lock.
        Card.objects.select_for_update().filter(pk=card_id).first()
        lot = PointsLot.objects.get(pk=lot_id)
        if lot.remaining <= 0 or lot.expires_at > now:
            return None
        return points_credit(
            card_id=card_id,
            delta=-lot.remaining,
            kind=PointsLedger.Kind.EXPIRE,
            idempotency_key=f"expire:lot:{lot_id}",
            reason=f"Points expired (last day {lot.expires_on.isoformat()})",
            expire_lot_id=lot_id,
        )


def expire_due_lots(*, now: datetime | None = None, limit: int = 5000) -> int:
    """Expire every open lot that lapsed by `now` (at most `limit` per run; the next run takes the rest)."""
    now = now or timezone.now()
    due = PointsLot.objects.filter(remaining__gt=0, expires_at__lte=now).order_by("expires_at", "id")
    done = 0
    for lot_id in due.values_list("pk", flat=True)[:limit]:
        if lot_expire(lot_id, now=now) is not None:
            done += 1
    return done
