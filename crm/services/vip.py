"""VIP groups: reaching a VIP tier invites the customer to a VIP customer group through a group join way
(auto_create_room=1 rolls over to a new group when one is full). Loyalty calls `invite_to_vip_group`."""

from __future__ import annotations

import logging

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from crm import redisconn
from crm.errors import ApplicationError, NotFound
from crm.models.contacts import Contact, ContactEvent
from crm.models.groups import CustomerGroup, GroupJoinWay, VipInvite
from crm.services.contacts import follow_active_for
from crm.services.groups import groups_sync_all
from crm.services.tags import contact_tag_add, tag_ensure
from crm.services.timeline import timeline_add
from crm.wecom.client import get_client
from crm.wecom.errors import WeComError

logger = logging.getLogger(__name__)

VIP_STATE = "vip"
VIP_TAG_GROUP = "Tier"
VIP_TAG = "VIP"
VIP_INVITE_TEXT = "You are now a VIP! Scan the QR code to join our VIP group for members-only offers."
_JOIN_WAY_LOCK = "crm:vip:join-way-lock"


def invite_to_vip_group(contact_id: int) -> None:
    """Tag the contact VIP and invite them to the VIP group, once per contact (unique VipInvite row).

    Only database work happens here (the caller may hold a transaction); the WeCom calls run in a task after
    commit."""
    with transaction.atomic():
        contact = Contact.objects.filter(pk=contact_id).first()
        if contact is None:
            raise NotFound(f"Contact {contact_id} does not exist.", field="contact_id")
        contact_tag_add(contact, tag_ensure(VIP_TAG_GROUP, VIP_TAG), source="vip")
        invite, created = VipInvite.objects.get_or_create(contact=contact, state=VIP_STATE)
        if not created:
            return
        timeline_add(contact, ContactEvent.Kind.VIP_INVITED, data={"invite_id": invite.pk})

        from crm.tasks.contacts import send_vip_invite

        transaction.on_commit(lambda: send_vip_invite.delay(invite.pk))


def vip_groups() -> list[CustomerGroup]:
    """The VIP groups a join way points at. Staff create the first group in the WeCom client and an admin marks it
    VIP ("Mark as VIP" in the admin); the join way then rolls over to new rooms by itself."""
    groups = list(CustomerGroup.objects.filter(is_vip=True, status=CustomerGroup.Status.ACTIVE).order_by("id")[:5])
    if not groups:
        raise ApplicationError(
            "No VIP group yet: create a customer group in WeCom and mark it VIP in the admin.", code="no_vip_group"
        )
    return groups


def vip_join_way_ensure(owner_userid: str) -> GroupJoinWay:
    """The VIP join way (state "vip"), created once in WeCom under a Redis lock so workers never make two."""
    way = GroupJoinWay.objects.filter(state=VIP_STATE).first()
    if way:
        return way
    lock = redisconn.client(settings.REDIS_URL).lock(_JOIN_WAY_LOCK, timeout=60, blocking_timeout=60)
    with lock:
        way = GroupJoinWay.objects.filter(state=VIP_STATE).first()
        if way:
            return way
        groups = vip_groups()
        client = get_client()
        config_id = client.groupchat_add_join_way(
            scene=2,
            remark="VIP members",
            auto_create_room=1,
            room_base_name="VIP",
            room_base_id=len(groups) + 1,
            chat_id_list=[g.chat_id for g in groups],
            state=VIP_STATE,
        )["config_id"]
        qr_code = client.get_join_way(config_id).get("join_way", {}).get("qr_code", "")
        try:
            with transaction.atomic():
                way = GroupJoinWay.objects.create(state=VIP_STATE, config_id=config_id, qr_code=qr_code, is_vip=True)
                way.groups.set(groups)
        except IntegrityError:
            way = GroupJoinWay.objects.get(state=VIP_STATE)
        return way


def vip_invite_send(invite_id: int) -> str:
    """Send one VIP invite as a single-chat mass message from the contact's active follow staff.

    At most once: the row is claimed (SENDING) and committed before WeCom is called; a crash after the call
    leaves it SENDING, reported rather than re-sent (a second message to a customer is worse than none)."""
    with transaction.atomic():
        invite = (VipInvite.objects.select_for_update(of=("self",)).select_related("contact")
                  .filter(pk=invite_id).first())
        if invite is None or invite.status != VipInvite.Status.PENDING:
            return "nothing to send"
        follow = follow_active_for(invite.contact)
        if follow is None:
            invite.status = VipInvite.Status.FAILED
            invite.errmsg = "no active follow relation to send from"
            invite.save(update_fields=["status", "errmsg"])
            return "no sender"
        invite.sender = follow.staff
        invite.status = VipInvite.Status.SENDING
        invite.save(update_fields=["sender", "status"])

    try:
        way = vip_join_way_ensure(invite.sender.userid)
        result = get_client().add_msg_template(
            chat_type="single",
            external_userid=[invite.contact.external_userid],
            sender=invite.sender.userid,
            text={"content": VIP_INVITE_TEXT},
            attachments=[
                {
                    "msgtype": "link",
                    "link": {"title": "Join the VIP group", "picurl": way.qr_code, "desc": "Scan to join",
                             "url": way.qr_code},
                }
            ],
        )
    except (WeComError, ApplicationError) as exc:
        retryable = getattr(exc, "retryable", False)
        # Nothing was created in WeCom: a retryable failure goes back to PENDING for the task to retry.
        VipInvite.objects.filter(pk=invite.pk).update(
            status=VipInvite.Status.PENDING if retryable else VipInvite.Status.FAILED,
            errcode=getattr(exc, "errcode", None),
            errmsg=str(exc)[:512],
        )
        if retryable:
            raise
        return f"failed: {exc}"

    refused = invite.contact.external_userid in (result.get("fail_list") or [])
    with transaction.atomic():
        VipInvite.objects.filter(pk=invite.pk).update(
            join_way=way,
            msgid=result.get("msgid") or "",
            status=VipInvite.Status.FAILED if refused else VipInvite.Status.SENT,
            errmsg="in fail_list" if refused else "",
            sent_at=timezone.now(),
        )
    return "refused by WeCom" if refused else f"sent {result.get('msgid')}"


def vip_groups_refresh() -> dict:
    """Reconcile groups from WeCom (VIP flags follow join-way states seen in member lists)."""
    return groups_sync_all()
