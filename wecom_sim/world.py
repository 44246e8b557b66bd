"""What people do in their WeCom/WeChat clients: these actions change the world and emit callbacks."""

from __future__ import annotations

import datetime as dt
import hashlib

from django.db import transaction

from wecom_sim import events, ids
from wecom_sim.corp import now
from wecom_sim.models import (
    SimContactWay,
    SimCorp,
    SimFriendship,
    SimGroupChat,
    SimGroupMember,
    SimInboxMessage,
    SimJoinWay,
    SimMember,
    SimShopper,
    SimTransfer,
    SimWelcomeCode,
)


class WorldError(Exception):
    """A simulated client action that cannot happen (admin API answers 4xx)."""

    def __init__(self, message: str, code: str = "invalid", field: str | None = None, status: int = 400) -> None:
        super().__init__(message)
        self.message, self.code, self.field, self.status = message, code, field, status


def find_member(corp: SimCorp, userid: str, *, active: bool = True) -> SimMember | None:
    qs = SimMember.objects.filter(corp=corp, userid__iexact=userid or "")
    if active:
        qs = qs.filter(resigned_at__isnull=True)
    return qs.first()


def get_member(corp: SimCorp, userid: str) -> SimMember:
    member = find_member(corp, userid, active=False)
    if member is None:
        raise WorldError(f"unknown member {userid}", "not_found", "userid", 404)
    return member


def get_shopper(corp: SimCorp, external_userid: str) -> SimShopper:
    shopper = SimShopper.objects.filter(corp=corp, external_userid=external_userid).first()
    if shopper is None:
        raise WorldError(f"unknown shopper {external_userid}", "not_found", "external_userid", 404)
    return shopper


def create_member(corp: SimCorp, userid: str, name: str = "", **fields) -> SimMember:
    member, _ = SimMember.objects.update_or_create(
        corp=corp, userid=userid, defaults={"name": name or userid, "department": [1], **fields}
    )
    return member


def create_shopper(corp: SimCorp, name: str, gender: int = 0, unionid: str = "", phone: str = "",
                   external_userid: str | None = None) -> SimShopper:
    eid = external_userid or ids.external_userid()
    existing = SimShopper.objects.filter(external_userid=eid).first()
    if existing:
        return existing
    # openid derived from the id so that a seeded scenario gives stable openids too.
    openid = "o" + hashlib.sha1(("openid:" + eid).encode()).hexdigest()[:27]
    return SimShopper.objects.create(corp=corp, external_userid=eid, openid=openid, unionid=unionid, name=name,
                                     gender=gender, phone=phone)


def friend_count(member: SimMember) -> int:
    return member.friendships.filter(member_deleted=False).count()


def deliver_to_inbox(shopper: SimShopper, kind: str, from_userid: str, text: str, attachments: list, ref: str = "",
                     corp: SimCorp | None = None) -> SimInboxMessage:
    return SimInboxMessage.objects.create(shopper=shopper, kind=kind, from_userid=from_userid, text=text,
                                          attachments=attachments or [], ref=ref, received_at=now(corp))


@transaction.atomic
def befriend(corp: SimCorp, member: SimMember, shopper: SimShopper, *, state: str = "", add_way: int = 1,
             oper_userid: str | None = None, event: bool = True, half: bool = False
             ) -> tuple[SimFriendship, str | None]:
    """Make (or restore) the relation and emit add_external_contact with State + WelcomeCode.

    half: the customer added through a skip-verify contact way: the relation waits for the member to confirm
    (84061 until then) and the event is add_half_external_contact; confirm_add emits add_external_contact."""
    if friend_count(member) >= corp.friend_limit:
        raise WorldError(f"{member.userid} reached the customer limit", "friend_limit", "userid", 409)
    moment = now(corp)
    friendship, created = SimFriendship.objects.get_or_create(
        member=member, shopper=shopper,
        defaults={"createtime": moment, "state": state, "add_way": add_way, "confirmed": not half,
                  "oper_userid": oper_userid or shopper.external_userid},
    )
    if not created:
        if not friendship.member_deleted and not friendship.customer_deleted:
            return friendship, None  # already friends (or waiting for the member): nothing happens in the client
        friendship.member_deleted = friendship.customer_deleted = False
        friendship.createtime, friendship.state, friendship.add_way = moment, state, add_way
        friendship.oper_userid = oper_userid or shopper.external_userid
        friendship.confirmed = not half
        friendship.save()
    code = ids.welcome_code()
    SimWelcomeCode.objects.create(code=code, friendship=friendship, issued_at=moment)
    if event:
        events.contact_event(corp, "add_half_external_contact" if half else "add_external_contact", member.userid,
                             shopper.external_userid, State=state, WelcomeCode=code)
    if half and corp.add_confirm_seconds == 0:
        confirm_add(corp, friendship)  # the member confirms at once (the default)
    return friendship, code


