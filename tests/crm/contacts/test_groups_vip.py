"""Customer groups kept true by change_external_chat callbacks, and the VIP invite, over real HTTP + worker."""

from __future__ import annotations

import pytest

from crm.models import CallbackEvent, Contact, ContactTag
from crm.models.contacts import ContactEvent
from crm.models.groups import CustomerGroup, GroupJoinWay, GroupMember, VipInvite
from crm.services import callback_routing
from crm.services.channels import channel_create
from crm.services.groups import group_mark_vip, group_sync
from crm.services.vip import invite_to_vip_group
from crm.wecom.client import get_client
from tests.conftest import wait_for

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.worker]


def _add_contact(sim, name: str, state: str = "store-1") -> Contact:
    eid = sim.shopper(name)
    sim.scan(eid, state)
    return wait_for(lambda: Contact.objects.filter(external_userid=eid).first(), timeout=30, message="contact")


def _vip_group(sim, owner: str) -> CustomerGroup:
    """What staff do before the first invite: create a group in the WeCom client; an admin marks it VIP."""
    chat_id = sim.post("groupchats", {"owner": owner, "name": "VIP 1"})["chat_id"]
    group_sync(chat_id)
    return group_mark_vip(CustomerGroup.objects.get(chat_id=chat_id))


def test_group_membership_follows_callbacks(staffed, celery_worker, settings):
    sim = staffed
    channel_create(name="Store", state="store-1", staff_userids=["alice"])
    contact = _add_contact(sim, "Mei")
    chat_id = sim.post("groupchats", {"owner": "alice", "name": "Fans"})["chat_id"]
    group = wait_for(lambda: CustomerGroup.objects.filter(chat_id=chat_id).first(), timeout=30, message="group")
    assert group.name == "Fans" and group.owner.userid == "alice"
    assert group.members.get(member_id="alice").type == GroupMember.Type.STAFF

    get_client().groupchat_add_join_way(scene=2, chat_id_list=[chat_id], state="fans-qr")
    sim.post(f"shoppers/{contact.external_userid}/join_group", {"state": "fans-qr"})
    member = wait_for(
        lambda: GroupMember.objects.filter(group=group, member_id=contact.external_userid).first(),
        timeout=30, message="member recorded",
    )
    assert member.contact == contact and member.join_scene == 3 and member.join_state == "fans-qr"
    assert member.left_at is None
    join_event = wait_for(
        lambda: CallbackEvent.objects.filter(
            payload__ChatId=chat_id, payload__UpdateDetail="add_member", status="applied"
        ).first(),
        message="add_member processed",
    )
    assert contact.events.filter(kind=ContactEvent.Kind.JOINED_GROUP).count() == 1

    sim.post(f"shoppers/{contact.external_userid}/leave_group", {"chat_id": chat_id})
    wait_for(lambda: GroupMember.objects.get(pk=member.pk).left_at is not None, timeout=30, message="left")
    assert GroupMember.objects.get(pk=member.pk).quit_scene == 0
    group.refresh_from_db()
    version_after_leave = group.member_version

    # The old add_member event arriving late (out of order) changes nothing: handlers re-read WeCom.
    settings.CELERY_TASK_ALWAYS_EAGER = True
    callback_routing.apply_event(dict(join_event.payload))
    assert GroupMember.objects.get(pk=member.pk).left_at is not None
    group.refresh_from_db()
    assert group.member_version == version_after_leave
    assert contact.events.filter(kind=ContactEvent.Kind.JOINED_GROUP).count() == 1
    assert contact.events.filter(kind=ContactEvent.Kind.LEFT_GROUP).count() == 1

    sim.post(f"groupchats/{chat_id}/dismiss")
    wait_for(lambda: CustomerGroup.objects.get(pk=group.pk).status == "dismissed", timeout=30, message="dismissed")
    assert not GroupMember.objects.filter(group=group, left_at__isnull=True).exists()
    assert GroupMember.objects.filter(group=group).count() == 2  # history kept


