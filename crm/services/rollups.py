"""Keeps the dashboard's rollups (crm.models.rollups): each refresh recomputes whole rows from their source, so
running it twice, late, or after a crash gives the same rows (no increments to lose or double)."""

from __future__ import annotations

from datetime import date, datetime, timedelta

from django.db import transaction
from django.utils import timezone

from crm.models import Campaign, CampaignFunnelStat, DailyContactStat, DashboardSnapshot
from crm.selectors.dashboard import WINDOW_DAYS, campaign_funnel_live, follow_daily_live, shanghai_today, window

# A finished campaign's statuses still move for a while (WeCom's results are polled after the last send).
FUNNEL_SETTLE_DAYS = 3


def contact_stats_refresh(start: date, end: date) -> int:
    """Replace the rollup rows of the Shanghai days [start, end] with fresh counts; -> rows written."""
    counts = follow_daily_live(start, end)
    now = timezone.now()
    rows = [
        DailyContactStat(day=day, state=state, adds=adds, deletes=deletes, refreshed_at=now)
        for (day, state), (adds, deletes) in counts.items()
    ]
    # A day with no activity still gets a row, so the dashboard knows it is counted (and reads no live query).
    counted = {day for day, _ in counts}
    day = start
    while day <= end:
        if day not in counted:
            rows.append(DailyContactStat(day=day, state="", adds=0, deletes=0, refreshed_at=now))
        day += timedelta(days=1)
    with transaction.atomic():
        DailyContactStat.objects.filter(day__gte=start, day__lte=end).delete()
        DailyContactStat.objects.bulk_create(rows, batch_size=1000)
    return len(rows)


def campaign_funnels_refresh(campaign_ids: list[int]) -> int:
    """Recount these campaigns' funnels; -> rows written."""
    if not campaign_ids:
        return 0
    counts = campaign_funnel_live(campaign_ids)
    now = timezone.now()
    rows = [CampaignFunnelStat(campaign_id=cid, refreshed_at=now, **steps) for cid, steps in counts.items()]
    CampaignFunnelStat.objects.bulk_create(
        rows, update_conflicts=True, unique_fields=["campaign"],
        update_fields=["planned", "sent", "delivered", "claimed", "refreshed_at"],
    )  # fmt: skip
    return len(rows)


def dashboard_rollups_refresh(now: datetime | None = None) -> dict:
    """What beat runs: yesterday and today recounted (late callbacks land on yesterday), any day of the window
    the rollup lacks (first run, or beat was down), and the funnels of campaigns running or recently done."""
    now = now or timezone.now()
    today = shanghai_today(now)
    have = set(DailyContactStat.objects.filter(day__gte=window(WINDOW_DAYS, today)[0]).values_list("day", flat=True))
    missing = [d for d in window(WINDOW_DAYS, today)[:-2] if d not in have]
    days = 0
    if missing:
        days += contact_stats_refresh(missing[0], missing[-1])
    days += contact_stats_refresh(today - timedelta(days=1), today)
    settled = now - timedelta(days=FUNNEL_SETTLE_DAYS)
    campaign_ids = list(
        Campaign.objects.filter(launched_at__isnull=False)
        .exclude(status=Campaign.Status.DONE, finished_at__lt=settled)
        .exclude(status=Campaign.Status.CANCELLED, cancelled_at__lt=settled)
        .values_list("id", flat=True)
    )
    # Campaigns that settled before beat ever counted them (e.g. rollups added to a running system) once.
    campaign_ids += list(
        Campaign.objects.filter(launched_at__isnull=False, funnel_stat__isnull=True)
        .exclude(id__in=campaign_ids)
        .values_list("id", flat=True)
    )
    return {"day_rows": days, "campaigns": campaign_funnels_refresh(campaign_ids)}


def snapshot_put(key: str, data: dict) -> None:
    """Store (replace) one named dashboard figure."""
    DashboardSnapshot.objects.update_or_create(key=key, defaults={"data": data, "refreshed_at": timezone.now()})
