"""Time-driven transitions: staff confirming mass messages and skip-verify adds, transfers taking over, red packets
refunding.

Run lazily by reads, by clock/advance and by the delivery thread; each transition is a conditional UPDATE,
so concurrent callers apply it once."""

from __future__ import annotations

import calendar
import datetime as dt

from django.db import transaction
from django.db.models import F

from wecom_sim import events
from wecom_sim.corp import now
from wecom_sim.models import (
    SimCorp,
    SimFriendship,
    SimGroupChat,
    SimInboxMessage,
    SimMassMessage,
    SimMassResult,
    SimMassTask,
    SimMember,
    SimRedPack,
    SimShopper,
    SimTransfer,
)
from wecom_sim.world import confirm_add, deliver_to_inbox, friend_count


def settle(corp: SimCorp) -> None:
    confirm_due(corp)
    confirm_adds_due(corp)
    settle_transfers(corp)
    settle_redpacks(corp)


# --- mass messages ------------------------------------------------------------------------------


def confirm_due(corp: SimCorp) -> None:
    if corp.confirm_delay_seconds is None:
        return
    cutoff = now(corp) - dt.timedelta(seconds=corp.confirm_delay_seconds)
    pending = SimMassTask.objects.filter(status=0, message__corp=corp, message__cancelled=False,
                                         message__created_at__lte=cutoff).select_related("message")
    for task in pending:
        confirm_task(corp, task)


def confirm_message(corp: SimCorp, message: SimMassMessage, userids: list[str] | None = None) -> int:
    if message.cancelled:
        return 0  # cancelled before the senders tapped send
    tasks = message.tasks.filter(status=0)
    if userids:
        tasks = tasks.filter(userid__in=userids)
    return sum(confirm_task(corp, task) for task in tasks)


def _quota_start(corp: SimCorp, moment: dt.datetime) -> tuple[dt.datetime, int]:
    local = moment.astimezone(dt.timezone(dt.timedelta(hours=8)))  # WeCom counts in China time
    day = local.replace(hour=0, minute=0, second=0, microsecond=0)
    if corp.receive_quota == "day1":
        return day, 1
    if corp.receive_quota == "week7":
        return day - dt.timedelta(days=day.weekday()), 7
    return day.replace(day=1), calendar.monthrange(local.year, local.month)[1]


def confirm_task(corp: SimCorp, task: SimMassTask) -> int:
    """The sender taps send: each recipient ends as 1 sent, 2 not a friend or 3 over the receive quota."""
    moment = now(corp)
    with transaction.atomic():
        if not SimMassTask.objects.filter(pk=task.pk, status=0).update(status=2, send_time=moment):
            return 0
        message = task.message
        since, quota = _quota_start(corp, moment)
        content = (message.text or {}).get("content", "")
        for result in message.results.filter(userid=task.userid, status=0):
            if message.chat_type == "group":
                result.status = _send_to_group(corp, message, result, since, quota, content, moment)
            else:
                result.status = _send_to_customer(corp, message, result, since, quota, content)
            result.send_time = moment if result.status == 1 else None
            result.save(update_fields=["status", "send_time"])
    return 1


def _send_to_customer(corp, message, result, since, quota, content) -> int:
    shopper = SimShopper.objects.filter(corp=corp, external_userid=result.external_userid).first()
    friend = SimFriendship.objects.filter(member__corp=corp, member__userid=result.userid, shopper=shopper,
                                          member_deleted=False, customer_deleted=False,
                                          confirmed=True).exists()
    if shopper is None or not friend:
        return 2
    received = SimInboxMessage.objects.filter(shopper=shopper, kind="mass", received_at__gte=since).count()
    if received >= quota:
        return 3
    deliver_to_inbox(shopper, "mass", result.userid, content, message.attachments, message.msgid, corp)
    return 1


