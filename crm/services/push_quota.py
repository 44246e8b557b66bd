"""WeCom's receive quota for mass messages, held by the CRM itself.

WeCom lets each customer (and each customer group) receive a limited number of mass messages per period,
counted in China time: by default as many per month as the month has days; a corp admin can switch to 7 per week
or 1 per day (`WECOM_MASS_QUOTA` = "month_days" | "week7" | "day1", the names the simulator's corp setting uses).
Messages over it are dropped by WeCom (send result status 3). The CRM counts what it has already planned or
delivered in the period and holds the rest back as `over_quota`, with the moment they become reachable again,
instead of spending a staff member's confirmation on messages WeCom will not deliver.
"""

from __future__ import annotations

import calendar
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from django.conf import settings
from django.db.models import Count, IntegerField, OuterRef, Subquery
from django.db.models.functions import Coalesce
from django.utils import timezone

from crm.errors import ApplicationError
from crm.models import CampaignGroupRecipient, CampaignRecipient

CHINA = ZoneInfo("Asia/Shanghai")
QUOTAS = ("month_days", "week7", "day1")
# What counts against the quota: planned and not yet final (it may still be delivered), and delivered. Expired,
# cancelled, excluded, rejected or not-a-friend recipients never reached the customer.
COUNTING = (CampaignRecipient.Status.PENDING, CampaignRecipient.Status.DELIVERED)


@dataclass(frozen=True)
class Window:
    """The quota period containing a moment: its first local day, when the next one starts (UTC), the limit."""

    start_day: date
    reachable_at: datetime
    limit: int


def quota_kind() -> str:
    kind = getattr(settings, "WECOM_MASS_QUOTA", "month_days")
    if kind not in QUOTAS:
        raise ApplicationError(f"WECOM_MASS_QUOTA must be one of {', '.join(QUOTAS)}.", field="WECOM_MASS_QUOTA")
    return kind


def local_day(moment: datetime | None = None) -> date:
    """The Asia/Shanghai date of a moment: the day a message counts against (CampaignRecipient.quota_day)."""
    return timezone.localtime(moment or timezone.now(), CHINA).date()


def window(moment: datetime | None = None, kind: str | None = None) -> Window:
    day = local_day(moment)
    kind = kind or quota_kind()
    if kind == "day1":
        start, next_start, limit = day, day + timedelta(days=1), 1
    elif kind == "week7":
        start = day - timedelta(days=day.weekday())  # WeCom's week starts on Monday
        next_start, limit = start + timedelta(days=7), 7
    else:
        start = day.replace(day=1)
        limit = calendar.monthrange(day.year, day.month)[1]
        next_start = start + timedelta(days=limit)
    reachable = datetime.combine(next_start, time(0), tzinfo=CHINA).astimezone(UTC)
    return Window(start_day=start, reachable_at=reachable, limit=limit)


def received(moment: datetime | None = None, *, contact_ref: str = "pk") -> Coalesce:
    """Per contact (OuterRef(contact_ref)): the messages counting against its quota in the period of `moment`.
    An index-only probe of recipient_contact_quota_day per contact."""
    start = window(moment).start_day
    counted = (
        CampaignRecipient.objects.filter(
            contact_id=OuterRef(contact_ref), quota_day__gte=start, status__in=COUNTING
        )
        .order_by()
        .values("contact_id")
        .annotate(n=Count("*"))
        .values("n")
    )
    return Coalesce(Subquery(counted, output_field=IntegerField()), 0)


def group_received(moment: datetime | None = None, *, group_ref: str = "pk") -> Coalesce:
    """Per customer group (OuterRef(group_ref)): group messages counting against its quota in the period."""
    w = window(moment)
    since = datetime.combine(w.start_day, time(0), tzinfo=CHINA)
    counted = (
        CampaignGroupRecipient.objects.filter(
            group_id=OuterRef(group_ref), run__occurrence__gte=since, status__in=COUNTING
        )
        .order_by()
        .values("group_id")
        .annotate(n=Count("*"))
        .values("n")
    )
    return Coalesce(Subquery(counted, output_field=IntegerField()), 0)


def remaining(contact_id: int, moment: datetime | None = None) -> int:
    """How many more mass messages this customer can receive in the period (for pages and tests)."""
    w = window(moment)
    used = CampaignRecipient.objects.filter(
        contact_id=contact_id, quota_day__gte=w.start_day, status__in=COUNTING
    ).count()
    return max(0, w.limit - used)
