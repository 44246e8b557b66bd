"""Campaigns: what to send (text and one attachment), to whom (a segment, chosen groups, all VIP groups), and when
(once, or weekly / monthly in Asia/Shanghai); validation, audience, preview, the image's WeCom media id; lucky draw.

Runs (launch, planning, finishing) are in crm.services.campaign_runs; schedules (beat rows, occurrences, pause) in
crm.services.campaign_schedules. Every refusal is an ApplicationError naming the field; create and update are one
transaction each, so a refused campaign leaves nothing behind (the schedule's beat rows included).
"""

from __future__ import annotations

import os
import re
import secrets
from datetime import datetime, time, timedelta
from typing import Any
from urllib.parse import urlparse

from django.core.files.base import ContentFile, File
from django.db import IntegrityError, transaction
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext as _

from crm.errors import ApplicationError, Conflict, NotFound
from crm.models import (
    Campaign,
    ConsentRecord,
    Contact,
    CustomerGroup,
    LuckyDraw,
    LuckyDrawEntry,
    RedPacketPool,
    Segment,
)
from crm.services import campaign_schedules, segments
from crm.services.consent import contacts_consenting
from crm.services.customer_links import absolute_url, sign_contact
from crm.services.redpackets import parse_object_token, redpacket_pool_create

# WeCom: at most 10,000 external_userids per add_msg_template task; text content at most 4000 bytes.
BATCH_SIZE = 10_000
MAX_TEXT_BYTES = 4000
# Room kept in the text for the per-recipient claim link of red-packet campaigns.
LINK_RESERVE_BYTES = 400
EDITABLE = (Campaign.Status.DRAFT, Campaign.Status.SCHEDULED)
# WeCom's image limit for temporary media (media/upload): 10 MB, JPG or PNG, more than 5 bytes.
MAX_IMAGE_BYTES = 10 * 1024 * 1024
MIN_IMAGE_BYTES = 6
# A media id lives 3 days in WeCom; upload again a little before, so a send never carries one about to expire.
MEDIA_REUSE = timedelta(days=2, hours=12)
# WeCom's attachment field limits (bytes, UTF-8).
LINK_TITLE_BYTES, LINK_DESC_BYTES, LINK_URL_BYTES = 128, 512, 1024  # url: the model's column (WeCom allows 2048)
MINIPROGRAM_TITLE_BYTES = 64
_APPID = re.compile(r"^wx[0-9A-Za-z]{16}$")

# Every field a campaign is made of, with its default (campaign_create's keywords, campaign_update's allowed keys).
FIELDS: dict[str, Any] = {
    "name": "", "text": "", "target": Campaign.Target.SEGMENT, "segment": None, "saved_segment_id": None,
    "group_chat_ids": None, "attachment": "", "link_title": "", "link_url": "", "link_desc": "", "image": None,
    "miniprogram_appid": "", "miniprogram_page": "", "miniprogram_title": "", "scheduled_at": None,
    "recurrence": Campaign.Recurrence.ONCE, "recur_weekday": None, "recur_day": None, "recur_time": None,
    "recur_until": None,
}
# What the attachment fields are when another attachment (or none) is chosen.
_ATTACHMENT_FIELDS = {
    Campaign.Attachment.LINK: ("link_title", "link_url", "link_desc"),
    Campaign.Attachment.MINIPROGRAM: ("miniprogram_appid", "miniprogram_page", "miniprogram_title"),
}


def _get(campaign_id: int, *, lock: bool = False) -> Campaign:
    qs = Campaign.objects.select_for_update() if lock else Campaign.objects.all()
    campaign = qs.filter(id=campaign_id).first()
    if campaign is None:
        raise NotFound(_("No such campaign."), field="campaign")
    return campaign


def _bytes(value: str) -> int:
    return len(value.encode("utf-8"))


# --- field checks ---------------------------------------------------------------------------------------------


def _validate_text(text: Any, *, with_red_packet: bool) -> str:
    # WeCom accepts an empty text with an attachment; the rule is stricter: a campaign always says something.
    if not isinstance(text, str) or not text.strip():
        raise ApplicationError(_("text is required."), field="text")
    limit = MAX_TEXT_BYTES - (LINK_RESERVE_BYTES if with_red_packet else 0)
    if _bytes(text) > limit:
        raise ApplicationError(_("text is longer than %(limit)s bytes (UTF-8).") % {"limit": limit}, field="text")
    return text