def confirm_add(corp: SimCorp, friendship: SimFriendship) -> dict | None:
    """The member confirms a skip-verify (half) add: the relation becomes visible to the API and
    add_external_contact is emitted. There is one welcome opportunity per add: a new WelcomeCode is issued only
    when the half-add code expired unused; none when a welcome went out (or is going out) with it, or while it is
    still valid. -> {welcome_code} or None when there was nothing to confirm."""
    if not SimFriendship.objects.filter(pk=friendship.pk, confirmed=False, member_deleted=False).update(
            confirmed=True):
        return None
    friendship.refresh_from_db()
    moment = now(corp)
    half_code = friendship.welcome_codes.filter(issued_at__gte=friendship.createtime).order_by("-id").first()
    code = None
    expired_unused = half_code is not None and half_code.used_at is None and half_code.sending_at is None and (
        moment > half_code.issued_at + dt.timedelta(seconds=corp.welcome_code_ttl))
    if half_code is None or expired_unused:
        code = ids.welcome_code()
        SimWelcomeCode.objects.create(code=code, friendship=friendship, issued_at=moment)
    events.contact_event(corp, "add_external_contact", friendship.member.userid, friendship.shopper.external_userid,
                         State=friendship.state, WelcomeCode=code)
    return {"welcome_code": code}


def member_confirms_add(corp: SimCorp, member: SimMember, external_userid: str) -> dict:
    shopper = get_shopper(corp, external_userid)
    friendship = SimFriendship.objects.filter(member=member, shopper=shopper, confirmed=False,
                                              member_deleted=False).first()
    result = confirm_add(corp, friendship) if friendship else None
    if result is None:
        raise WorldError("no add waiting for this member's confirmation", "not_pending", "external_userid", 409)
    return result


def find_contact_way(corp: SimCorp, config_id: str | None = None, state: str | None = None) -> SimContactWay:
    qs = SimContactWay.objects.filter(corp=corp, deleted=False)
    way = qs.filter(config_id=config_id).first() if config_id else qs.filter(state=state or "").order_by("-id").first()
    if way is None:
        raise WorldError("no such contact way", "not_found", "config_id" if config_id else "state", 404)
    return way


def scan_contact_way(corp: SimCorp, shopper: SimShopper, config_id: str | None = None,
                     state: str | None = None) -> dict:
    way = find_contact_way(corp, config_id, state)
    users = list(way.users or [])
    if not users:
        raise WorldError("contact way has no members", "invalid", "config_id", 409)
    # single: the one member; multi: round robin (the index lives in the DB so every process agrees)
    with transaction.atomic():
        locked = SimContactWay.objects.select_for_update().get(pk=way.pk)
        userid = users[locked.rr_index % len(users)]
        SimContactWay.objects.filter(pk=way.pk).update(rr_index=locked.rr_index + 1)
    member = get_member(corp, userid)
    friendship, code = befriend(corp, member, shopper, state=way.state, add_way=1, half=way.skip_verify)
    return {"userid": member.userid, "welcome_code": code, "confirmed": friendship.confirmed}


