"""Campaigns: create, schedule, launch (recipients + mass-message batches), cancel, remind, lucky draw."""

from __future__ import annotations

import secrets
from datetime import datetime, timedelta
from typing import Any

from django.db import IntegrityError, transaction
from django.utils import timezone

from crm.errors import ApplicationError, Conflict, NotFound
from crm.models import (
    Campaign,
    CampaignRecipient,
    CampaignRun,
    ConsentRecord,
    FollowRelation,
    LuckyDraw,
    LuckyDrawEntry,
    MassMessage,
    RedPacketPool,
)
from crm.services import segments
from crm.services.consent import contacts_consenting
from crm.services.customer_links import absolute_url, sign_contact
from crm.services.redpackets import claim_url, parse_object_token, redpacket_pool_activate, redpacket_pool_create

# WeCom: at most 10,000 external_userids per add_msg_template task; text content at most 4000 bytes.
BATCH_SIZE = 10_000
MAX_TEXT_BYTES = 4000
# Room kept in the text for the per-recipient claim link of red-packet campaigns.
LINK_RESERVE_BYTES = 400
EDITABLE = (Campaign.Status.DRAFT, Campaign.Status.SCHEDULED)


def _get(campaign_id: int, *, lock: bool = False) -> Campaign:
    qs = Campaign.objects.select_for_update() if lock else Campaign.objects.all()
    campaign = qs.filter(id=campaign_id).first()
    if campaign is None:
        raise NotFound("No such campaign.", field="campaign")
    return campaign


def _validate_text(text: Any, *, with_red_packet: bool) -> str:
    if not isinstance(text, str) or not text.strip():
        raise ApplicationError("text is required.", field="text")
    limit = MAX_TEXT_BYTES - (LINK_RESERVE_BYTES if with_red_packet else 0)
    if len(text.encode("utf-8")) > limit:
        raise ApplicationError(f"text is longer than {limit} bytes (UTF-8).", field="text")
    return text


def _validate_schedule(scheduled_at: datetime | None) -> None:
    if scheduled_at is not None and scheduled_at < timezone.now() - timedelta(minutes=1):
        raise ApplicationError("scheduled_at is in the past.", field="scheduled_at")


def campaign_validate(
    *,
    name: str,
    text: str,
    segment: dict | None = None,
    link_title: str = "",
    link_url: str = "",
    scheduled_at: datetime | None = None,
    with_red_packet: bool = False,
) -> tuple[str, dict]:
    """The checks campaign_create makes, writing nothing (the console validates its form with them): the text and
    the normalised segment, or an ApplicationError naming the field."""
    if not name or not str(name).strip():
        raise ApplicationError("name is required.", field="name")
    text = _validate_text(text, with_red_packet=with_red_packet)
    segment = segments.segment_validate(segment)
    if link_url and not link_title:
        raise ApplicationError("link_title is required with link_url.", field="link_title")
    _validate_schedule(scheduled_at)
    return text, segment


@transaction.atomic
def campaign_create(
    *,
    name: str,
    text: str,
    segment: dict | None = None,
    link_title: str = "",
    link_url: str = "",
    link_desc: str = "",
    scheduled_at: datetime | None = None,
    red_packet: dict | None = None,
) -> Campaign:
    """A draft campaign (scheduled when scheduled_at is given), with its red-packet pool when asked."""
    text, segment = campaign_validate(name=name, text=text, segment=segment, link_title=link_title,
                                      link_url=link_url, scheduled_at=scheduled_at, with_red_packet=bool(red_packet))
    campaign = Campaign.objects.create(
        name=name.strip(),
        text=text,
        segment=segment,
        link_title=link_title,
        link_url=link_url,
        link_desc=link_desc,
        scheduled_at=scheduled_at,
        status=Campaign.Status.SCHEDULED if scheduled_at else Campaign.Status.DRAFT,
    )
    if red_packet:
        expires_at = red_packet.get("expires_at")
        if scheduled_at and expires_at and expires_at <= scheduled_at:
            raise ApplicationError("expires_at must be after scheduled_at.", field="red_packet.expires_at")
        try:
            redpacket_pool_create(campaign_id=campaign.id, **red_packet)
        except ApplicationError as exc:
            exc.field = f"red_packet.{exc.field}" if exc.field else "red_packet"
            raise
    return campaign


@transaction.atomic
def campaign_update(campaign_id: int, **fields: Any) -> Campaign:
    """Edit a draft or scheduled campaign (name, text, segment, link_*, scheduled_at)."""
    campaign = _get(campaign_id, lock=True)
    if campaign.status not in EDITABLE:
        raise Conflict(f"A {campaign.status} campaign cannot be edited.", field="status")
    allowed = {"name", "text", "segment", "link_title", "link_url", "link_desc", "scheduled_at"}
    for key, value in fields.items():
        if key not in allowed:
            raise ApplicationError(f"{key} cannot be changed.", field=key)
        if key == "text":
            value = _validate_text(value, with_red_packet=hasattr(campaign, "red_packet_pool"))
        elif key == "segment":
            value = segments.segment_validate(value)
        elif key == "scheduled_at":
            _validate_schedule(value)
        setattr(campaign, key, value)
    if "scheduled_at" in fields:
        campaign.status = Campaign.Status.SCHEDULED if campaign.scheduled_at else Campaign.Status.DRAFT
    campaign.save()
    return campaign