def _validate_schedule(scheduled_at: datetime | None) -> None:
    if scheduled_at is None:
        return
    if not isinstance(scheduled_at, datetime) or timezone.is_naive(scheduled_at):
        raise ApplicationError(_("scheduled_at must be a date and time with its time zone."), field="scheduled_at")
    if scheduled_at < timezone.now() - timedelta(minutes=1):
        raise ApplicationError(_("scheduled_at is in the past."), field="scheduled_at")


def image_kind(head: bytes) -> str:
    """"jpg" or "png" from a file's first bytes (what WeCom checks, whatever the name says), else ""."""
    if head.startswith(b"\xff\xd8\xff"):
        return "jpg"
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    return ""


def _validate_image(image: Any) -> File:
    """An uploaded or given file (Django File / UploadedFile, or bytes): JPG or PNG by its magic bytes, > 5 bytes
    and <= 10 MB (WeCom's image limit). No image library: the bytes say what it is."""
    if isinstance(image, bytes | bytearray):
        image = ContentFile(bytes(image), name="image")
    if not hasattr(image, "read") or not hasattr(image, "size"):
        raise ApplicationError(_("image must be a file."), field="image")
    size = image.size or 0
    if size > MAX_IMAGE_BYTES:
        raise ApplicationError(_("The image is larger than 10 MB."), field="image")
    if size < MIN_IMAGE_BYTES:
        raise ApplicationError(_("The image is empty."), field="image")
    image.seek(0)
    head = image.read(16)
    image.seek(0)
    if not image_kind(head):
        raise ApplicationError(_("The image must be a JPG or PNG file."), field="image", code="invalid_type")
    return image


def _image_name(image: File) -> str:
    image.seek(0)
    kind = image_kind(image.read(16))
    image.seek(0)
    stem = os.path.splitext(os.path.basename(getattr(image, "name", "") or "image"))[0] or "image"
    stem = re.sub(r"[^0-9A-Za-z_-]+", "-", stem)[:60].strip("-") or "image"
    return f"{stem}.{kind}"


def _validate_groups(chat_ids: Any) -> list[str]:
    if not isinstance(chat_ids, list) or not chat_ids:
        raise ApplicationError(_("Choose at least one customer group."), field="group_chat_ids")
    if not all(isinstance(c, str) and c for c in chat_ids):
        raise ApplicationError(_("group_chat_ids must be a list of chat ids."), field="group_chat_ids")
    chat_ids = list(dict.fromkeys(chat_ids))
    active = set(
        CustomerGroup.objects.filter(chat_id__in=chat_ids, status=CustomerGroup.Status.ACTIVE).values_list(
            "chat_id", flat=True
        )
    )
    for index, chat_id in enumerate(chat_ids):
        if chat_id not in active:
            raise ApplicationError(_("No active customer group %(chat_id)s.") % {"chat_id": chat_id},
                                   field=f"group_chat_ids[{index}]")
    return chat_ids


def _validate_time(value: Any) -> time:
    if isinstance(value, str):
        try:
            value = time.fromisoformat(value)
        except ValueError:
            value = None
    if not isinstance(value, time):
        raise ApplicationError(_("recur_time must be a time of day (HH:MM, Asia/Shanghai)."), field="recur_time")
    return value.replace(second=0, microsecond=0, tzinfo=None)


def _int_in(value: Any, low: int, high: int, field: str, message: str) -> int:
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        value = int(value)
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise ApplicationError(message, field=field)
    return value


# --- the whole campaign ---------------------------------------------------------------------------------------