def delete_staff(corp: SimCorp, shopper: SimShopper, userid: str) -> None:
    """The customer deletes the member: the relation becomes one-way (del_follow_user)."""
    member = get_member(corp, userid)
    updated = SimFriendship.objects.filter(member=member, shopper=shopper, member_deleted=False,
                                           customer_deleted=False).update(customer_deleted=True)
    if not updated:
        raise WorldError("not friends", "not_friends", "userid", 409)
    events.contact_event(corp, "del_follow_user", member.userid, shopper.external_userid)


def member_deletes_customer(corp: SimCorp, member: SimMember, external_userid: str) -> None:
    shopper = get_shopper(corp, external_userid)
    updated = SimFriendship.objects.filter(member=member, shopper=shopper, member_deleted=False).update(
        member_deleted=True
    )
    if not updated:
        raise WorldError("not friends", "not_friends", "external_userid", 409)
    events.contact_event(corp, "del_external_contact", member.userid, shopper.external_userid)


def member_edits_customer(corp: SimCorp, member: SimMember, external_userid: str, remark: str | None = None,
                          description: str | None = None, add_tag: list | None = None,
                          remove_tag: list | None = None) -> None:
    """The member edits remark/description/corp tags in the client: edit_external_contact."""
    shopper = get_shopper(corp, external_userid)
    friendship = SimFriendship.objects.filter(member=member, shopper=shopper, member_deleted=False).first()
    if friendship is None:
        raise WorldError("not friends", "not_friends", "external_userid", 409)
    if remark is not None:
        friendship.remark = remark
    if description is not None:
        friendship.description = description
    tags = [t for t in friendship.tag_ids if t not in (remove_tag or [])]
    friendship.tag_ids = tags + [t for t in (add_tag or []) if t not in tags]
    friendship.save()
    events.contact_event(corp, "edit_external_contact", member.userid, shopper.external_userid)


def console_add_tags(corp: SimCorp, group_name: str, names: list[str]) -> dict:
    """An admin adds corp tags in the admin console: change_external_tag create per tag (and the new group)."""
    from wecom_sim.models import SimTag, SimTagGroup

    moment = now(corp)
    group = SimTagGroup.objects.filter(corp=corp, name=group_name, deleted=False).first()
    if group is None:
        group = SimTagGroup.objects.create(corp=corp, group_id=ids.tag_id(), name=group_name, create_time=moment)
        events.emit(corp, "change_external_tag", "create", Id=group.group_id, TagType="tag_group")
    created = []
    for name in names:
        tag = SimTag.objects.create(group=group, tag_id=ids.tag_id(), name=name, create_time=moment)
        events.emit(corp, "change_external_tag", "create", Id=tag.tag_id, TagType="tag")
        created.append({"id": tag.tag_id, "name": name})
    return {"group_id": group.group_id, "tag": created}


def console_delete_tag(corp: SimCorp, tag_or_group_id: str) -> None:
    from wecom_sim.models import SimTag, SimTagGroup

    if SimTag.objects.filter(group__corp=corp, tag_id=tag_or_group_id, deleted=False).update(deleted=True):
        events.emit(corp, "change_external_tag", "delete", Id=tag_or_group_id, TagType="tag")
    elif SimTagGroup.objects.filter(corp=corp, group_id=tag_or_group_id, deleted=False).update(deleted=True):
        SimTag.objects.filter(group__group_id=tag_or_group_id).update(deleted=True)
        events.emit(corp, "change_external_tag", "delete", Id=tag_or_group_id, TagType="tag_group")
    else:
        raise WorldError("no such tag or group", "not_found", "id", 404)


def console_edit_tag(corp: SimCorp, tag_or_group_id: str, name: str) -> None:
    """An admin renames a corp tag or tag group in the admin console: change_external_tag update."""
    from wecom_sim.models import SimTag, SimTagGroup

    if not name or len(name) > 30:
        raise WorldError("name must be 1 to 30 characters", "invalid", "name")
    tag = SimTag.objects.filter(group__corp=corp, tag_id=tag_or_group_id, deleted=False).first()
    target = tag or SimTagGroup.objects.filter(corp=corp, group_id=tag_or_group_id, deleted=False).first()
    if target is None:
        raise WorldError("no such tag or group", "not_found", "id", 404)
    siblings = SimTag.objects.filter(group_id=tag.group_id) if tag else SimTagGroup.objects.filter(corp=corp)
    if siblings.filter(name=name, deleted=False).exclude(pk=target.pk).exists():
        raise WorldError("that name is taken", "duplicate", "name", 409)
    target.name = name
    target.save(update_fields=["name"])
    events.emit(corp, "change_external_tag", "update", Id=tag_or_group_id, TagType="tag" if tag else "tag_group")


