"""「联系我」 contact ways and the welcome message."""

from __future__ import annotations

import datetime as dt
import time

from django.db.models import Q
from django.utils import timezone

from wecom_sim import ids
from wecom_sim.cgi.base import WecomError, as_int, as_list, endpoint, page, require
from wecom_sim.cgi.media import check_media
from wecom_sim.corp import now, ts
from wecom_sim.models import SimContactWay, SimCorp, SimMember, SimWelcomeCode
from wecom_sim.world import deliver_to_inbox

EXTRA_FIELDS = ("is_temp", "expires_in", "chat_expires_in", "unionid", "is_exclusive", "conclusions", "mark_source")
MAX_ATTACHMENTS = 9
IN_FLIGHT_STALE_SECONDS = 60  # a send that died in flight frees its code after this long
ATTACHMENT_TYPES = {"image", "link", "miniprogram", "video", "file"}


def check_users(corp: SimCorp, userids: list) -> list[str]:
    names = []
    for userid in userids:
        member = SimMember.objects.filter(corp=corp, userid__iexact=userid, resigned_at__isnull=True).first()
        if member is None:
            raise WecomError(40003, f"invalid userid {userid}")
        if not member.activated or not member.has_customer_contact:
            raise WecomError(41054)
        names.append(member.userid)
    return names


def _apply(corp: SimCorp, way: SimContactWay, params: dict, creating: bool) -> None:
    if creating:
        type_ = as_int(params, "type")
        if type_ is None:
            raise WecomError(41037)
        if type_ not in (1, 2):
            raise WecomError(40058, "invalid type")
        scene = as_int(params, "scene")
        if scene not in (1, 2):
            raise WecomError(41040)
        way.type, way.scene = type_, scene
    if params.get("style") is not None:
        style = as_int(params, "style")
        if style not in (1, 2, 3):
            raise WecomError(41042)
        way.style = style
    if params.get("remark") is not None:
        way.remark = str(params["remark"])[:30]
    if params.get("skip_verify") is not None:
        way.skip_verify = bool(params["skip_verify"])
    if params.get("state") is not None:
        if len(str(params["state"])) > 30:
            raise WecomError(40058, "state exceed 30 chars")
        way.state = str(params["state"])
    if "user" in params or creating:
        users = check_users(corp, as_list(params, "user"))
        if way.type == 1 and len(users) != 1:
            raise WecomError(40058, "single contact way needs exactly one user")
        if len(users) > 100:
            raise WecomError(41041)
        way.users = users
    if "party" in params:
        way.party = as_list(params, "party")
    way.extra = {**way.extra, **{k: params[k] for k in EXTRA_FIELDS if k in params}}


def way_json(way: SimContactWay) -> dict:
    data = {"config_id": way.config_id, "type": way.type, "scene": way.scene, "remark": way.remark,
            "skip_verify": way.skip_verify, "state": way.state, "user": way.users, "party": way.party,
            **way.extra}
    if way.style is not None:
        data["style"] = way.style
    if way.scene == 2:
        data["qr_code"] = way.qr_code
    return data


def way_or_41044(corp: SimCorp, params: dict) -> SimContactWay:
    config_id = require(params, "config_id", 41043)
    way = SimContactWay.objects.filter(corp=corp, config_id=config_id, deleted=False).first()
    if way is None:
        raise WecomError(41044)
    return way


@endpoint("externalcontact/add_contact_way", empty={"config_id": ""})
def add_contact_way(corp: SimCorp, params: dict) -> dict:
    config_id = ids.config_id()
    way = SimContactWay(corp=corp, config_id=config_id, qr_code=f"https://wework.qq.com/q/{ids.random_token(24)}",
                        created_at=now(corp))
    _apply(corp, way, params, creating=True)
    way.save()
    result = {"config_id": config_id}
    if way.scene == 2:
        result["qr_code"] = way.qr_code
    return result