def _clean(values: dict[str, Any], *, with_red_packet: bool, has_image: bool, check_audience: bool) -> dict:
    """The normalised model values of a campaign made of `values` (every key of FIELDS), or an ApplicationError
    naming the first bad field. Reads only."""
    out: dict[str, Any] = {}
    name = values["name"]
    if not isinstance(name, str) or not name.strip():
        raise ApplicationError(_("name is required."), field="name")
    if len(name.strip()) > 128:
        raise ApplicationError(_("name is longer than 128 characters."), field="name")
    out["name"] = name.strip()
    out["text"] = _validate_text(values["text"], with_red_packet=with_red_packet)

    # To whom.
    target = values["target"] or Campaign.Target.SEGMENT
    if target not in Campaign.Target.values:
        raise ApplicationError(_("Unknown target %(target)s.") % {"target": target}, field="target")
    out.update(target=target, segment={}, saved_segment=None, group_chat_ids=[])
    if target == Campaign.Target.SEGMENT:
        saved_id = values["saved_segment_id"]
        if saved_id not in (None, ""):
            if isinstance(saved_id, str) and saved_id.isdigit():
                saved_id = int(saved_id)
            saved = Segment.objects.filter(id=saved_id).first() if isinstance(saved_id, int) else None
            if saved is None:
                raise ApplicationError(_("No such saved segment."), field="saved_segment_id")
            if values["segment"]:
                raise ApplicationError(_("Give a saved segment or an inline segment, not both."), field="segment")
            out["saved_segment"] = saved
        else:
            out["segment"] = segments.segment_validate(values["segment"])
    elif target == Campaign.Target.GROUPS:
        out["group_chat_ids"] = _validate_groups(values["group_chat_ids"])

    # What it carries besides the text.
    attachment = values["attachment"] or ""
    if not attachment and values["link_url"]:
        attachment = Campaign.Attachment.LINK  # the flat link fields before attachments had a kind
    elif not attachment and values["image"] is not None:
        attachment = Campaign.Attachment.IMAGE
    if attachment not in Campaign.Attachment.values:
        raise ApplicationError(_("Unknown attachment %(kind)s.") % {"kind": attachment}, field="attachment")
    out["attachment"] = attachment
    for kind, names in _ATTACHMENT_FIELDS.items():
        for field in names:
            out[field] = (values[field] or "").strip() if attachment == kind else ""
    if attachment == Campaign.Attachment.LINK:
        if not out["link_url"]:
            raise ApplicationError(_("link_url is required with a link."), field="link_url")
        parsed = urlparse(out["link_url"])
        if parsed.scheme not in ("http", "https") or not parsed.netloc or _bytes(out["link_url"]) > LINK_URL_BYTES:
            raise ApplicationError(_("link_url must be an http(s) address."), field="link_url")
        if not out["link_title"]:
            raise ApplicationError(_("link_title is required with link_url."), field="link_title")
        if _bytes(out["link_title"]) > LINK_TITLE_BYTES:
            raise ApplicationError(_("link_title is longer than 128 bytes."), field="link_title")
        if _bytes(out["link_desc"]) > LINK_DESC_BYTES:
            raise ApplicationError(_("link_desc is longer than 512 bytes."), field="link_desc")
    elif attachment == Campaign.Attachment.MINIPROGRAM:
        if not _APPID.match(out["miniprogram_appid"]):
            raise ApplicationError(_("miniprogram_appid must be a mini program's appid (wx and 16 characters)."),
                                   field="miniprogram_appid")
        if not out["miniprogram_page"] or len(out["miniprogram_page"]) > 255:
            raise ApplicationError(_("miniprogram_page is required."), field="miniprogram_page")
        if not out["miniprogram_title"]:
            raise ApplicationError(_("miniprogram_title is required."), field="miniprogram_title")
        if _bytes(out["miniprogram_title"]) > MINIPROGRAM_TITLE_BYTES:
            raise ApplicationError(_("miniprogram_title is longer than 64 bytes."), field="miniprogram_title")
    if values["image"] is not None:
        out["image"] = _validate_image(values["image"])
        has_image = True

    # When.
    recurrence = values["recurrence"] or Campaign.Recurrence.ONCE
    if recurrence not in Campaign.Recurrence.values:
        raise ApplicationError(_("Unknown recurrence %(value)s.") % {"value": recurrence}, field="recurrence")
    out.update(recurrence=recurrence, recur_weekday=None, recur_day=None, recur_time=None, recur_until=None)
    if recurrence == Campaign.Recurrence.ONCE:
        _validate_schedule(values["scheduled_at"])
        out["scheduled_at"] = values["scheduled_at"]
    else:
        if values["scheduled_at"] is not None:
            raise ApplicationError(_("A recurring campaign has no scheduled_at: it runs at recur_time."),
                                   field="scheduled_at")
        out["scheduled_at"] = None
        if recurrence == Campaign.Recurrence.WEEKLY:
            out["recur_weekday"] = _int_in(values["recur_weekday"], 0, 6, "recur_weekday",
                                           _("recur_weekday must be 0 (Monday) .. 6 (Sunday)."))
        else:
            out["recur_day"] = _int_in(values["recur_day"], 1, 31, "recur_day",
                                       _("recur_day must be a day of the month, 1..31."))
        out["recur_time"] = _validate_time(values["recur_time"])
        until = values["recur_until"]
        if until is not None:
            if not isinstance(until, datetime) or timezone.is_naive(until):
                raise ApplicationError(_("recur_until must be a date and time with its time zone."),
                                       field="recur_until")
            first = campaign_schedules.next_occurrence(Campaign(**{k: out[k] for k in (
                "recurrence", "recur_weekday", "recur_day", "recur_time")}), timezone.now())
            if until < first:
                raise ApplicationError(_("recur_until is before the first occurrence."), field="recur_until")
            out["recur_until"] = until
    scheduled = out["scheduled_at"] is not None or recurrence != Campaign.Recurrence.ONCE
    if scheduled and attachment in (Campaign.Attachment.IMAGE, Campaign.Attachment.MINIPROGRAM) and not has_image:
        # A draft may get its image later (POST /api/campaigns/<id>/image/); a scheduled one must be complete.
        raise ApplicationError(_("Upload the image before scheduling (a mini program needs it as its cover)."),
                               field="image")
    if with_red_packet and (target != Campaign.Target.SEGMENT or recurrence != Campaign.Recurrence.ONCE):
        raise ApplicationError(_("A red packet goes with a one-off campaign to a segment of customers."),
                               field="red_packet")

    # "Every customer" (an empty segment) is never refused: nobody yet is not bad input. A condition, a saved
    # segment or groups that select nobody are.
    everyone = target == Campaign.Target.SEGMENT and not out["segment"] and out["saved_segment"] is None
    if check_audience and not everyone:
        audience = audience_count(target=target, segment=out["segment"], saved_segment=out["saved_segment"],
                                  group_chat_ids=out["group_chat_ids"])
        if not audience["count"]:
            field = {Campaign.Target.GROUPS: "group_chat_ids", Campaign.Target.VIP_GROUPS: "target"}.get(
                target, "saved_segment_id" if out["saved_segment"] else "segment")
            raise ApplicationError(_("This campaign reaches nobody: its audience is empty."), field=field,
                                   code="no_audience")
    return out


