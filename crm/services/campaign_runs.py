"""Campaign runs: launching a campaign's occurrence, planning its recipients and batches, finishing it."""

from __future__ import annotations

from datetime import datetime

from django.db import transaction
from django.utils import timezone

from crm.models import (
    Campaign,
    CampaignRecipient,
    CampaignRun,
    ConsentRecord,
    FollowRelation,
    LuckyDraw,
    MassMessage,
    RedPacketPool,
)
from crm.services import segments
from crm.services.campaigns import EDITABLE, _get, draw_url
from crm.services.consent import contacts_consenting
from crm.services.redpackets import claim_url, redpacket_pool_activate

# WeCom: at most 10,000 external_userids per add_msg_template task.
BATCH_SIZE = 10_000


def _pick_senders(contact_ids_qs, preferred_userids: list[str]) -> dict[int, int]:
    """contact id -> staff id of an active follow staff: one of the segment's staff if given, else the latest add."""
    follows = FollowRelation.objects.filter(
        segments.active_follow_q(prefix=""), contact_id__in=contact_ids_qs
    )
    if preferred_userids:
        follows = follows.filter(staff__userid__in=preferred_userids)
    chosen: dict[int, int] = {}
    rows = follows.order_by("contact_id", "-added_at", "-id").values_list("contact_id", "staff_id")
    for contact_id, staff_id in rows.iterator(chunk_size=5000):
        chosen.setdefault(contact_id, staff_id)
    return chosen


def _message_text(
    campaign: Campaign, pool: RedPacketPool | None, draw: LuckyDraw | None, contact_id: int | None
) -> str:
    if contact_id is None:
        return campaign.text
    lines = [campaign.text]
    if pool is not None:
        lines.append(claim_url(pool.id, contact_id))
    if draw is not None:
        lines.append(draw_url(draw.id, contact_id))
    return "\n".join(lines)


def _build_recipients(campaign: Campaign, pool: RedPacketPool | None) -> None:
    run, _ = CampaignRun.objects.get_or_create(campaign=campaign, occurrence=campaign.launched_at)
    draw = LuckyDraw.objects.filter(campaign=campaign).first()
    personal = pool is not None or draw is not None
    # Only customers whose marketing consent is in force become recipients (red packets and lucky draws ride
    # on the same message, so they are covered too); a withdrawal after this point is checked again at send.
    contacts = contacts_consenting(ConsentRecord.Purpose.MARKETING, segments.resolve(campaign.segment))
    senders = _pick_senders(contacts.values("id"), campaign.segment.get("staff") or [])
    rows = [
        CampaignRecipient(
            campaign=campaign,
            run=run,
            contact_id=contact_id,
            external_userid=eid,
            sender_id=senders.get(contact_id),
            status=CampaignRecipient.Status.PENDING if contact_id in senders else CampaignRecipient.Status.NO_SENDER,
        )
        for contact_id, eid in contacts.values_list("id", "external_userid").iterator(chunk_size=5000)
    ]
    # UNIQUE (campaign, contact): a customer gets one recipient row, so at most one message, whatever the retries.
    CampaignRecipient.objects.bulk_create(rows, batch_size=2000, ignore_conflicts=True)
    todo = (
        CampaignRecipient.objects.filter(
            campaign=campaign, mass_message__isnull=True, status=CampaignRecipient.Status.PENDING
        )
        .order_by("sender_id", "id")
        .values_list("id", "sender_id", "contact_id")
    )
    # One add_msg_template task carries ONE content for all its external_userids. A red-packet claim link must
    # identify the customer (the signed token stands in for WeChat OAuth, which this deployment does not have),
    # so red-packet campaigns send one task per recipient with that recipient's own link; plain campaigns send
    # per sender in batches of up to 10,000. The price of per-recipient tasks is one confirmation per customer
    # in the staff member's 群发助手, accepted here for correctness of the claim identity. (Same for lucky draws.)
    batch_size = 1 if personal else BATCH_SIZE
    by_sender: dict[int, list[tuple[int, int]]] = {}
    for recipient_id, sender_id, contact_id in todo.iterator(chunk_size=5000):
        by_sender.setdefault(sender_id, []).append((recipient_id, contact_id))
    for sender_id, items in by_sender.items():
        next_batch = (
            MassMessage.objects.filter(campaign=campaign, sender_id=sender_id).order_by("-batch_no").values_list(
                "batch_no", flat=True
            ).first()
            or 0
        )
        for start in range(0, len(items), batch_size):
            chunk = items[start : start + batch_size]
            next_batch += 1
            message = MassMessage.objects.create(
                campaign=campaign,
                run=run,
                sender_id=sender_id,
                batch_no=next_batch,
                idempotency_key=f"c{campaign.id}-s{sender_id}-b{next_batch}",
                text=_message_text(campaign, pool, draw, chunk[0][1] if personal else None),
            )
            CampaignRecipient.objects.filter(id__in=[r for r, _ in chunk]).update(mass_message=message)