@endpoint("externalcontact/get_contact_way", empty={"contact_way": {}})
def get_contact_way(corp: SimCorp, params: dict) -> dict:
    return {"contact_way": way_json(way_or_41044(corp, params))}


@endpoint("externalcontact/update_contact_way")
def update_contact_way(corp: SimCorp, params: dict) -> dict:
    way = way_or_41044(corp, params)
    _apply(corp, way, params, creating=False)
    way.save()
    return {}


@endpoint("externalcontact/del_contact_way")
def del_contact_way(corp: SimCorp, params: dict) -> dict:
    way = way_or_41044(corp, params)
    SimContactWay.objects.filter(pk=way.pk).update(deleted=True)
    return {}


@endpoint("externalcontact/list_contact_way", empty={"contact_way": [], "next_cursor": ""})
def list_contact_way(corp: SimCorp, params: dict) -> dict:
    moment = now(corp)
    start = as_int(params, "start_time") or ts(moment - dt.timedelta(days=90))
    end = as_int(params, "end_time") or ts(moment)
    ways = [w for w in SimContactWay.objects.filter(corp=corp, deleted=False).order_by("id")
            if start <= ts(w.created_at) <= end]
    chunk, cursor = page(ways, params, {"api": "list_contact_way", "start": start, "end": end}, 100, 1000)
    return {"contact_way": [{"config_id": w.config_id} for w in chunk], "next_cursor": cursor}


def check_attachments(attachments: list) -> None:
    if len(attachments) > MAX_ATTACHMENTS:
        raise WecomError(41064)
    for item in attachments:
        if not isinstance(item, dict) or item.get("msgtype") not in ATTACHMENT_TYPES or item["msgtype"] not in item:
            raise WecomError(41065)
    check_media(attachments)  # media ids: known, of the right type, younger than 3 days (40007)


@endpoint("externalcontact/send_welcome_msg")
def send_welcome_msg(corp: SimCorp, params: dict) -> dict:
    code = require(params, "welcome_code", 41049)
    text = params.get("text") or {}
    attachments = as_list(params, "attachments")
    if not isinstance(text, dict):
        raise WecomError(47001)
    if not text.get("content") and not attachments:
        raise WecomError(40063, "text and attachments both empty")
    if len(str(text.get("content") or "").encode()) > 4000:
        raise WecomError(40058, "content exceed 4000 bytes")
    check_attachments(attachments)
    moment = now(corp)
    welcome = SimWelcomeCode.objects.filter(code=code, friendship__member__corp=corp).select_related(
        "friendship__member", "friendship__shopper").first()
    if welcome is None:
        raise WecomError(41050)
    if welcome.used_at is not None:
        raise WecomError(41051)
    if moment > welcome.issued_at + dt.timedelta(seconds=corp.welcome_code_ttl):
        raise WecomError(41050)
    # Take the code for this send; another send while it is in flight gets 41096 (retry later: it may still fail).
    started = timezone.now()
    free = Q(sending_at__isnull=True) | Q(sending_at__lt=started - dt.timedelta(seconds=IN_FLIGHT_STALE_SECONDS))
    if not SimWelcomeCode.objects.filter(free, pk=welcome.pk, used_at__isnull=True).update(sending_at=started):
        used = SimWelcomeCode.objects.filter(pk=welcome.pk, used_at__isnull=False).exists()
        raise WecomError(41051 if used else 41096)
    try:
        if corp.welcome_send_delay_ms:
            time.sleep(corp.welcome_send_delay_ms / 1000)
        friendship = welcome.friendship
        deliver_to_inbox(friendship.shopper, "welcome", friendship.member.userid, text.get("content", ""),
                         attachments, code, corp)
        SimWelcomeCode.objects.filter(pk=welcome.pk).update(used_at=moment)
    except BaseException:
        SimWelcomeCode.objects.filter(pk=welcome.pk, sending_at=started).update(sending_at=None)
        raise
    return {}
