"""Inheritance: customer transfers (on-the-job, resigned), their results, unassigned list, group transfers."""

from __future__ import annotations

import datetime as dt

from wecom_sim.cgi.base import WecomError, as_list, endpoint, page, require
from wecom_sim.clockwork import settle_transfers
from wecom_sim.corp import now, ts
from wecom_sim.models import SimCorp, SimFriendship, SimGroupChat, SimMember, SimTransfer

MAX_CUSTOMERS = 100
WINDOW_90_DAYS = dt.timedelta(days=90)


def _member(corp: SimCorp, userid: str, code: int) -> SimMember:
    member = SimMember.objects.filter(corp=corp, userid__iexact=userid or "").first()
    if member is None:
        raise WecomError(code)
    return member


def _start(corp: SimCorp, params: dict, kind: str) -> dict:
    handover = _member(corp, require(params, "handover_userid", 40097), 40097)
    takeover = _member(corp, require(params, "takeover_userid", 40098), 40098)
    if kind == "resigned" and handover.resigned_at is None:
        raise WecomError(40097, "handover user is not resigned")
    if kind == "onjob" and handover.resigned_at is not None:
        raise WecomError(40097, "handover user has resigned")
    if takeover.resigned_at is not None or not takeover.activated or not takeover.has_customer_contact:
        raise WecomError(40098)
    if handover.pk == takeover.pk:
        raise WecomError(40130)
    eids = as_list(params, "external_userid")
    if not eids:
        raise WecomError(40063, "external_userid missing")
    if len(eids) > MAX_CUSTOMERS:
        raise WecomError(40058, "external_userid exceed 100")
    moment = now(corp)
    results = []
    for eid in eids:
        results.append({"external_userid": eid, "errcode": _start_one(corp, kind, handover, takeover, eid, moment,
                                                                        params)})
    return {"customer": results}


def _start_one(corp, kind, handover, takeover, eid, moment, params) -> int:
    friendship = SimFriendship.objects.filter(member=handover, shopper__external_userid=eid,
                                              member_deleted=False, confirmed=True).first()
    if friendship is None:
        exists = SimFriendship.objects.filter(shopper__external_userid=eid, member__corp=corp).exists()
        return 40131 if exists else 40096
    transfers = SimTransfer.objects.filter(corp=corp, external_userid=eid)
    if transfers.filter(status=2).exists():
        return 40129
    if kind == "onjob" and transfers.filter(kind="onjob", created_at__gte=moment - WINDOW_90_DAYS).exclude(
            status=3).count() >= 2:
        return 40128
    SimTransfer.objects.create(
        corp=corp, kind=kind, handover_userid=handover.userid, takeover_userid=takeover.userid, external_userid=eid,
        created_at=moment, takeover_time=moment + dt.timedelta(seconds=corp.transfer_wait_seconds),
        transfer_success_msg=str(params.get("transfer_success_msg") or "")[:200],
    )
    return 0


@endpoint("externalcontact/transfer_customer", empty={"customer": []})
def transfer_customer(corp: SimCorp, params: dict) -> dict:
    return _start(corp, params, "onjob")


@endpoint("externalcontact/resigned/transfer_customer", empty={"customer": []})
def resigned_transfer_customer(corp: SimCorp, params: dict) -> dict:
    return _start(corp, params, "resigned")


def _result(corp: SimCorp, params: dict, kind: str) -> dict:
    settle_transfers(corp)
    handover = require(params, "handover_userid", 40097)
    takeover = require(params, "takeover_userid", 40098)
    rows = SimTransfer.objects.filter(corp=corp, kind=kind, handover_userid__iexact=handover,
                                      takeover_userid__iexact=takeover).order_by("id")
    latest: dict[str, SimTransfer] = {}
    for row in rows:
        latest[row.external_userid] = row
    chunk, cursor = page(list(latest.values()), params, {"api": kind, "h": handover.lower(), "t": takeover.lower()},
                         1000, 1000)
    return {"customer": [{"external_userid": t.external_userid, "status": t.status,
                          "takeover_time": ts(t.takeover_time)} for t in chunk], "next_cursor": cursor}


