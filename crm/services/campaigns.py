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
    LuckyDraw,
    LuckyDrawEntry,
    RedPacketPool,
)
from crm.services import segments
from crm.services.customer_links import absolute_url, sign_contact
from crm.services.redpackets import parse_object_token, redpacket_pool_create

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


def draw_url(draw_id: int, contact_id: int) -> str:
    """The customer's own lucky-draw page."""
    return absolute_url(f"/m/draw/{sign_contact(contact_id, f'draw:{draw_id}')}/")


def parse_draw_token(token: str) -> tuple[int, int]:
    """(draw_id, contact_id) from a draw link token, verified; 403 ApplicationError otherwise."""
    return parse_object_token(token, "draw")



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
