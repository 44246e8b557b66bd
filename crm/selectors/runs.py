"""Reads of campaign runs: the progress of one run (the console and the API show it)."""

from __future__ import annotations

from django.db.models import Count, Max, Min, QuerySet

from crm.models import CampaignGroupRecipient, CampaignRecipient, CampaignRun, MassMessage

R = CampaignRecipient.Status
# Recipients that will not change any more; the rest are pending (queued, or awaiting the sender's confirmation).
FINAL = {str(s) for s in CampaignRecipient.FINAL}


def runs_of_campaign(campaign_id: int) -> QuerySet[CampaignRun]:
    return CampaignRun.objects.filter(campaign_id=campaign_id).order_by("-occurrence", "-id")


def run_get(run_id: int) -> CampaignRun | None:
    return CampaignRun.objects.filter(id=run_id).first()


def _counts(qs: QuerySet, field: str = "status") -> dict[str, int]:
    # order_by() drops the model's ordering, so this is a bare GROUP BY: on recipients an index-only scan of
    # recipient_run_status (run, status) at a million rows.
    return dict(qs.order_by().values_list(field).annotate(n=Count("*")).values_list(field, "n"))


def run_progress(run: CampaignRun) -> dict:
    """Counts per recipient status (customers and groups), messages per status, planned, audience, timestamps,
    what expired and when the next deadline falls."""
    recipients = _counts(CampaignRecipient.objects.filter(run_id=run.id))
    groups = _counts(CampaignGroupRecipient.objects.filter(run_id=run.id))
    messages = _counts(MassMessage.objects.filter(run_id=run.id))
    open_deadlines = MassMessage.objects.filter(run_id=run.id, status=MassMessage.Status.CREATED).aggregate(
        first=Min("deadline_at"), last_polled=Max("last_polled_at"))
    total = sum(recipients.values()) + sum(groups.values())
    combined: dict[str, int] = dict(recipients)
    for status, n in groups.items():
        combined[status] = combined.get(status, 0) + n
    pending = combined.get(R.PENDING, 0)
    delivered = combined.get(R.DELIVERED, 0)
    excluded = CampaignRecipient.objects.filter(run_id=run.id, status=R.EXCLUDED)
    return {
        "run_id": run.id,
        "campaign_id": run.campaign_id,
        "status": run.status,
        "occurrence": run.occurrence,
        "audience": run.audience,
        "planned": run.planned,
        "recipients": recipients,
        "groups": groups,
        "total": total,
        "pending": pending,
        "delivered": delivered,
        "final": total - pending,
        "expired": combined.get(R.EXPIRED, 0),
        "excluded_by_reason": _counts(excluded, "reason") if combined.get(R.EXCLUDED) else {},
        "percent_final": round(100 * (total - pending) / total, 1) if total else 0.0,
        "messages": messages,
        "messages_expired": messages.get(MassMessage.Status.EXPIRED, 0),
        "next_deadline_at": open_deadlines["first"],
        "last_polled_at": open_deadlines["last_polled"],
        "started_at": run.started_at,
        "planned_at": run.planned_at,
        "paused_at": run.paused_at,
        "finished_at": run.finished_at,
        "cancelled_at": run.cancelled_at,
    }