def campaign_validate(
    *,
    name: str = "",
    text: str = "",
    target: str = Campaign.Target.SEGMENT,
    segment: dict | None = None,
    saved_segment_id: int | None = None,
    group_chat_ids: list[str] | None = None,
    attachment: str = "",
    link_title: str = "",
    link_url: str = "",
    link_desc: str = "",
    image: Any = None,
    miniprogram_appid: str = "",
    miniprogram_page: str = "",
    miniprogram_title: str = "",
    scheduled_at: datetime | None = None,
    recurrence: str = Campaign.Recurrence.ONCE,
    recur_weekday: int | None = None,
    recur_day: int | None = None,
    recur_time: time | str | None = None,
    recur_until: datetime | None = None,
    red_packet: dict | None = None,
    with_red_packet: bool = False,
    campaign_id: int | None = None,
    require_audience: bool = True,
) -> dict:
    """The checks campaign_create makes, writing nothing (the console validates its form with them): the
    normalised model values (saved_segment as the Segment; image as the checked file), or an ApplicationError
    naming the field. `campaign_id`: the campaign being edited (its stored image and red packet count).
    `require_audience`: an audience of nobody is refused (naming segment / saved_segment_id / group_chat_ids /
    target), as the API and the console ask."""
    args = locals()
    values = {key: args[key] for key in FIELDS}
    has_image = False
    if campaign_id is not None:
        existing = _get(campaign_id)
        has_image = bool(existing.image)
        with_red_packet = with_red_packet or RedPacketPool.objects.filter(campaign=existing).exists()
    return _clean(values, with_red_packet=with_red_packet or bool(red_packet), has_image=has_image,
                  check_audience=require_audience)