@endpoint("externalcontact/transfer_result", empty={"customer": [], "next_cursor": ""})
def transfer_result(corp: SimCorp, params: dict) -> dict:
    return _result(corp, params, "onjob")


@endpoint("externalcontact/resigned/transfer_result", empty={"customer": [], "next_cursor": ""})
def resigned_transfer_result(corp: SimCorp, params: dict) -> dict:
    return _result(corp, params, "resigned")


@endpoint("externalcontact/get_unassigned_list", empty={"info": [], "is_last": True, "next_cursor": ""})
def get_unassigned_list(corp: SimCorp, params: dict) -> dict:
    settle_transfers(corp)
    busy = set(SimTransfer.objects.filter(corp=corp, kind="resigned", status__in=[1, 2]).values_list(
        "handover_userid", "external_userid"))
    rows = [f for f in SimFriendship.objects.filter(member__corp=corp, member__resigned_at__isnull=False,
                                                     member_deleted=False).select_related("member", "shopper")
            .order_by("id") if (f.member.userid, f.shopper.external_userid) not in busy]
    size = max(1, min(int(params.get("page_size") or 1000), 1000))
    if params.get("cursor") or "page_id" not in params:
        chunk, cursor = page(rows, {"cursor": params.get("cursor"), "limit": size}, {"api": "unassigned"}, size, size)
    else:
        start = int(params.get("page_id") or 0) * size
        chunk, cursor = rows[start : start + size], None
    info = [{"handover_userid": f.member.userid, "external_userid": f.shopper.external_userid,
             "dimission_time": ts(f.member.resigned_at)} for f in chunk]
    result = {"info": info, "is_last": cursor == "" if cursor is not None else len(rows) <= size * (
        int(params.get("page_id") or 0) + 1)}
    if cursor is not None:
        result["next_cursor"] = cursor
    return result


def _group_transfer(corp: SimCorp, params: dict, resigned: bool) -> dict:
    chat_ids = as_list(params, "chat_id_list")
    if not chat_ids:
        raise WecomError(40063, "chat_id_list missing")
    if len(chat_ids) > 100:
        raise WecomError(40058, "chat_id_list exceed 100")
    new_owner = _member(corp, require(params, "new_owner", 40003), 40003)
    if new_owner.resigned_at is not None or not new_owner.activated or not new_owner.has_customer_contact:
        raise WecomError(40003)
    failed = []
    for chat_id in chat_ids:
        code = _transfer_one_group(corp, chat_id, new_owner, resigned)
        if code:
            failed.append({"chat_id": chat_id, "errcode": code, "errmsg": "fail"})
    return {"failed_chat_list": failed}


def _transfer_one_group(corp: SimCorp, chat_id: str, new_owner: SimMember, resigned: bool) -> int:
    chat = SimGroupChat.objects.filter(corp=corp, chat_id=chat_id, dismissed=False).first()
    if chat is None:
        return 90501
    owner = SimMember.objects.filter(corp=corp, userid=chat.owner).first()
    owner_resigned = owner is not None and owner.resigned_at is not None
    if resigned and not owner_resigned:
        return 90500
    if not resigned and owner_resigned:
        return 90502
    if chat.owner.lower() == new_owner.userid.lower():
        return 90504
    chat.owner = new_owner.userid
    chat.status = 3 if resigned else 0
    chat.save(update_fields=["owner", "status"])
    if not chat.members.filter(userid=new_owner.userid).exists():
        chat.members.create(userid=new_owner.userid, type=1, name=new_owner.name, join_time=now(corp), join_scene=1)
    return 0


@endpoint("externalcontact/groupchat/transfer", empty={"failed_chat_list": []})
def groupchat_transfer(corp: SimCorp, params: dict) -> dict:
    return _group_transfer(corp, params, resigned=True)


@endpoint("externalcontact/groupchat/onjob_transfer", empty={"failed_chat_list": []})
def groupchat_onjob_transfer(corp: SimCorp, params: dict) -> dict:
    return _group_transfer(corp, params, resigned=False)
