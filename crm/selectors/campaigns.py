"""Selectors for campaigns and red packets: reads only."""

from __future__ import annotations

from django.db.models import Count, QuerySet, Sum

from crm.errors import NotFound
from crm.models import Campaign, CampaignRecipient, Channel, MassMessage, RedPacketClaim, RedPacketPool, Tag


def campaign_list(*, status: str | None = None, search: str | None = None) -> QuerySet[Campaign]:
    qs = Campaign.objects.select_related("red_packet_pool").order_by("-id")
    if status:
        qs = qs.filter(status=status)
    if search:
        qs = qs.filter(name__icontains=search)
    return qs


def campaign_get(campaign_id: int) -> Campaign:
    campaign = Campaign.objects.select_related("red_packet_pool").filter(id=campaign_id).first()
    if campaign is None:
        raise NotFound("No such campaign.", field="campaign")
    return campaign


def pool_get(pool_id: int) -> RedPacketPool:
    pool = RedPacketPool.objects.filter(id=pool_id).first()
    if pool is None:
        raise NotFound("No such red-packet pool.", field="pool")
    return pool


def campaign_stats(campaign_id: int) -> dict:
    """Recipients per status, messages per status, and the red packets' claims and payouts."""
    campaign = campaign_get(campaign_id)
    recipients = dict.fromkeys(CampaignRecipient.Status.values, 0)
    for row in CampaignRecipient.objects.filter(campaign=campaign).values("status").annotate(n=Count("id")):
        recipients[row["status"]] = row["n"]
    messages = dict.fromkeys(MassMessage.Status.values, 0)
    for row in MassMessage.objects.filter(campaign=campaign).values("status").annotate(n=Count("id")):
        messages[row["status"]] = row["n"]
    stats: dict = {
        "campaign_id": campaign.id,
        "status": campaign.status,
        "recipients_total": sum(recipients.values()),
        "recipients": recipients,
        "messages_total": sum(messages.values()),
        "messages": messages,
        "red_packet": None,
    }
    pool = RedPacketPool.objects.filter(campaign=campaign).first()
    if pool is not None:
        claims = RedPacketClaim.objects.filter(pool=pool)
        by_status = {
            row["status"]: {"count": row["n"], "amount_fen": row["s"] or 0}
            for row in claims.values("status").annotate(n=Count("id"), s=Sum("amount_fen"))
        }
        stats["red_packet"] = {
            "pool_id": pool.id,
            "status": pool.status,
            "budget_fen": pool.budget_fen,
            "count": pool.count,
            "claims": sum(v["count"] for v in by_status.values()),
            "claims_by_status": by_status,
        }
    return stats


def campaign_progress(campaign_id: int) -> dict:
    """The campaign page's live progress: planned recipients, sent (in a task WeCom accepted), confirmed (the
    sender confirmed, so WeCom reports a per-customer result), delivered, failed, cancelled, still pending;
    `percent` counts the recipients with a final status, `final` is true once the campaign is done/cancelled."""
    campaign = campaign_get(campaign_id)
    S = CampaignRecipient.Status
    recipients = CampaignRecipient.objects.filter(campaign=campaign)
    counts = dict.fromkeys(S.values, 0)
    for row in recipients.values("status").annotate(n=Count("id")):
        counts[row["status"]] = row["n"]
    planned = sum(counts.values())
    sent = recipients.filter(mass_message__msgid__isnull=False).exclude(status=S.REJECTED).count()
    failed = counts[S.NOT_FRIEND] + counts[S.LIMIT_REACHED] + counts[S.REJECTED] + counts[S.NO_SENDER]
    final = campaign.status in (Campaign.Status.DONE, Campaign.Status.CANCELLED)
    settled = planned - counts[S.PENDING]

    def pct(n: int) -> float:
        return round(100 * n / planned, 1) if planned else 0.0

    return {
        "campaign": campaign,
        "final": final,
        "planned": planned,
        "sent": sent,
        "confirmed": counts[S.DELIVERED] + counts[S.NOT_FRIEND] + counts[S.LIMIT_REACHED],
        "delivered": counts[S.DELIVERED],
        "failed": failed,
        "cancelled": counts[S.CANCELLED],
        "pending": counts[S.PENDING],
        "by_status": counts,
        # A campaign that finished with nobody to reach is complete: 100 %.
        "percent": (100 if final else 0) if not planned else 100 * settled // planned,
        "bar": {"delivered": pct(counts[S.DELIVERED]), "failed": pct(failed), "cancelled": pct(counts[S.CANCELLED])},
    }


def campaign_segment_summary(segment: dict) -> dict:
    """The segment's ids turned into names, for people to read."""
    def tag_names(ids: list[int]) -> list[str]:
        names = dict(Tag.objects.filter(id__in=ids or []).values_list("id", "name"))
        return [names.get(i, f"#{i}") for i in ids or []]

    channels = dict(Channel.objects.filter(id__in=segment.get("channels") or []).values_list("id", "name"))
    return {
        "tags": tag_names(segment.get("tags") or []),
        "tags_match": segment.get("tags_match", "any"),
        "exclude_tags": tag_names(segment.get("exclude_tags") or []),
        "channels": [channels.get(i, f"#{i}") for i in segment.get("channels") or []],
        "staff": list(segment.get("staff") or []),
        "vip": bool(segment.get("vip")),
        "everyone": not any(segment.get(k) for k in ("tags", "exclude_tags", "channels", "staff", "vip")),
    }


# A shared link (the same /m/pool/<id>/ for everyone) can be forwarded: only customers the campaign addressed may
# use it. Pending counts, as the message may be in their chat already with the result not yet polled.
REACHED = (CampaignRecipient.Status.PENDING, CampaignRecipient.Status.DELIVERED)


def campaign_reached(campaign_id: int | None, contact_id: int) -> bool:
    """Whether the campaign's message went (or is going) to this customer, in any of its runs."""
    if campaign_id is None:
        return False
    return CampaignRecipient.objects.filter(
        campaign_id=campaign_id, contact_id=contact_id, status__in=REACHED
    ).exists()