def _status_for(campaign: Campaign) -> str:
    if campaign.recurrence != Campaign.Recurrence.ONCE or campaign.scheduled_at:
        return Campaign.Status.SCHEDULED
    return Campaign.Status.DRAFT


def _apply(campaign: Campaign, cleaned: dict) -> File | None:
    image = cleaned.pop("image", None)
    for key, value in cleaned.items():
        setattr(campaign, key, value)
    return image


def _store_image(campaign: Campaign, image: File, written: list[str]) -> None:
    campaign.image.save(_image_name(image), image, save=False)
    written.append(campaign.image.name)
    # A new image needs its own upload to WeCom.
    campaign.image_media_id, campaign.image_media_at = "", None


def _remove_files(names: list[str]) -> None:
    """Files written by a transaction that then failed (storage is not transactional)."""
    from django.core.files.storage import default_storage

    for name in names:
        try:
            default_storage.delete(name)
        except OSError:
            pass


def campaign_create(
    *,
    name: str,
    text: str,
    target: str = Campaign.Target.SEGMENT,
    segment: dict | None = None,
    saved_segment_id: int | None = None,
    group_chat_ids: list[str] | None = None,
    attachment: str = "",
    link_title: str = "",
    link_url: str = "",
    link_desc: str = "",
    image: Any = None,
    miniprogram_appid: str = "",
    miniprogram_page: str = "",
    miniprogram_title: str = "",
    scheduled_at: datetime | None = None,
    recurrence: str = Campaign.Recurrence.ONCE,
    recur_weekday: int | None = None,
    recur_day: int | None = None,
    recur_time: time | str | None = None,
    recur_until: datetime | None = None,
    red_packet: dict | None = None,
    require_audience: bool = False,
    actor=None,
) -> Campaign:
    """A draft campaign, or scheduled (once at scheduled_at, or recurring) with its beat row; with its red-packet
    pool when asked (docs/campaign-engine.md section 2). `require_audience` (the API and the console): refuse a
    campaign that reaches nobody now; internal callers (demo, tests) may make one, whose runs plan nobody."""
    args = locals()
    fields = {key: args[key] for key in FIELDS}
    written: list[str] = []
    try:
        return _create(red_packet, fields, written, require_audience, actor)
    except BaseException:
        _remove_files(written)
        raise


@transaction.atomic
def _create(red_packet: dict | None, fields: dict, written: list[str], require_audience: bool, actor=None) -> Campaign:
    cleaned = campaign_validate(red_packet=red_packet, require_audience=require_audience, **fields)
    campaign = Campaign()
    image = _apply(campaign, cleaned)
    if image is not None:
        _store_image(campaign, image, written)
    campaign.status = _status_for(campaign)
    if campaign.status == Campaign.Status.SCHEDULED:
        campaign.schedule_from = timezone.now()
    campaign.save()
    if red_packet:
        expires_at = red_packet.get("expires_at")
        if campaign.scheduled_at and expires_at and expires_at <= campaign.scheduled_at:
            raise ApplicationError(_("expires_at must be after scheduled_at."), field="red_packet.expires_at")
        try:
            redpacket_pool_create(campaign_id=campaign.id, created_by=actor, **red_packet)
        except ApplicationError as exc:
            exc.field = f"red_packet.{exc.field}" if exc.field else "red_packet"
            raise
    campaign_schedules.schedule_sync(campaign)
    return campaign


_AUDIENCE_FIELDS = {"target", "segment", "saved_segment_id", "group_chat_ids"}
_SCHEDULE_FIELDS = {"scheduled_at", "recurrence", "recur_weekday", "recur_day", "recur_time", "recur_until"}


def _values_of(campaign: Campaign) -> dict[str, Any]:
    values = {key: getattr(campaign, key) for key in FIELDS if key not in ("image", "saved_segment_id")}
    values["saved_segment_id"] = campaign.saved_segment_id
    values["image"] = None
    return values