def test_vip_invite_then_join_through_join_way(staffed, celery_worker):
    sim = staffed
    channel_create(name="Store", state="store-1", staff_userids=["bob"])
    contact = _add_contact(sim, "Fang")
    _vip_group(sim, "bob")

    invite_to_vip_group(contact.id)
    invite = wait_for(
        lambda: VipInvite.objects.filter(contact=contact).exclude(status__in=["pending", "sending"]).first(),
        timeout=30, message="invite sent",
    )
    assert invite.status == VipInvite.Status.SENT, invite.errmsg
    assert invite.msgid and invite.sender.userid == "bob"
    way = GroupJoinWay.objects.get(state="vip")
    assert way.is_vip and way.qr_code and way.groups.filter(is_vip=True).exists()
    assert ContactTag.objects.filter(contact=contact, tag__name="VIP", tag__group__name="Tier").exists()

    sim.post(f"groupmsg/{invite.msgid}/confirm")
    inbox = sim.inbox(contact.external_userid)
    invites = [m for m in inbox if any(a.get("link", {}).get("url") == way.qr_code for a in m["attachments"])]
    assert len(invites) == 1

    # Reaching VIP again (tier re-evaluated) sends nothing more.
    invite_to_vip_group(contact.id)
    assert VipInvite.objects.filter(contact=contact).count() == 1

    # The customer scans the group QR from the message.
    chat_id = sim.post(f"shoppers/{contact.external_userid}/join_group", {"qr_code": way.qr_code})["chat_id"]
    member = wait_for(
        lambda: GroupMember.objects.filter(group__chat_id=chat_id, contact=contact, left_at__isnull=True).first(),
        timeout=30, message="VIP member recorded",
    )
    assert member.group.is_vip and member.join_state == "vip"
    wait_for(lambda: VipInvite.objects.get(pk=invite.pk).status == VipInvite.Status.JOINED, message="joined")
    kinds = set(contact.events.values_list("kind", flat=True))
    assert {ContactEvent.Kind.TAGGED, ContactEvent.Kind.VIP_INVITED, ContactEvent.Kind.JOINED_GROUP} <= kinds
    assert len([m for m in sim.inbox(contact.external_userid) if m["kind"] != "welcome"]) == 1


def test_without_a_vip_group_the_invite_fails_with_the_reason(staffed, celery_worker):
    sim = staffed
    channel_create(name="Store", state="store-1", staff_userids=["alice"])
    contact = _add_contact(sim, "Lei")
    invite_to_vip_group(contact.id)
    invite = wait_for(lambda: VipInvite.objects.filter(contact=contact, status="failed").first(), timeout=30,
                      message="invite failed")
    assert "No VIP group yet" in invite.errmsg
    assert not GroupJoinWay.objects.exists()


def test_vip_group_rolls_over_when_full(staffed, celery_worker):
    sim = staffed
    sim.call("PATCH", "corp", {"group_size_limit": 2})
    channel_create(name="Store", state="store-1", staff_userids=["alice"])
    first, second = _add_contact(sim, "A"), _add_contact(sim, "B")
    _vip_group(sim, "alice")
    for c in (first, second):
        invite_to_vip_group(c.id)
    wait_for(lambda: VipInvite.objects.filter(status="sent").count() == 2, timeout=30, message="invites sent")
    way = GroupJoinWay.objects.get(state="vip")
    chats = {sim.post(f"shoppers/{c.external_userid}/join_group", {"qr_code": way.qr_code})["chat_id"]
             for c in (first, second)}
    assert len(chats) == 2  # owner + A fill the first group; B lands in an auto-created one
    wait_for(lambda: CustomerGroup.objects.filter(is_vip=True, chat_id__in=chats).count() == 2, timeout=30,
             message="both VIP groups known")
    wait_for(lambda: VipInvite.objects.filter(status="joined").count() == 2, timeout=30, message="both joined")
