"""Time-driven transitions: staff confirming mass messages and skip-verify adds, transfers taking over, red packets
refunding.

Run lazily by reads, by clock/advance and by the delivery thread; each transition is a conditional UPDATE,
so concurrent callers apply it once."""

from __future__ import annotations

import calendar
import datetime as dt
import json

from django.db import connection, transaction
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


def confirm_due(corp: SimCorp, message: SimMassMessage | None = None) -> None:
    """Senders tap send confirm_delay_seconds after creation (never by themselves when null). `message`: only its
    tasks (a read of one message settles what it shows: it waits for a confirmation of them already in progress in
    another process, rather than showing its recipients still unsent a moment before they are all sent)."""
    if corp.confirm_delay_seconds is None:
        return
    cutoff = now(corp) - dt.timedelta(seconds=corp.confirm_delay_seconds)
    pending = SimMassTask.objects.filter(status=0, message__corp=corp, message__cancelled=False,
                                         message__created_at__lte=cutoff)
    if message is not None:
        pending = pending.filter(message=message)
    for task in pending.select_related("message").order_by("id"):
        confirm_task(corp, task, wait=message is not None)


def confirm_message(corp: SimCorp, message: SimMassMessage, userids: list[str] | None = None) -> int:
    if message.cancelled:
        return 0  # cancelled before the senders tapped send
    tasks = message.tasks.filter(status=0).select_related("message")
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


def _claim_task(task: SimMassTask, moment: dt.datetime, *, wait: bool = False) -> bool:
    """Inside the confirmation's transaction: 0 -> 2 by a conditional UPDATE. On PostgreSQL a task another process
    is confirming right now is skipped (SKIP LOCKED) rather than waited for, so several processes settling the same
    backlog spread over it instead of queueing behind one another; `wait`: a read of the task's message waits for
    that confirmation to commit instead (then finds the task sent and claims nothing)."""
    if connection.vendor == "postgresql" and not list(
            SimMassTask.objects.select_for_update(skip_locked=not wait).filter(pk=task.pk, status=0)
            .values_list("pk")):
        return False
    return bool(SimMassTask.objects.filter(pk=task.pk, status=0).update(status=2, send_time=moment))


def confirm_task(corp: SimCorp, task: SimMassTask, *, wait: bool = False) -> int:
    """The sender taps send: each recipient ends as 1 sent, 2 not a friend or 3 over the receive quota."""
    moment = now(corp)
    with transaction.atomic():
        if not _claim_task(task, moment, wait=wait):
            return 0
        message = task.message
        since, quota = _quota_start(corp, moment)
        content = (message.text or {}).get("content", "")
        if message.chat_type == "group":
            for result in message.results.filter(userid=task.userid, status=0):
                result.status = _send_to_group(corp, message, result, since, quota, content, moment)
                result.send_time = moment if result.status == 1 else None
                result.save(update_fields=["status", "send_time"])
        else:
            _send_to_customers(corp, message, task.userid, since, quota, content, moment)
    return 1


# The set-based confirmation of one sender's customers (placeholders {..} are table names from the models; every
# value is a query parameter). `mine` = this task's recipients still at status 0.
_MINE = "{results}.message_id = %s AND {results}.userid = %s AND {results}.status = 0"
_CONFIRM_SQL = {
    # PostgreSQL only: lock the recipients (in id order: no deadlock), so that two messages confirmed at once never
    # both pass one shopper's quota.
    "lock": """SELECT s.id FROM {shoppers} s WHERE s.corp_id = %s AND s.external_userid IN
        (SELECT external_userid FROM {results} WHERE {mine}) ORDER BY s.id FOR UPDATE OF s""",
    "not_friend": """UPDATE {results} SET status = 2 WHERE {mine} AND NOT EXISTS (SELECT 1 FROM {shoppers} s
        JOIN {friends} f ON f.shopper_id = s.id JOIN {members} m ON m.id = f.member_id
        WHERE s.corp_id = %s AND s.external_userid = {results}.external_userid AND m.corp_id = %s
        AND m.userid = {results}.userid AND f.member_deleted = %s AND f.customer_deleted = %s AND f.confirmed = %s)""",
    "over_quota": """UPDATE {results} SET status = 3 WHERE {mine} AND (SELECT count(*) FROM {inbox} i
        JOIN {shoppers} s ON s.id = i.shopper_id WHERE s.corp_id = %s
        AND s.external_userid = {results}.external_userid AND i.kind = 'mass' AND i.received_at >= %s) >= %s""",
    "deliver": """INSERT INTO {inbox} (shopper_id, kind, from_userid, text, attachments, ref, received_at)
        SELECT s.id, 'mass', r.userid, %s, %s{jsonb}, %s, %s FROM {results} r
        JOIN {shoppers} s ON s.external_userid = r.external_userid AND s.corp_id = %s
        WHERE r.message_id = %s AND r.userid = %s AND r.status = 0""",
    "sent": "UPDATE {results} SET status = 1, send_time = %s WHERE {mine}",
}


def _confirm_sql(name: str) -> str:
    qn = connection.ops.quote_name
    tables = {"results": qn(SimMassResult._meta.db_table), "shoppers": qn(SimShopper._meta.db_table),
              "friends": qn(SimFriendship._meta.db_table), "members": qn(SimMember._meta.db_table),
              "inbox": qn(SimInboxMessage._meta.db_table),
              "jsonb": "::jsonb" if connection.vendor == "postgresql" else ""}
    tables["mine"] = _MINE.format(**tables)
    return _CONFIRM_SQL[name].format(**tables)


def _send_to_customers(corp: SimCorp, message: SimMassMessage, userid: str, since: dt.datetime, quota: int,
                       content: str, moment: dt.datetime) -> None:
    """One sender's recipients, set-based (a task holds up to 10,000): not a friend (2), over the receive quota
    counted per shopper in China time (3), else delivered to the inbox (1). Five statements, whatever the size."""
    at = connection.ops.adapt_datetimefield_value(moment)
    start = connection.ops.adapt_datetimefield_value(since)
    key = [message.pk, userid]
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(_confirm_sql("lock"), [corp.pk, *key])
        cursor.execute(_confirm_sql("not_friend"), [*key, corp.pk, corp.pk, False, False, True])
        cursor.execute(_confirm_sql("over_quota"), [*key, corp.pk, start, quota])
        cursor.execute(_confirm_sql("deliver"), [content, json.dumps(message.attachments or []), message.msgid, at,
                                                 corp.pk, *key])
        cursor.execute(_confirm_sql("sent"), [at, *key])


def _send_to_group(corp, message, result, since, quota, content, moment) -> int:
    chat = SimGroupChat.objects.filter(corp=corp, chat_id=result.chat_id, dismissed=False).first()
    if chat is None:
        return 2
    received = SimMassResult.objects.filter(chat_id__gt="", chat_id=chat.chat_id, status=1,  # the partial index
                                            send_time__gte=since).count()
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