def campaign_update(campaign_id: int, *, require_audience: bool = False, **fields: Any) -> Campaign:
    """Edit a draft or scheduled campaign: any of FIELDS. The result is checked whole, as at creation (the
    audience, when required, only if the target changed); the beat row follows the schedule."""
    written: list[str] = []
    try:
        return _update(campaign_id, fields, written, require_audience)
    except BaseException:
        _remove_files(written)
        raise


@transaction.atomic
def _update(campaign_id: int, fields: dict, written: list[str], require_audience: bool = False) -> Campaign:
    campaign = _get(campaign_id, lock=True)
    if campaign.status not in EDITABLE:
        raise Conflict(_("A %(status)s campaign cannot be edited.") % {"status": campaign.status}, field="status")
    for key in fields:
        if key not in FIELDS:
            raise ApplicationError(_("%(field)s cannot be changed.") % {"field": key}, field=key)
    values = {**_values_of(campaign), **fields}
    if "target" in fields or "saved_segment_id" in fields:
        # Moving to another kind of target drops the old one's definition unless given again.
        if "segment" not in fields and (fields.get("saved_segment_id") or values["target"] != Campaign.Target.SEGMENT):
            values["segment"] = None
        if "saved_segment_id" not in fields and (values["segment"] or values["target"] != Campaign.Target.SEGMENT):
            values["saved_segment_id"] = None
    if "segment" in fields and fields["segment"] and "saved_segment_id" not in fields:
        values["saved_segment_id"] = None  # an inline definition replaces the saved segment
    if "recurrence" in fields and fields["recurrence"] != Campaign.Recurrence.ONCE and "scheduled_at" not in fields:
        values["scheduled_at"] = None
    cleaned = _clean(values, with_red_packet=hasattr(campaign, "red_packet_pool"), has_image=bool(campaign.image),
                     check_audience=require_audience and bool(_AUDIENCE_FIELDS & set(fields)))
    image = _apply(campaign, cleaned)
    if image is not None:
        _store_image(campaign, image, written)
    if _SCHEDULE_FIELDS & set(fields):
        campaign.status = _status_for(campaign)
        campaign.schedule_from = timezone.now()
    campaign.save()
    campaign_schedules.schedule_sync(campaign)
    return campaign


def campaign_image_set(campaign_id: int, image: Any) -> Campaign:
    """Store the campaign's image (JPG/PNG <= 10 MB). It becomes the attachment, unless the campaign sends a mini
    program, whose cover it is."""
    written: list[str] = []
    try:
        with transaction.atomic():
            campaign = _get(campaign_id, lock=True)
            if campaign.status not in EDITABLE:
                raise Conflict(_("A %(status)s campaign cannot be edited.") % {"status": campaign.status},
                               field="status")
            image = _validate_image(image)
            old = campaign.image.name if campaign.image else ""
            _store_image(campaign, image, written)
            if campaign.attachment != Campaign.Attachment.MINIPROGRAM:
                campaign.attachment = Campaign.Attachment.IMAGE
                campaign.link_title = campaign.link_url = campaign.link_desc = ""
            campaign.save()
            if old and old != campaign.image.name:
                transaction.on_commit(lambda: _remove_files([old]))
            return campaign
    except BaseException:
        _remove_files(written)
        raise


@transaction.atomic
def campaign_delete(campaign_id: int) -> None:
    campaign = _get(campaign_id, lock=True)
    if campaign.status not in (Campaign.Status.DRAFT, Campaign.Status.CANCELLED) or campaign.launched_at:
        raise Conflict(_("Only a draft (never launched) campaign can be deleted."), field="status")
    if campaign.runs.exists():
        raise Conflict(_("A campaign that has run cannot be deleted."), field="status")
    RedPacketPool.objects.filter(campaign=campaign).delete()
    campaign_schedules.schedule_delete(campaign)
    image = campaign.image.name if campaign.image else ""
    campaign.delete()
    if image:
        transaction.on_commit(lambda: _remove_files([image]))


@transaction.atomic
def campaign_schedule(campaign_id: int, scheduled_at: datetime) -> Campaign:
    """Schedule (or reschedule) a one-off draft/scheduled campaign; beat launches it when due."""
    if scheduled_at is None:
        raise ApplicationError(_("scheduled_at is required."), field="scheduled_at")
    campaign = _get(campaign_id, lock=True)
    if campaign.recurrence != Campaign.Recurrence.ONCE:
        raise Conflict(_("A recurring campaign runs at recur_time; edit its schedule instead."), field="recurrence")
    return _update(campaign_id, {"scheduled_at": scheduled_at}, [])


