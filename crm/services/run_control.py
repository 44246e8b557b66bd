"""Controlling a campaign once it runs: cancel, remind (pause and resume live here too)."""

from __future__ import annotations

from django.db import transaction
from django.utils import timezone

from crm.errors import Conflict
from crm.models import Campaign, CampaignRecipient, MassMessage, RedPacketPool
from crm.services.campaigns import _get


def campaign_cancel(campaign_id: int) -> Campaign:
    """Cancel: nothing more is sent. Tasks WeCom already created are cancelled there (cancel_groupmsg_send)."""
    from crm.services.pushes import mass_message_cancel

    with transaction.atomic():
        campaign = _get(campaign_id, lock=True)
        if campaign.status in (Campaign.Status.DONE, Campaign.Status.CANCELLED):
            raise Conflict(f"A {campaign.status} campaign cannot be cancelled.", field="status")
        campaign.status = Campaign.Status.CANCELLED
        campaign.cancelled_at = timezone.now()
        campaign.save(update_fields=["status", "cancelled_at", "updated_at"])
        MassMessage.objects.filter(campaign=campaign, status=MassMessage.Status.PENDING).update(
            status=MassMessage.Status.CANCELLED
        )
        CampaignRecipient.objects.filter(
            campaign=campaign,
            status=CampaignRecipient.Status.PENDING,
            mass_message__status=MassMessage.Status.CANCELLED,
        ).update(status=CampaignRecipient.Status.CANCELLED)
        RedPacketPool.objects.filter(campaign=campaign, status=RedPacketPool.Status.DRAFT).update(
            status=RedPacketPool.Status.CANCELLED
        )
    for message_id in MassMessage.objects.filter(
        campaign=campaign, status__in=[MassMessage.Status.CREATED, MassMessage.Status.SENDING]
    ).values_list("id", flat=True):
        mass_message_cancel(message_id)
    campaign.refresh_from_db()
    return campaign


def campaign_remind(campaign_id: int) -> int:
    """Remind senders who have not confirmed yet (remind_groupmsg_send, 3 per task per 24 h); how many reminded."""
    from crm.services.pushes import mass_message_remind

    campaign = _get(campaign_id)
    if campaign.status != Campaign.Status.RUNNING:
        raise Conflict("Only a running campaign can be reminded.", field="status")
    ids = MassMessage.objects.filter(
        campaign=campaign, status=MassMessage.Status.CREATED, recipients__status=CampaignRecipient.Status.PENDING
    ).distinct().values_list("id", flat=True)
    return sum(1 for message_id in ids if mass_message_remind(message_id))
