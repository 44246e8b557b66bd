"""Reads for the console dashboard. Every figure is one aggregate query (or a rollup row), never a loop over rows:
the page must stay fast at millions of contacts. Days are Asia/Shanghai days, whatever the viewer's time zone."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from django.db.models import Count, F, Min, Q, Sum
from django.db.models.functions import TruncDate
from django.utils import timezone

from crm import health
from crm.models import (
    CallbackEvent,
    Campaign,
    CampaignFunnelStat,
    CampaignRecipient,
    Channel,
    DailyContactStat,
    DashboardSnapshot,
    FollowRelation,
    MassMessage,
    RedPacketClaim,
    RedPacketPool,
    RedPacketRefund,
)

SHANGHAI = ZoneInfo("Asia/Shanghai")
WINDOW_DAYS = 30


def shanghai_today(now: datetime | None = None) -> date:
    return timezone.localtime(now or timezone.now(), SHANGHAI).date()


def day_range(start: date, end: date) -> tuple[datetime, datetime]:
    """[start 00:00, end+1 00:00) in Shanghai, as aware datetimes (what the indexed range scans compare)."""
    since = datetime.combine(start, time.min, tzinfo=SHANGHAI)
    until = datetime.combine(end + timedelta(days=1), time.min, tzinfo=SHANGHAI)
    return since, until


def window(days: int = WINDOW_DAYS, today: date | None = None) -> list[date]:
    today = today or shanghai_today()
    return [today - timedelta(days=days - 1 - i) for i in range(days)]


# --- contacts: adds and losses per day ------------------------------------------------------------------------


def follow_daily_live(start: date, end: date) -> dict[tuple[date, str], list[int]]:
    """{(day, state): [adds, deletes]} straight from the follow relations, for Shanghai days in [start, end].

    An add is a relation added (added_at) that day; a loss is a relation whose first deletion (by the staff member
    or by the customer, whichever came first) fell that day: each lost relation counts once. Three range scans on
    the follow_added_at / follow_deleted_by_* indexes."""
    since, until = day_range(start, end)
    out: dict[tuple[date, str], list[int]] = {}
    adds = (
        FollowRelation.objects.filter(added_at__gte=since, added_at__lt=until)
        .annotate(day=TruncDate("added_at", tzinfo=SHANGHAI))
        .values("day", "state")
        .annotate(n=Count("id"))
        .order_by()
    )
    for row in adds:
        out.setdefault((row["day"], row["state"]), [0, 0])[0] += row["n"]
    by_staff = FollowRelation.objects.filter(
        Q(deleted_by_customer_at__isnull=True) | Q(deleted_by_customer_at__gte=F("deleted_by_staff_at")),
        deleted_by_staff_at__gte=since, deleted_by_staff_at__lt=until,
    ).annotate(day=TruncDate("deleted_by_staff_at", tzinfo=SHANGHAI))
    by_customer = FollowRelation.objects.filter(
        Q(deleted_by_staff_at__isnull=True) | Q(deleted_by_staff_at__gt=F("deleted_by_customer_at")),
        deleted_by_customer_at__gte=since, deleted_by_customer_at__lt=until,
    ).annotate(day=TruncDate("deleted_by_customer_at", tzinfo=SHANGHAI))
    for qs in (by_staff, by_customer):
        for row in qs.values("day", "state").annotate(n=Count("id")).order_by():
            out.setdefault((row["day"], row["state"]), [0, 0])[1] += row["n"]
    return out


def contact_daily(days: int = WINDOW_DAYS, today: date | None = None) -> dict[tuple[date, str], list[int]]:
    """Adds and losses per (day, state) over the window: closed days from the rollup, today (and any day the
    rollup has not reached yet, e.g. before beat's first run) counted live."""
    today = today or shanghai_today()
    dates = window(days, today)
    out: dict[tuple[date, str], list[int]] = {}
    rolled: set[date] = set()
    for row in DailyContactStat.objects.filter(day__gte=dates[0], day__lt=today).values("day", "state", "adds",
                                                                                          "deletes"):
        rolled.add(row["day"])
        out[(row["day"], row["state"])] = [row["adds"], row["deletes"]]
    missing = [d for d in dates if d not in rolled]
    if missing:
        live = follow_daily_live(missing[0], missing[-1])
        out.update({key: value for key, value in live.items() if key[0] not in rolled})
    return out


def contacts_growth(days: int = WINDOW_DAYS, today: date | None = None) -> dict:
    """The window's days, adds per channel per day, and adds / deletes / net per day."""
    dates = window(days, today)
    index = {d: i for i, d in enumerate(dates)}
    cells = contact_daily(days, dates[-1])
    names = dict(Channel.objects.values_list("state", "name"))
    per_channel: dict[str, list[int]] = {}
    adds, deletes = [0] * days, [0] * days
    for (day, state), (added, lost) in cells.items():
        if day not in index:
            continue
        i = index[day]
        key = state if state in names else ""  # a state no channel claims counts as "no channel"
        per_channel.setdefault(key, [0] * days)[i] += added
        adds[i] += added
        deletes[i] += lost
    channels = sorted(
        ({"state": state, "name": names.get(state, ""), "adds": series} for state, series in per_channel.items()),
        key=lambda c: (-sum(c["adds"]), c["state"] == "", c["name"]),
    )
    return {
        "days": dates,
        "channels": [c for c in channels if sum(c["adds"])],
        "adds": adds,
        "deletes": deletes,
        "net": [a - d for a, d in zip(adds, deletes, strict=True)],
    }


def snapshot_get(key: str) -> tuple[dict | None, datetime | None]:
    """A named figure beat stored (crm.services.rollups.snapshot_put) and when: (None, None) before its first run."""
    row = DashboardSnapshot.objects.filter(key=key).values("data", "refreshed_at").first()
    return (row["data"], row["refreshed_at"]) if row else (None, None)


# --- campaigns ----------------------------------------------------------------------------------------------

FUNNEL_STEPS = ("planned", "sent", "delivered", "claimed")


def campaign_funnel_live(campaign_ids: list[int]) -> dict[int, dict[str, int]]:
    """{campaign_id: {planned, sent, delivered, claimed}} counted now.

    planned: recipient rows; sent: handed to WeCom in a task it accepted (and not refused in its fail_list);
    delivered: WeCom says delivered; claimed: red packets claimed from the campaign's pool."""
    out = {cid: dict.fromkeys(FUNNEL_STEPS, 0) for cid in campaign_ids}
    if not campaign_ids:
        return out
    accepted = [MassMessage.Status.CREATED, MassMessage.Status.DONE]
    not_sent = [CampaignRecipient.Status.REJECTED, CampaignRecipient.Status.CANCELLED]
    rows = (
        CampaignRecipient.objects.filter(campaign_id__in=campaign_ids)
        .values("campaign_id")
        .annotate(
            planned=Count("id"),
            sent=Count("id", filter=Q(mass_message__status__in=accepted) & ~Q(status__in=not_sent)),
            delivered=Count("id", filter=Q(status=CampaignRecipient.Status.DELIVERED)),
        )
        .order_by()
    )
    for row in rows:
        out[row["campaign_id"]].update(planned=row["planned"], sent=row["sent"], delivered=row["delivered"])
    claims = (
        RedPacketClaim.objects.filter(pool__campaign_id__in=campaign_ids)
        .values("pool__campaign_id")
        .annotate(n=Count("id"))
        .order_by()
    )
    for row in claims:
        out[row["pool__campaign_id"]]["claimed"] = row["n"]
    return out


def campaign_funnels(limit: int = 5) -> list[dict]:
    """The funnel of the most recently launched campaigns, newest first: the rollup where beat has counted it
    (with its time), counted live for a campaign it has not reached yet."""
    campaigns = list(
        Campaign.objects.filter(launched_at__isnull=False)
        .order_by("-launched_at", "-id")
        .values("id", "name", "status", "launched_at")[:limit]
    )
    ids = [c["id"] for c in campaigns]
    stats = {
        s["campaign_id"]: s
        for s in CampaignFunnelStat.objects.filter(campaign_id__in=ids).values("campaign_id", *FUNNEL_STEPS,
                                                                               "refreshed_at")
    }
    live = campaign_funnel_live([cid for cid in ids if cid not in stats])
    out = []
    for c in campaigns:
        row = stats.get(c["id"]) or {**live[c["id"]], "refreshed_at": None}
        out.append({**c, **{step: row[step] for step in FUNNEL_STEPS}, "counted_at": row["refreshed_at"]})
    return out


# --- red packets --------------------------------------------------------------------------------------------


def redpacket_spend(limit: int = 8) -> list[dict]:
    """The latest launched pools: budget against paid, pending payout (claimed, not yet paid) and refunded."""
    pools = list(
        RedPacketPool.objects.exclude(status=RedPacketPool.Status.DRAFT)
        .order_by("-activated_at", "-id")
        .values("id", "campaign__name", "act_name", "status", "budget_fen", "count")[:limit]
    )
    ids = [p["id"] for p in pools]
    claims: dict[int, dict] = {pid: {"paid_fen": 0, "pending_fen": 0, "claims": 0} for pid in ids}
    rows = (
        RedPacketClaim.objects.filter(pool_id__in=ids)
        .values("pool_id")
        .annotate(
            claims=Count("id"),
            paid_fen=Sum("amount_fen", filter=Q(status=RedPacketClaim.Status.PAID), default=0),
            pending_fen=Sum("amount_fen", filter=~Q(status=RedPacketClaim.Status.PAID), default=0),
        )
        .order_by()
    )
    for row in rows:
        claims[row["pool_id"]] = {k: row[k] for k in ("paid_fen", "pending_fen", "claims")}
    refunds = dict(RedPacketRefund.objects.filter(pool_id__in=ids).values_list("pool_id", "amount_fen"))
    return [
        {**p, **claims[p["id"]], "refunded_fen": refunds.get(p["id"], 0), "name": p["campaign__name"] or p["act_name"]}
        for p in pools
    ]


# --- operations ---------------------------------------------------------------------------------------------


def callback_backlog(now: datetime | None = None) -> dict:
    """Callbacks stored but not processed yet (and failed ones), with the oldest waiting one's age.
    Both read the (status, received_at) index."""
    now = now or timezone.now()
    counts = dict(
        CallbackEvent.objects.filter(status__in=[CallbackEvent.Status.RECEIVED, CallbackEvent.Status.FAILED])
        .values("status")
        .annotate(n=Count("id"))
        .order_by()
        .values_list("status", "n")
    )
    oldest = CallbackEvent.objects.filter(status=CallbackEvent.Status.RECEIVED).aggregate(m=Min("received_at"))["m"]
    return {
        "waiting": counts.get(CallbackEvent.Status.RECEIVED, 0),
        "failed": counts.get(CallbackEvent.Status.FAILED, 0),
        "oldest_received_at": oldest,
        "oldest_age_seconds": max(0, int((now - oldest).total_seconds())) if oldest else None,
    }


def system_health() -> dict:
    """The checks /healthz runs: database, Redis and a fresh Celery worker heartbeat."""
    database = health._check_database()
    redis_status, workers = health._check_redis_and_workers()
    checks = {"database": database, "redis": redis_status, "worker": workers}
    return {"ok": all(c["ok"] for c in checks.values()), "checks": checks}
