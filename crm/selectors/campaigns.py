"""Selectors for campaigns and red packets: reads only."""

from __future__ import annotations

from django.db.models import Count, QuerySet, Sum

from crm.errors import NotFound
from crm.models import Campaign, CampaignRecipient, MassMessage, RedPacketClaim, RedPacketPool


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