def resign_member(corp: SimCorp, member: SimMember) -> None:
    member.resigned_at = now(corp)
    member.save(update_fields=["resigned_at"])
    SimGroupChat.objects.filter(corp=corp, owner=member.userid, dismissed=False).update(status=1)


def refuse_transfer(corp: SimCorp, shopper: SimShopper) -> int:
    """The customer taps "暂不添加" on every waiting transfer: status 3 + transfer_fail customer_refused."""
    count = 0
    for transfer in SimTransfer.objects.filter(corp=corp, external_userid=shopper.external_userid, status=2):
        if SimTransfer.objects.filter(pk=transfer.pk, status=2).update(status=3):
            count += 1
            events.contact_event(corp, "transfer_fail", transfer.takeover_userid, shopper.external_userid,
                                 FailReason="customer_refused")
    return count


# --- groups -------------------------------------------------------------------------------------


def bump_version(chat: SimGroupChat) -> tuple[str, str]:
    last = chat.member_version
    chat.version_seq += 1
    chat.member_version = hashlib.md5(f"{chat.chat_id}:{chat.version_seq}".encode()).hexdigest()
    chat.save(update_fields=["version_seq", "member_version"])
    return last, chat.member_version


def create_groupchat(corp: SimCorp, owner: str, name: str = "") -> SimGroupChat:
    member = get_member(corp, owner)
    chat = SimGroupChat.objects.create(corp=corp, chat_id=ids.chat_id(), name=name, owner=member.userid,
                                       create_time=now(corp))
    SimGroupMember.objects.create(chat=chat, userid=member.userid, type=1, name=member.name, join_time=now(corp),
                                  join_scene=1)
    bump_version(chat)
    events.chat_event(corp, "create", chat.chat_id)
    return chat


def find_join_way(corp: SimCorp, config_id: str | None = None, state: str | None = None,
                  qr_code: str | None = None) -> SimJoinWay:
    qs = SimJoinWay.objects.filter(corp=corp, deleted=False)
    if config_id:
        way = qs.filter(config_id=config_id).first()
    elif qr_code:
        way = qs.filter(qr_code=qr_code).first()
    else:
        way = qs.filter(state=state or "").order_by("-id").first()
    if way is None:
        raise WorldError("no such join way", "not_found", "config_id", 404)
    return way


def _room_with_space(corp: SimCorp, way: SimJoinWay) -> SimGroupChat | None:
    for chat_id in way.chat_id_list:
        chat = SimGroupChat.objects.filter(corp=corp, chat_id=chat_id, dismissed=False).first()
        if chat and chat.members.count() < corp.group_size_limit:
            return chat
    return None


@transaction.atomic
def join_group(corp: SimCorp, shopper: SimShopper, config_id: str | None = None, state: str | None = None,
               qr_code: str | None = None) -> dict:
    way = SimJoinWay.objects.select_for_update().get(pk=find_join_way(corp, config_id, state, qr_code).pk)
    chat = _room_with_space(corp, way)
    if chat is None:
        if not way.auto_create_room or not way.chat_id_list:
            raise WorldError("all groups of this join way are full", "group_full", "config_id", 409)
        last = SimGroupChat.objects.get(chat_id=way.chat_id_list[-1])
        number = way.room_base_id + len(way.chat_id_list)
        chat = create_groupchat(corp, last.owner, f"{way.room_base_name or last.name}{number}")
        way.chat_id_list = [*way.chat_id_list, chat.chat_id]
        way.save(update_fields=["chat_id_list"])
    if chat.members.filter(userid=shopper.external_userid).exists():
        return {"chat_id": chat.chat_id}
    SimGroupMember.objects.create(chat=chat, userid=shopper.external_userid, type=2, unionid=shopper.unionid,
                                  name=shopper.name, join_time=now(corp), join_scene=3, state=way.state)
    last_ver, cur_ver = bump_version(chat)
    events.chat_event(corp, "update", chat.chat_id, UpdateDetail="add_member", JoinScene=3, MemChangeCnt=1,
                      MemChangeList=[shopper.external_userid], LastMemVer=last_ver, CurMemVer=cur_ver)
    return {"chat_id": chat.chat_id}