# --- audience, preview, attachments ---------------------------------------------------------------------------


def _definition(segment: dict | None, saved_segment: Segment | None) -> dict:
    if saved_segment is not None:
        return saved_segment.definition or {}
    return segment or {}


def audience_count(
    *, target: str = Campaign.Target.SEGMENT, segment: dict | None = None, saved_segment: Segment | None = None,
    group_chat_ids: list[str] | None = None,
) -> dict:
    """{"count", "kind"} of a (validated) target: consenting customers of the segment, or active groups."""
    if target == Campaign.Target.GROUPS:
        qs = CustomerGroup.objects.filter(chat_id__in=group_chat_ids or [], status=CustomerGroup.Status.ACTIVE)
        return {"count": qs.count(), "kind": "groups"}
    if target == Campaign.Target.VIP_GROUPS:
        qs = CustomerGroup.objects.filter(is_vip=True, status=CustomerGroup.Status.ACTIVE)
        return {"count": qs.count(), "kind": "groups"}
    contacts = contacts_consenting(ConsentRecord.Purpose.MARKETING,
                                   segments.resolve(_definition(segment, saved_segment)))
    return {"count": contacts.count(), "kind": "customers"}


def audience_preview(
    *, target: str = Campaign.Target.SEGMENT, segment: Any = None, saved_segment_id: Any = None,
    group_chat_ids: Any = None,
) -> dict:
    """The audience of an unsaved target (the console's live count): validated like a campaign's."""
    values = {**FIELDS, "name": "-", "text": "-", "target": target, "segment": segment,
              "saved_segment_id": saved_segment_id, "group_chat_ids": group_chat_ids}
    cleaned = _clean(values, with_red_packet=False, has_image=False, check_audience=False)
    return audience_count(target=cleaned["target"], segment=cleaned["segment"],
                          saved_segment=cleaned["saved_segment"], group_chat_ids=cleaned["group_chat_ids"])


def campaign_audience(campaign: Campaign) -> dict:
    """{"count": n, "kind": "customers" | "groups"}: consenting customers of the segment, or the groups."""
    return audience_count(target=campaign.target, segment=campaign.segment, saved_segment=campaign.saved_segment,
                          group_chat_ids=campaign.group_chat_ids)


def campaign_image_url(campaign: Campaign) -> str:
    """Where staff see the stored image (the API serves it; media files are not public)."""
    return reverse("campaign-image", args=[campaign.id]) if campaign.image else ""


def campaign_preview(campaign: Campaign) -> dict:
    """What the WeChat chat bubble shows: the text, then the attachment card (image, link or mini program)."""
    pool = RedPacketPool.objects.filter(campaign=campaign).exists()
    draw = LuckyDraw.objects.filter(campaign=campaign).exists()
    attachment: dict | None = None
    if campaign.attachment == Campaign.Attachment.IMAGE:
        attachment = {"type": "image", "image_url": campaign_image_url(campaign)}
    elif campaign.attachment == Campaign.Attachment.LINK:
        attachment = {"type": "link", "title": campaign.link_title, "desc": campaign.link_desc,
                      "url": campaign.link_url, "host": urlparse(campaign.link_url).netloc}
    elif campaign.attachment == Campaign.Attachment.MINIPROGRAM:
        attachment = {"type": "miniprogram", "title": campaign.miniprogram_title, "appid": campaign.miniprogram_appid,
                      "page": campaign.miniprogram_page, "cover_url": campaign_image_url(campaign)}
    return {
        "chat_type": "single" if campaign.target == Campaign.Target.SEGMENT else "group",
        "text": campaign.text,
        "text_bytes": _bytes(campaign.text),
        "max_text_bytes": MAX_TEXT_BYTES - (LINK_RESERVE_BYTES if pool else 0),
        "attachment": attachment,
        # The personal link the planner appends to the text (one link for everyone, or signed per customer).
        "link_appended": "red_packet" if pool else ("lucky_draw" if draw else ""),
    }


