"""Reads for the campaign screens (compose form, runs table): the groups and saved segments a marketer picks from,
each run's counts, and a schedule's next occurrences in Asia/Shanghai."""

from __future__ import annotations

from datetime import datetime

from django.db.models import Count, Q, QuerySet

from crm.models import Campaign, CampaignGroupRecipient, CampaignRecipient, CampaignRun, CustomerGroup, Segment


def compose_groups() -> QuerySet[CustomerGroup]:
    """Active customer groups with their owner and current member count (left_at null), by name."""
    return (
        CustomerGroup.objects.filter(status=CustomerGroup.Status.ACTIVE)
        .select_related("owner")
        .annotate(member_count=Count("members", filter=Q(members__left_at__isnull=True)))
        .order_by("name", "id")
    )


def compose_segments() -> QuerySet[Segment]:
    return Segment.objects.order_by("name")


def groups_by_chat_id(chat_ids: list[str]) -> list[CustomerGroup]:
    by_id = {g.chat_id: g for g in compose_groups().filter(chat_id__in=chat_ids or [])}
    return [by_id[c] for c in chat_ids or [] if c in by_id]


# The runs table's columns: a label key -> the recipient statuses it sums.
RUN_COLUMNS = {
    "planned": None,  # every recipient
    "delivered": ("delivered",),
    "over_quota": ("over_quota",),
    "excluded": ("excluded",),
    "expired": ("expired",),
    "failed": ("not_friend", "limit_reached", "rejected", "no_sender"),
    "pending": ("pending",),
    "cancelled": ("cancelled",),
}


def run_counts(runs: list[CampaignRun]) -> dict[int, dict[str, int]]:
    """Recipients per status of each run, in one query per recipient table (single and group chats)."""
    by_run: dict[int, dict[str, int]] = {run.id: {} for run in runs}
    ids = list(by_run)
    for model in (CampaignRecipient, CampaignGroupRecipient):
        rows = model.objects.filter(run_id__in=ids).values("run_id", "status").annotate(n=Count("id"))
        for row in rows:
            counts = by_run[row["run_id"]]
            counts[row["status"]] = counts.get(row["status"], 0) + row["n"]
    return {
        run_id: {
            key: sum(counts.values()) if statuses is None else sum(counts.get(s, 0) for s in statuses)
            for key, statuses in RUN_COLUMNS.items()
        }
        for run_id, counts in by_run.items()
    }


def campaign_runs_list(campaign: Campaign, limit: int = 50) -> list[CampaignRun]:
    return list(CampaignRun.objects.filter(campaign=campaign).order_by("-occurrence", "-id")[:limit])


def next_occurrences(campaign: Campaign, *, after: datetime, count: int = 3) -> list[datetime]:
    """The next `count` moments the campaign's schedule fires after `after` (campaign_schedules.upcoming: the same
    rule beat follows), or [] while the form is incomplete (no time, no weekday, a one-off in the past)."""
    from crm.services.campaign_schedules import upcoming

    if campaign.recurrence == Campaign.Recurrence.ONCE:
        at = campaign.scheduled_at
        return [at] if at and at > after else []
    if campaign.recur_time is None:
        return []
    if campaign.recurrence == Campaign.Recurrence.WEEKLY and campaign.recur_weekday is None:
        return []
    if campaign.recurrence == Campaign.Recurrence.MONTHLY and not campaign.recur_day:
        return []
    return upcoming(campaign, count, after=after)


def run_live_progress(run: CampaignRun) -> dict:
    """A run's live progress in the shape of campaign_progress (planned, sent, confirmed, delivered, failed,
    cancelled, percent, bar), from the sender part's run_progress counts plus the sent count."""
    from crm.selectors.runs import run_progress

    S = CampaignRecipient.Status
    data = run_progress(run)
    counts = dict.fromkeys(S.values, 0)
    for source in (data["recipients"], data["groups"]):
        for status, n in source.items():
            counts[status] = counts.get(status, 0) + n
    planned = sum(counts.values())
    sent = sum(
        model.objects.filter(run=run, mass_message__msgid__isnull=False).exclude(status=S.REJECTED).count()
        for model in (CampaignRecipient, CampaignGroupRecipient)
    )
    failed = counts[S.NOT_FRIEND] + counts[S.LIMIT_REACHED] + counts[S.REJECTED] + counts[S.NO_SENDER]
    final = run.status in (CampaignRun.Status.DONE, CampaignRun.Status.CANCELLED)
    settled = planned - counts[S.PENDING]

    def pct(n: int) -> float:
        return round(100 * n / planned, 1) if planned else 0.0

    return {
        "run": run, "final": final, "planned": planned, "sent": sent,
        "confirmed": counts[S.DELIVERED] + counts[S.NOT_FRIEND] + counts[S.LIMIT_REACHED],
        "delivered": counts[S.DELIVERED], "failed": failed, "cancelled": counts[S.CANCELLED],
        "over_quota": counts[S.OVER_QUOTA], "excluded": counts[S.EXCLUDED], "expired": counts[S.EXPIRED],
        "pending": counts[S.PENDING], "by_status": counts,
        "excluded_by_reason": data.get("excluded_by_reason") or {},
        "next_deadline_at": data.get("next_deadline_at"),
        "percent": (100 if final else 0) if not planned else 100 * settled // planned,
        "bar": {"delivered": pct(counts[S.DELIVERED]), "failed": pct(failed), "cancelled": pct(counts[S.CANCELLED])},
    }


def segment_tree_summary(definition: dict) -> list[str]:
    """A definition of the filter language in words, one line per top-level condition (AND), for the campaign
    page: "Tags — any of: Gold", "Channel — in: Store Shanghai 1". An empty definition gives []."""
    from django.utils.translation import gettext as _

    from crm.services.segments import segment_fields

    catalogue = {f["name"]: f for f in segment_fields()}
    choice_cache: dict[str, dict] = {}

    def value_text(field: str, value) -> str:
        spec = catalogue.get(field) or {}
        if spec.get("choices") is not None and field not in choice_cache:
            choice_cache[field] = {str(c["value"]): str(c["label"]) for c in spec["choices"]}
        labels = choice_cache.get(field, {})
        values = value if isinstance(value, list) else [value]
        if isinstance(value, dict):
            values = [f"{k}: {', '.join(map(str, v)) if isinstance(v, list) else v}" for k, v in value.items()]
        return ", ".join(labels.get(str(v), str(v)) for v in values)

    def text(node: dict) -> str:
        if "all" in node or "any" in node:
            key = "all" if "all" in node else "any"
            parts = [text(child) for child in node[key]]
            joined = f" {_('AND') if key == 'all' else _('OR')} ".join(parts)
            return f"({joined})" if len(parts) > 1 else joined
        if "not" in node:
            return f"{_('NOT')} {text(node['not'])}"
        spec = catalogue.get(node.get("field"), {})
        op_label = next((o["label"] for o in spec.get("ops", []) if o["op"] == node.get("op")), node.get("op"))
        extra = f" ({_('last %(n)s days') % {'n': node['days']}})" if node.get("days") else ""
        values = value_text(node.get("field"), node.get("value"))
        return f"{spec.get('label', node.get('field'))} — {op_label}: {values}{extra}"

    if not definition:
        return []
    if "all" in definition:
        return [text(child) for child in definition["all"]]
    return [text(definition)]