def _send_to_group(corp, message, result, since, quota, content, moment) -> int:
    chat = SimGroupChat.objects.filter(corp=corp, chat_id=result.chat_id, dismissed=False).first()
    if chat is None:
        return 2
    received = SimMassResult.objects.filter(chat_id=chat.chat_id, status=1, send_time__gte=since).count()
    if received >= quota:
        return 3
    for member in chat.members.filter(type=2):
        shopper = SimShopper.objects.filter(corp=corp, external_userid=member.userid).first()
        if shopper:
            deliver_to_inbox(shopper, "group", result.userid, content, message.attachments, message.msgid, corp)
    return 1


# --- skip-verify (half) adds ---------------------------------------------------------------------


def confirm_adds_due(corp: SimCorp) -> None:
    """Members confirm half adds add_confirm_seconds after the customer added (never by themselves when null)."""
    if corp.add_confirm_seconds is None:
        return
    cutoff = now(corp) - dt.timedelta(seconds=corp.add_confirm_seconds)
    pending = SimFriendship.objects.filter(member__corp=corp, confirmed=False, member_deleted=False,
                                           createtime__lte=cutoff).select_related("member", "shopper")
    for friendship in pending:
        confirm_add(corp, friendship)


# --- transfers ----------------------------------------------------------------------------------


def settle_transfers(corp: SimCorp) -> None:
    for transfer in SimTransfer.objects.filter(corp=corp, status=2, takeover_time__lte=now(corp)):
        take_over(corp, transfer)


def take_over(corp: SimCorp, transfer: SimTransfer) -> None:
    takeover = SimMember.objects.filter(corp=corp, userid=transfer.takeover_userid).first()
    shopper = SimShopper.objects.filter(corp=corp, external_userid=transfer.external_userid).first()
    if takeover is None or shopper is None:
        SimTransfer.objects.filter(pk=transfer.pk, status=2).update(status=3)
        return
    if friend_count(takeover) >= corp.friend_limit:
        if SimTransfer.objects.filter(pk=transfer.pk, status=2).update(status=4):
            events.contact_event(corp, "transfer_fail", takeover.userid, shopper.external_userid,
                                 FailReason="customer_limit_exceed")
        return
    if not SimTransfer.objects.filter(pk=transfer.pk, status=2).update(status=1):
        return
    old = SimFriendship.objects.filter(member__corp=corp, member__userid=transfer.handover_userid,
                                       shopper=shopper).first()
    existing = SimFriendship.objects.filter(member=takeover, shopper=shopper).first()
    already_friends = existing is not None and not existing.member_deleted
    SimFriendship.objects.update_or_create(
        member=takeover, shopper=shopper,
        defaults={"member_deleted": False, "customer_deleted": False, "confirmed": True, "createtime": now(corp),
                  "add_way": 201 if transfer.kind == "onjob" else 202, "oper_userid": transfer.handover_userid,
                  "state": old.state if old else "", "tag_ids": old.tag_ids if old else [],
                  "remark": old.remark if old else "", "description": old.description if old else ""},
    )
    if old is not None:
        SimFriendship.objects.filter(pk=old.pk).update(member_deleted=True)
        if transfer.kind == "onjob":
            events.contact_event(corp, "del_external_contact", transfer.handover_userid, shopper.external_userid,
                                 Source="DELETE_BY_TRANSFER")
    if not already_friends:
        events.contact_event(corp, "add_external_contact", takeover.userid, shopper.external_userid, State="",
                             WelcomeCode=None)


# --- red packets --------------------------------------------------------------------------------

REFUNDING_SECONDS = 60  # RFUND_ING for a minute before REFUND


def settle_redpacks(corp: SimCorp) -> None:
    moment = now(corp)
    expired = moment - dt.timedelta(seconds=corp.redpack_refund_seconds)
    SimRedPack.objects.filter(status="SENT", send_time__lte=expired).update(status="RFUND_ING")
    done = expired - dt.timedelta(seconds=REFUNDING_SECONDS)
    for pack in SimRedPack.objects.filter(status="RFUND_ING", send_time__lte=done):
        if SimRedPack.objects.filter(pk=pack.pk, status="RFUND_ING").update(status="REFUND", refund_time=moment):
            refund = F("merchant_balance_fen") + pack.total_amount
            SimCorp.objects.filter(pk=corp.pk).update(merchant_balance_fen=refund)