def campaign_image_media_id(campaign: Campaign, *, force: bool = False) -> str:
    """The image's WeCom media id for a send: uploaded through media/upload when there is none younger than
    MEDIA_REUSE (WeCom keeps it 3 days), or when `force` (WeCom answered 40007 for the stored one).

    Two workers may both upload: each gets a valid id and the last one is kept, which is harmless (an upload
    reaches no customer)."""
    from crm.wecom.client import get_client

    if not campaign.image:
        raise ApplicationError(_("The campaign has no image."), field="image")
    now = timezone.now()
    if not force and campaign.image_media_id and campaign.image_media_at and \
            campaign.image_media_at > now - MEDIA_REUSE:
        return campaign.image_media_id
    with campaign.image.open("rb") as handle:
        content = handle.read()
    kind = image_kind(content[:16])
    filename = os.path.basename(campaign.image.name)
    result = get_client().media_upload("image", filename, content, f"image/{'jpeg' if kind == 'jpg' else kind}")
    media_id = str(result["media_id"])
    Campaign.objects.filter(pk=campaign.pk).update(image_media_id=media_id, image_media_at=now)
    campaign.image_media_id, campaign.image_media_at = media_id, now
    return media_id


def campaign_attachments(campaign: Campaign, *, force_upload: bool = False) -> list[dict]:
    """add_msg_template's `attachments` for the campaign (uploads the image when its media id is stale)."""
    if campaign.attachment == Campaign.Attachment.IMAGE:
        return [{"msgtype": "image", "image": {"media_id": campaign_image_media_id(campaign, force=force_upload)}}]
    if campaign.attachment == Campaign.Attachment.LINK or (not campaign.attachment and campaign.link_url):
        link = {"title": campaign.link_title, "url": campaign.link_url}
        if campaign.link_desc:
            link["desc"] = campaign.link_desc
        return [{"msgtype": "link", "link": link}]
    if campaign.attachment == Campaign.Attachment.MINIPROGRAM:
        return [{"msgtype": "miniprogram", "miniprogram": {
            "title": campaign.miniprogram_title, "appid": campaign.miniprogram_appid, "page": campaign.miniprogram_page,
            "pic_media_id": campaign_image_media_id(campaign, force=force_upload)}}]
    return []


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
        raise ApplicationError(_("prizes must be a non-empty list."), field="prizes")
    for i, prize in enumerate(prizes):
        if not isinstance(prize, dict) or not str(prize.get("name", "")).strip():
            raise ApplicationError(_("Each prize needs a name."), field=f"prizes[{i}].name")
        count = prize.get("count")
        if not isinstance(count, int) or isinstance(count, bool) or count < 1:
            raise ApplicationError(_("Each prize needs a count >= 1."), field=f"prizes[{i}].count")
    if not isinstance(win_rate_percent, int) or not 0 <= win_rate_percent <= 100:
        raise ApplicationError(_("win_rate_percent must be within 0..100."), field="win_rate_percent")
    if LuckyDraw.objects.filter(campaign=campaign).exists():
        raise Conflict(_("This campaign already has a lucky draw."), field="campaign")
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
            raise NotFound(_("No such lucky draw."), field="draw")
        if Contact.objects.filter(pk=contact_id, erased_at__isnull=False).exists():  # an erased person's old link
            raise NotFound(_("No such customer."), field="contact")
        existing = LuckyDrawEntry.objects.filter(draw=draw, contact_id=contact_id).first()
        if existing:
            return existing
        won: dict[str, int] = {}
        for name in LuckyDrawEntry.objects.filter(draw=draw).exclude(prize="").values_list("prize", flat=True):
            won[name] = won.get(name, 0) + 1
        stock = [p["name"] for p in draw.prizes for _n in range(max(0, p["count"] - won.get(p["name"], 0)))]
        prize = ""
        rng = secrets.SystemRandom()
        if stock and rng.randrange(100) < draw.win_rate_percent:
            prize = rng.choice(stock)
        try:
            with transaction.atomic():
                return LuckyDrawEntry.objects.create(draw=draw, contact_id=contact_id, prize=prize)
        except IntegrityError:
            return LuckyDrawEntry.objects.get(draw=draw, contact_id=contact_id)
