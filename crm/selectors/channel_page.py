"""Reads for the console's channel page: the adds a channel brought (attribution) and adds per Shanghai day."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from django.db.models import Count, Prefetch, QuerySet
from django.db.models.functions import TruncDate
from django.utils import timezone

from crm.models.channels import Channel
from crm.models.contacts import Contact, FollowRelation

SHANGHAI = ZoneInfo("Asia/Shanghai")


def channel_page_channel(channel_id: int) -> Channel | None:
    return Channel.objects.prefetch_related("staff").filter(pk=channel_id).first()


def channel_page_adds(channel: Channel) -> QuerySet[Contact]:
    """Contacts attributed to this channel, newest add first, each with the relation(s) made through it (the
    staff member the customer added by scanning this channel's QR). Served by the contact.channel index."""
    through = FollowRelation.objects.select_related("staff").filter(state=channel.state).order_by("added_at", "id")
    return (
        Contact.objects.filter(channel=channel)
        .order_by("-first_added_at", "-id")
        .prefetch_related(Prefetch("follows", queryset=through, to_attr="through_channel"))
    )


def channel_page_daily_adds(channel: Channel, *, days: int = 30, today: date | None = None) -> list[dict]:
    """New contacts attributed to the channel per Shanghai day, the last `days` days up to today, zeros included.

    One grouped query (on the contact.channel index), not a loop over rows."""
    today = today or timezone.localdate(timezone=SHANGHAI)
    start = today - timedelta(days=days - 1)
    since = datetime.combine(start, time.min, tzinfo=SHANGHAI)
    until = datetime.combine(today + timedelta(days=1), time.min, tzinfo=SHANGHAI)
    counts = dict(
        Contact.objects.filter(channel=channel, first_added_at__gte=since, first_added_at__lt=until)
        .order_by()
        .annotate(day=TruncDate("first_added_at", tzinfo=SHANGHAI))
        .values("day")
        .annotate(n=Count("id"))
        .values_list("day", "n")
    )
    return [{"day": start + timedelta(days=i), "adds": counts.get(start + timedelta(days=i), 0)} for i in range(days)]