@transaction.atomic
def campaign_delete(campaign_id: int) -> None:
    campaign = _get(campaign_id, lock=True)
    if campaign.status not in (Campaign.Status.DRAFT, Campaign.Status.CANCELLED) or campaign.launched_at:
        raise Conflict("Only a draft (never launched) campaign can be deleted.", field="status")
    RedPacketPool.objects.filter(campaign=campaign).delete()
    campaign.delete()


@transaction.atomic
def campaign_schedule(campaign_id: int, scheduled_at: datetime) -> Campaign:
    """Schedule (or reschedule) a draft/scheduled campaign; beat launches it when due."""
    if scheduled_at is None:
        raise ApplicationError("scheduled_at is required.", field="scheduled_at")
    _validate_schedule(scheduled_at)
    campaign = _get(campaign_id, lock=True)
    if campaign.status not in EDITABLE:
        raise Conflict(f"A {campaign.status} campaign cannot be scheduled.", field="status")
    campaign.scheduled_at = scheduled_at
    campaign.status = Campaign.Status.SCHEDULED
    campaign.save(update_fields=["scheduled_at", "status", "updated_at"])
    return campaign


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


def draw_url(draw_id: int, contact_id: int) -> str:
    """The customer's own lucky-draw page."""
    return absolute_url(f"/m/draw/{sign_contact(contact_id, f'draw:{draw_id}')}/")


def parse_draw_token(token: str) -> tuple[int, int]:
    """(draw_id, contact_id) from a draw link token, verified; 403 ApplicationError otherwise."""
    return parse_object_token(token, "draw")


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


# --- lucky draw ---------------------------------------------------------------------------------------------


@transaction.atomic
def lucky_draw_create(*, campaign_id: int, prizes: list[dict], win_rate_percent: int = 100) -> LuckyDraw:
    campaign = _get(campaign_id, lock=True)
    if not isinstance(prizes, list) or not prizes:
        raise ApplicationError("prizes must be a non-empty list.", field="prizes")
    for i, prize in enumerate(prizes):
        if not isinstance(prize, dict) or not str(prize.get("name", "")).strip():
            raise ApplicationError("Each prize needs a name.", field=f"prizes[{i}].name")
        count = prize.get("count")
        if not isinstance(count, int) or isinstance(count, bool) or count < 1:
            raise ApplicationError("Each prize needs a count >= 1.", field=f"prizes[{i}].count")
    if not isinstance(win_rate_percent, int) or not 0 <= win_rate_percent <= 100:
        raise ApplicationError("win_rate_percent must be within 0..100.", field="win_rate_percent")
    if LuckyDraw.objects.filter(campaign=campaign).exists():
        raise Conflict("This campaign already has a lucky draw.", field="campaign")
    return LuckyDraw.objects.create(campaign=campaign, prizes=prizes, win_rate_percent=win_rate_percent)


def lucky_draw_play(*, draw_id: int, contact_id: int) -> LuckyDrawEntry:
    """One draw per customer (UNIQUE entry; a second call returns the first result); never more prizes than stock."""
    with transaction.atomic():
        existing = LuckyDrawEntry.objects.filter(draw_id=draw_id, contact_id=contact_id).first()
        if existing:
            return existing
        # The draw row lock serialises draws of this pool, so stock counts stay exact.
        draw = LuckyDraw.objects.select_for_update().filter(id=draw_id).first()
        if draw is None:
            raise NotFound("No such lucky draw.", field="draw")
        existing = LuckyDrawEntry.objects.filter(draw=draw, contact_id=contact_id).first()
        if existing:
            return existing
        won: dict[str, int] = {}
        for name in LuckyDrawEntry.objects.filter(draw=draw).exclude(prize="").values_list("prize", flat=True):
            won[name] = won.get(name, 0) + 1
        stock = [p["name"] for p in draw.prizes for _ in range(max(0, p["count"] - won.get(p["name"], 0)))]
        prize = ""
        rng = secrets.SystemRandom()
        if stock and rng.randrange(100) < draw.win_rate_percent:
            prize = rng.choice(stock)
        try:
            with transaction.atomic():
                return LuckyDrawEntry.objects.create(draw=draw, contact_id=contact_id, prize=prize)
        except IntegrityError:
            return LuckyDrawEntry.objects.get(draw=draw, contact_id=contact_id)