def campaign_launch(campaign_id: int, *, enqueue: bool = True) -> list[int]:
    """Start a campaign: recipients, batches, pool; idempotent. The pending MassMessage ids (queued on commit).

    Running again (beat twice, a retried task, an admin click) creates nothing new: recipient rows are unique per
    contact, messages unique per (campaign, sender, batch), and only messages still pending are queued again."""
    pool = RedPacketPool.objects.filter(campaign_id=campaign_id).first()
    campaign = _get(campaign_id)
    if campaign.status in (Campaign.Status.CANCELLED, Campaign.Status.DONE):
        return []
    if pool is not None and pool.status == RedPacketPool.Status.DRAFT:
        # Its own committed transaction first: links sent below must point at a live pool.
        pool = redpacket_pool_activate(pool.id)
    with transaction.atomic():
        campaign = _get(campaign_id, lock=True)
        if campaign.status in (Campaign.Status.CANCELLED, Campaign.Status.DONE):
            return []
        if campaign.status in EDITABLE:
            campaign.status = Campaign.Status.RUNNING
            campaign.launched_at = timezone.now()
            campaign.save(update_fields=["status", "launched_at", "updated_at"])
            _build_recipients(campaign, pool)
            if not MassMessage.objects.filter(campaign=campaign).exists():
                campaign.status = Campaign.Status.DONE  # nobody reachable: nothing to send
                campaign.finished_at = timezone.now()
                campaign.save(update_fields=["status", "finished_at", "updated_at"])
        pending = list(
            MassMessage.objects.filter(campaign=campaign, status=MassMessage.Status.PENDING)
            .order_by("id")
            .values_list("id", flat=True)
        )
        if enqueue and pending:
            from crm.tasks.campaigns import send_mass_message

            transaction.on_commit(lambda: [send_mass_message.delay(mid) for mid in pending])
    return pending


def campaign_launch_due(now: datetime | None = None) -> list[int]:
    """Launch every scheduled campaign whose time has come; their ids."""
    now = now or timezone.now()
    due = list(
        Campaign.objects.filter(status=Campaign.Status.SCHEDULED, scheduled_at__lte=now).values_list("id", flat=True)
    )
    for campaign_id in due:
        campaign_launch(campaign_id)
    return due


def campaign_finish_if_complete(campaign_id: int) -> bool:
    """Mark a running campaign done once no message is waiting to be sent or confirmed."""
    with transaction.atomic():
        campaign = _get(campaign_id, lock=True)
        if campaign.status != Campaign.Status.RUNNING:
            return campaign.status == Campaign.Status.DONE
        open_statuses = [MassMessage.Status.PENDING, MassMessage.Status.SENDING, MassMessage.Status.CREATED]
        if MassMessage.objects.filter(campaign=campaign, status__in=open_statuses).exists():
            return False
        campaign.status = Campaign.Status.DONE
        campaign.finished_at = timezone.now()
        campaign.save(update_fields=["status", "finished_at", "updated_at"])
        return True
