"""Customer groups, kept true by change_external_chat callbacks: every event re-reads groupchat/get and applies the
whole member list, so duplicates and out-of-order events converge on WeCom's state."""

from __future__ import annotations

import logging
from datetime import datetime

from django.db import transaction
from django.utils import timezone

from crm.models.contacts import Contact, ContactEvent
from crm.models.groups import CustomerGroup, GroupJoinWay, GroupMember, VipInvite
from crm.services.erasure import erased_external_userids
from crm.services.staff import staff_get_or_create
from crm.services.timeline import from_wecom_ts, timeline_add
from crm.wecom.client import get_client
from crm.wecom.errors import WeComError

logger = logging.getLogger(__name__)

# groupchat/get answers these for a chat that is not (or no longer) a customer group we can see.
GROUP_GONE_ERRCODES = frozenset({90501, 90509, 40050, 49004})


def group_apply(group_chat: dict, *, quit_scene: int | None = None, occurred_at: datetime | None = None) -> str:
    """Apply one groupchat/get `group_chat` object: the group, members who joined, members who left."""
    now = occurred_at or timezone.now()
    chat_id = group_chat["chat_id"]
    with transaction.atomic():
        group = CustomerGroup.objects.select_for_update().filter(chat_id=chat_id).first()
        if group is None:
            group, _ = CustomerGroup.objects.get_or_create(chat_id=chat_id)
            group = CustomerGroup.objects.select_for_update().get(pk=group.pk)
        owner = staff_get_or_create(group_chat["owner"]) if group_chat.get("owner") else None
        group.name = (group_chat.get("name") or "")[:128]
        group.owner = owner
        group.notice = group_chat.get("notice") or ""
        group.member_version = str(group_chat.get("member_version") or "")
        group.group_created_at = from_wecom_ts(group_chat.get("create_time"))
        group.status = CustomerGroup.Status.ACTIVE
        group.synced_at = timezone.now()

        listed = {m["userid"]: m for m in group_chat.get("member_list") or [] if m.get("userid")}
        existing = {m.member_id: m for m in group.members.all()}
        vip_states = set(GroupJoinWay.objects.filter(is_vip=True).values_list("state", flat=True))
        contacts = {c.external_userid: c for c in Contact.objects.filter(external_userid__in=list(listed))}
        erased = erased_external_userids(listed)  # an erased person's name is not taken on again
        joined = left = 0
        for member_id, m in listed.items():
            contact = contacts.get(member_id) if int(m.get("type") or 2) == GroupMember.Type.EXTERNAL else None
            member = existing.get(member_id)
            was_present = member is not None and member.left_at is None
            if member is None:
                member = GroupMember(group=group, member_id=member_id)
            member.contact = contact or member.contact
            member.type = int(m.get("type") or 2)
            member.name = "" if member_id in erased else (m.get("name") or member.name or "")[:128]
            member.join_scene = int(m.get("join_scene") or 0)
            member.join_state = (m.get("state") or "")[:64]
            member.joined_at = from_wecom_ts(m.get("join_time")) or member.joined_at or now
            member.left_at = None
            member.quit_scene = None
            member.save()
            if member.join_state and member.join_state in vip_states and not group.is_vip:
                group.is_vip = True  # a group the VIP join way rolled over into is a VIP group too
            if not was_present:
                joined += 1
                if member.contact_id:
                    timeline_add(
                        member.contact,
                        ContactEvent.Kind.JOINED_GROUP,
                        data={"chat_id": chat_id, "name": group.name, "join_scene": member.join_scene,
                              "state": member.join_state},
                        occurred_at=member.joined_at,
                    )
                    if member.join_state in vip_states:
                        VipInvite.objects.filter(contact=member.contact, state=member.join_state).exclude(
                            status=VipInvite.Status.JOINED
                        ).update(status=VipInvite.Status.JOINED, joined_at=member.joined_at)
        for member_id, member in existing.items():
            if member_id not in listed and member.left_at is None:
                member.left_at = now
                member.quit_scene = quit_scene
                member.save(update_fields=["left_at", "quit_scene"])
                left += 1
                if member.contact_id:
                    timeline_add(
                        member.contact,
                        ContactEvent.Kind.LEFT_GROUP,
                        data={"chat_id": chat_id, "name": group.name, "quit_scene": quit_scene},
                        occurred_at=now,
                    )
        group.save()
        if group.is_vip:
            for way in GroupJoinWay.objects.filter(is_vip=True):
                way.groups.add(group)
    return f"group {chat_id}: +{joined} -{left}"


def group_dismiss(chat_id: str, *, occurred_at: datetime | None = None) -> str:
    """The group was dismissed: keep it and its member history, mark everyone as left."""
    now = occurred_at or timezone.now()
    with transaction.atomic():
        group = CustomerGroup.objects.select_for_update().filter(chat_id=chat_id).first()
        if group is None:
            return "unknown group"
        if group.status == CustomerGroup.Status.DISMISSED:
            return "already dismissed"
        group.status = CustomerGroup.Status.DISMISSED
        group.save(update_fields=["status", "updated_at"])
        for member in group.members.filter(left_at__isnull=True).select_related("contact"):
            member.left_at = now
            member.save(update_fields=["left_at"])
            if member.contact_id:
                timeline_add(member.contact, ContactEvent.Kind.LEFT_GROUP,
                             data={"chat_id": chat_id, "name": group.name, "dismissed": True}, occurred_at=now)
    return f"group {chat_id} dismissed"


def group_sync(chat_id: str, *, quit_scene: int | None = None, occurred_at: datetime | None = None) -> str:
    """Re-read one group from WeCom and apply it (dismissed if WeCom no longer knows it)."""
    try:
        data = get_client().groupchat_get(chat_id, need_name=1)
    except WeComError as exc:
        if exc.errcode in GROUP_GONE_ERRCODES:
            return group_dismiss(chat_id, occurred_at=occurred_at)
        raise
    return group_apply(data["group_chat"], quit_scene=quit_scene, occurred_at=occurred_at)


def groups_sync_all() -> dict:
    """Re-read every customer group WeCom lists for us (used by reconciliation and VIP bootstrap), then every group
    we hold as active that it did not list: a dismissal whose callback was lost is found there (groupchat/get
    answers 90501), and a group WeCom lists only by owner (a resigned owner's) is re-read rather than assumed gone."""
    counts = {"groups": 0, "dismissed": 0}
    listed: set[str] = set()
    for row in get_client().iter_groupchat_list(status_filter=0):
        group_sync(row["chat_id"])
        listed.add(row["chat_id"])
        counts["groups"] += 1
    unlisted = CustomerGroup.objects.filter(status=CustomerGroup.Status.ACTIVE).exclude(chat_id__in=listed)
    for chat_id in list(unlisted.values_list("chat_id", flat=True)):
        if group_sync(chat_id).endswith(" dismissed"):
            counts["dismissed"] += 1
    return counts


def group_mark_vip(group: CustomerGroup, is_vip: bool = True) -> CustomerGroup:
    group.is_vip = is_vip
    group.save(update_fields=["is_vip", "updated_at"])
    return group
