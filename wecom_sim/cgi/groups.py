"""Customer groups (groupchat/list, groupchat/get) and their join ways."""

from __future__ import annotations

from wecom_sim import ids
from wecom_sim.cgi.base import WecomError, as_int, as_list, endpoint, page, require
from wecom_sim.corp import now, ts
from wecom_sim.models import SimCorp, SimGroupChat, SimJoinWay, SimMember


@endpoint("externalcontact/groupchat/list", empty={"group_chat_list": [], "next_cursor": ""})
def groupchat_list(corp: SimCorp, params: dict) -> dict:
    status_filter = as_int(params, "status_filter", 0)
    owners = as_list((params.get("owner_filter") or {}), "userid_list") if isinstance(
        params.get("owner_filter"), dict) else []
    if len(owners) > 100:
        raise WecomError(40058, "owner_filter exceed 100")
    chats = SimGroupChat.objects.filter(corp=corp, dismissed=False).order_by("id")
    if owners:
        chats = chats.filter(owner__in=owners)
    else:
        visible = SimMember.objects.filter(corp=corp, resigned_at__isnull=True).count()
        if visible > corp.groupchat_visible_limit:
            raise WecomError(81017)  # the app sees too many members: owner_filter is required
        # Groups of resigned owners show only when owner_filter names that owner.
        resigned = SimMember.objects.filter(corp=corp, resigned_at__isnull=False).values_list("userid", flat=True)
        chats = chats.exclude(owner__in=list(resigned))
    if status_filter:
        chats = chats.filter(status=status_filter)
    query = {"api": "groupchat/list", "s": status_filter, "o": sorted(owners)}
    chunk, cursor = page(list(chats), params, query, 100, 1000)
    return {"group_chat_list": [{"chat_id": c.chat_id, "status": c.status} for c in chunk], "next_cursor": cursor}


@endpoint("externalcontact/groupchat/get", empty={"group_chat": {}})
def groupchat_get(corp: SimCorp, params: dict) -> dict:
    chat = SimGroupChat.objects.filter(corp=corp, chat_id=require(params, "chat_id")).first()
    if chat is None or chat.dismissed:
        raise WecomError(90501)
    need_name = bool(as_int(params, "need_name", 0))
    members = []
    for m in chat.members.order_by("id"):
        row = {"userid": m.userid, "type": m.type, "join_time": ts(m.join_time), "join_scene": m.join_scene,
               "group_nickname": ""}
        if m.type == 2 and m.unionid:
            row["unionid"] = m.unionid
        if m.invitor:
            row["invitor"] = {"userid": m.invitor}
        if m.state:
            row["state"] = m.state
        if need_name:
            row["name"] = m.name
        members.append(row)
    return {"group_chat": {"chat_id": chat.chat_id, "name": chat.name, "owner": chat.owner,
                           "create_time": ts(chat.create_time), "notice": chat.notice, "member_list": members,
                           "admin_list": [], "member_version": chat.member_version}}


def _apply_join_way(corp: SimCorp, way: SimJoinWay, params: dict) -> None:
    scene = as_int(params, "scene")
    if scene not in (1, 2):
        raise WecomError(41040)
    chat_ids = as_list(params, "chat_id_list")
    if not chat_ids:
        raise WecomError(40063, "chat_id_list missing")
    if len(chat_ids) > 5:
        raise WecomError(41091)
    known = set(SimGroupChat.objects.filter(corp=corp, chat_id__in=chat_ids, dismissed=False).values_list(
        "chat_id", flat=True))
    if set(chat_ids) - known:
        raise WecomError(90501)
    if len(str(params.get("state") or "")) > 30:
        raise WecomError(40058, "state exceed 30 chars")
    way.scene = scene
    way.remark = str(params.get("remark") or "")[:30]
    way.auto_create_room = as_int(params, "auto_create_room", 1)
    way.room_base_name = str(params.get("room_base_name") or "")[:40]
    way.room_base_id = as_int(params, "room_base_id", 1) or 1
    way.chat_id_list = chat_ids
    way.state = str(params.get("state") or "")


def join_way_or_41044(corp: SimCorp, params: dict) -> SimJoinWay:
    way = SimJoinWay.objects.filter(corp=corp, config_id=require(params, "config_id", 41043), deleted=False).first()
    if way is None:
        raise WecomError(41044)
    return way


@endpoint("externalcontact/groupchat/add_join_way", empty={"config_id": ""})
def add_join_way(corp: SimCorp, params: dict) -> dict:
    way = SimJoinWay(corp=corp, config_id=ids.config_id(), created_at=now(corp),
                     qr_code=f"https://wework.qq.com/g/{ids.random_token(24)}")
    _apply_join_way(corp, way, params)
    way.save()
    return {"config_id": way.config_id}


@endpoint("externalcontact/groupchat/get_join_way", empty={"join_way": {}})
def get_join_way(corp: SimCorp, params: dict) -> dict:
    way = join_way_or_41044(corp, params)
    return {"join_way": {"config_id": way.config_id, "scene": way.scene, "remark": way.remark,
                         "auto_create_room": way.auto_create_room, "room_base_name": way.room_base_name,
                         "room_base_id": way.room_base_id, "chat_id_list": way.chat_id_list,
                         "qr_code": way.qr_code, "state": way.state}}


@endpoint("externalcontact/groupchat/update_join_way")
def update_join_way(corp: SimCorp, params: dict) -> dict:
    way = join_way_or_41044(corp, params)
    _apply_join_way(corp, way, params)  # replaces every field, as the real API does
    way.save()
    return {}


@endpoint("externalcontact/groupchat/del_join_way")
def del_join_way(corp: SimCorp, params: dict) -> dict:
    way = join_way_or_41044(corp, params)
    SimJoinWay.objects.filter(pk=way.pk).update(deleted=True)
    return {}