def leave_group(corp: SimCorp, shopper: SimShopper, chat_id: str) -> None:
    chat = SimGroupChat.objects.filter(corp=corp, chat_id=chat_id).first()
    if chat is None:
        raise WorldError("no such group", "not_found", "chat_id", 404)
    deleted, _ = chat.members.filter(userid=shopper.external_userid).delete()
    if not deleted:
        raise WorldError("not a member of this group", "not_member", "chat_id", 409)
    last_ver, cur_ver = bump_version(chat)
    events.chat_event(corp, "update", chat.chat_id, UpdateDetail="del_member", QuitScene=0, MemChangeCnt=1,
                      MemChangeList=[shopper.external_userid], LastMemVer=last_ver, CurMemVer=cur_ver)


def _live_chat(corp: SimCorp, chat_id: str) -> SimGroupChat:
    chat = SimGroupChat.objects.filter(corp=corp, chat_id=chat_id, dismissed=False).first()
    if chat is None:
        raise WorldError("no such group", "not_found", "chat_id", 404)
    return chat


def owner_adds_member(corp: SimCorp, chat_id: str, external_userid: str) -> None:
    """The owner invites a customer straight into the group (join_scene 1; the event's JoinScene 0)."""
    chat = _live_chat(corp, chat_id)
    shopper = get_shopper(corp, external_userid)
    if chat.members.filter(userid=shopper.external_userid).exists():
        raise WorldError("already a member of this group", "already_member", "external_userid", 409)
    if chat.members.count() >= corp.group_size_limit:
        raise WorldError("the group is full", "group_full", "chat_id", 409)
    SimGroupMember.objects.create(chat=chat, userid=shopper.external_userid, type=2, unionid=shopper.unionid,
                                  name=shopper.name, join_time=now(corp), join_scene=1, invitor=chat.owner)
    last_ver, cur_ver = bump_version(chat)
    events.chat_event(corp, "update", chat.chat_id, UpdateDetail="add_member", JoinScene=0, MemChangeCnt=1,
                      MemChangeList=[shopper.external_userid], LastMemVer=last_ver, CurMemVer=cur_ver)


def owner_removes_member(corp: SimCorp, chat_id: str, external_userid: str) -> None:
    """The owner removes a customer from the group (QuitScene 1)."""
    chat = _live_chat(corp, chat_id)
    deleted, _ = chat.members.filter(userid=external_userid or "", type=2).delete()
    if not deleted:
        raise WorldError("not a member of this group", "not_member", "external_userid", 409)
    last_ver, cur_ver = bump_version(chat)
    events.chat_event(corp, "update", chat.chat_id, UpdateDetail="del_member", QuitScene=1, MemChangeCnt=1,
                      MemChangeList=[external_userid], LastMemVer=last_ver, CurMemVer=cur_ver)


def owner_renames_group(corp: SimCorp, chat_id: str, name: str) -> None:
    chat = _live_chat(corp, chat_id)
    chat.name = name
    chat.save(update_fields=["name"])
    events.chat_event(corp, "update", chat.chat_id, UpdateDetail="change_name")


def dismiss_group(corp: SimCorp, chat_id: str) -> None:
    updated = SimGroupChat.objects.filter(corp=corp, chat_id=chat_id, dismissed=False).update(dismissed=True)
    if not updated:
        raise WorldError("no such group", "not_found", "chat_id", 404)
    events.chat_event(corp, "dismiss", chat_id)
