"""Pushes: hand one MassMessage to WeCom (add_msg_template) exactly once, track its results, expire it.

The claim. Two attempts can run for one row at once: a Celery retry with a countdown and beat's re-queue of rows
that look stuck (`mass_messages_to_resend`), or a message redelivered after a worker died. Each attempt claims the
row with a compare-and-set, a conditional UPDATE whose row count is checked:
    UPDATE ... SET status='sending', claim_token=T, sending_at=now
    WHERE id=X AND (status='pending' OR (status='sending' AND claim_token=<the one read> AND sending_at < now-grace))
0 rows: another attempt holds it, and this one does nothing. Only the holder calls add_msg_template, and what it
stores afterwards is again conditioned on its token. The grace (MASS_SEND_GRACE_SECONDS) is longer than any
add_msg_template call with the client's own retries, so a live holder is never overtaken.

The crash window. A holder that dies between add_msg_template and storing its msgid (or whose call timed out)
leaves "sending": WeCom may or may not have created the task. The attempt that takes the row over after the grace
does not resend blindly: it looks the task up in get_groupmsg_list_v2 (since the row was made, same text, same
sender, recipients among the row's) and adopts its msgid; only when nothing is found is the row sent again. WeCom
has no idempotency key of its own, so this lookup (by the claim holder only) is what keeps the window closed.

Exclusions. Recipients were planned from customers consenting to marketing, but a lot can change before the send
(a 20:00 campaign planned at 19:59, a batch queued behind others, a paused run resumed days later). Right before
add_msg_template the batch is checked again, set-based: erased, consent withdrawn, contact deleted by the
customer, relation gone (the sender deleted the customer or left). Those rows become `excluded` with the reason,
and each contact's timeline gets a row, written in bulk.

Deadline. A created task waits for the sender to confirm in their WeCom client; after MASS_CONFIRM_DEADLINE_HOURS
(24) it is cancelled in WeCom, polled one last time, and what is still pending is `expired` (logged at WARNING).

Polling. A pass starting from the first page first asks get_groupmsg_task whether the sender has confirmed: until
then every result is still unsent, and that one call spares reading them all. get_groupmsg_send_result is read
page by page (1,000 rows); after each page its results are stored with
one UPDATE per status (PostgreSQL: UPDATE ... FROM (VALUES ...)) and the next cursor saved in the same
transaction, so a crash resumes from the page it was on. A message is polled by one pass at a time: a pass holds a
Redis lease on the message (SET NX EX, renewed after each page, released at the end; a dead worker's lease expires
after MASS_POLL_LEASE_SECONDS); another poll meanwhile (beat queues every created message each tick, whether or
not the last pass is done) returns at once instead of reading the same pages again. The first poll is queued
right after the task is created (MASS_FIRST_POLL_SECONDS, WeCom's dispatch delay), not at beat's next tick.
"""

from __future__ import annotations

import logging
import uuid
from collections import defaultdict
from datetime import UTC, datetime, timedelta

import redis
from django.conf import settings
from django.db import connection, transaction
from django.db.models import Exists, F, OuterRef, Q
from django.utils import timezone

from crm import redisconn
from crm.models import (
    Campaign,
    CampaignGroupRecipient,
    CampaignRecipient,
    CampaignRun,
    ConsentRecord,
    Contact,
    ContactEvent,
    CustomerGroup,
    FollowRelation,
    MassMessage,
    Staff,
)
from crm.services.consent import contacts_consenting
from crm.services.push_hooks import delivered_notify
from crm.services.timeline import timeline_add_many
from crm.wecom.client import get_client
from crm.wecom.errors import WeComError

logger = logging.getLogger(__name__)

M = MassMessage.Status
R = CampaignRecipient.Status
WECOM_STATUS = {1: R.DELIVERED, 2: R.NOT_FRIEND, 3: R.LIMIT_REACHED}
# WeCom answered and refused: the task was certainly not created, so the claim can be released at once.
NOT_CREATED_ERRCODES = frozenset({6000, 41096, 45009, 45033})
POLL_PAGE = 1000
INVALID_MEDIA_ID = 40007
_VALUES_UPDATE = (
    'UPDATE "{table}" AS r SET status = %s, sent_at = COALESCE(v.sent_at, r.sent_at), updated_at = %s '
    "FROM (VALUES {values}) AS v(target, sent_at) "
    'WHERE r.mass_message_id = %s AND r."{key}" = v.target AND r.status = %s'
)


class PushRetry(Exception):
    """The send or poll can succeed later (the task retries it, after `countdown` seconds when given)."""

    def __init__(self, message: str, countdown: float | None = None) -> None:
        super().__init__(message)
        self.countdown = countdown


def send_grace() -> timedelta:
    return timedelta(seconds=float(getattr(settings, "MASS_SEND_GRACE_SECONDS", 120)))


def confirm_deadline() -> timedelta:
    return timedelta(hours=float(getattr(settings, "MASS_CONFIRM_DEADLINE_HOURS", 24)))


def _recipients(message: MassMessage):
    table = CampaignGroupRecipient if message.chat_type == "group" else CampaignRecipient
    return table.objects.filter(mass_message_id=message.id)


def _key_field(message: MassMessage) -> str:
    return "chat_id" if message.chat_type == "group" else "external_userid"


# --- the body ------------------------------------------------------------------------------------------------


def _attachments(campaign: Campaign, *, force_upload: bool = False) -> list[dict]:
    from crm.services.campaigns import campaign_attachments  # campaigns imports this module's callers

    return campaign_attachments(campaign, force_upload=force_upload)


def _body(message: MassMessage, targets: list[str], *, force_upload: bool = False) -> dict:
    campaign = message.campaign
    body: dict = {"chat_type": message.chat_type or "single", "sender": message.sender.userid, "allow_select": False,
                  "text": {"content": message.text or campaign.text}}
    if body["chat_type"] == "group":
        body["chat_id_list"] = targets
    else:
        body["external_userid"] = targets
    attachments = _attachments(campaign, force_upload=force_upload)
    if attachments:
        body["attachments"] = attachments
    return body


def _pending_targets(message: MassMessage) -> list[str]:
    return list(_recipients(message).filter(status=R.PENDING).order_by("id").values_list(_key_field(message),
                                                                                        flat=True))


# --- exclusions at send time -----------------------------------------------------------------------------------


def _exclude(message: MassMessage) -> dict[str, int]:
    """Move this batch's pending recipients who may no longer be sent to `excluded` with the reason; counts."""
    if message.chat_type == "group":
        return _exclude_groups(message)
    sender = message.sender
    pending = CampaignRecipient.objects.filter(mass_message_id=message.id, status=R.PENDING)
    erased = ContactEvent.objects.filter(contact=OuterRef("contact_id"), kind=ContactEvent.Kind.DATA_RIGHTS,
                                         data__action="erase")
    consenting = contacts_consenting(ConsentRecord.Purpose.MARKETING, Contact.objects.filter(pk=OuterRef("contact_id")))
    follow = FollowRelation.objects.filter(contact=OuterRef("contact_id"), staff_id=message.sender_id)
    deleted_by_customer = follow.filter(deleted_by_customer_at__isnull=False)
    live_follow = follow.filter(deleted_by_staff_at__isnull=True, deleted_by_customer_at__isnull=True)
    staff_active = sender.status == Staff.Status.ACTIVE
    # Earlier reasons win: each UPDATE only sees rows still pending.
    rules = [
        (CampaignRecipient.Reason.ERASED, Q(Exists(erased))),
        (CampaignRecipient.Reason.CONSENT_WITHDRAWN, ~Q(Exists(consenting))),
        (CampaignRecipient.Reason.CONTACT_DELETED, Q(Exists(deleted_by_customer))),
        (CampaignRecipient.Reason.RELATION_GONE, Q() if not staff_active else ~Q(Exists(live_follow))),
    ]
    counts: dict[str, int] = {}
    with transaction.atomic():
        now = timezone.now()
        for reason, condition in rules:
            ids = list(pending.filter(condition).values_list("id", "contact_id"))
            if not ids:
                continue
            CampaignRecipient.objects.filter(id__in=[i for i, _ in ids], status=R.PENDING).update(
                status=R.EXCLUDED, reason=reason, updated_at=now
            )
            timeline_add_many([c for _, c in ids], ContactEvent.Kind.CAMPAIGN_EXCLUDED, occurred_at=now, data={
                "reason": reason, "campaign_id": message.campaign_id, "run_id": message.run_id,
                "mass_message_id": message.id, "sender": sender.userid,
            })
            counts[reason] = len(ids)
    if counts:
        logger.info("recipients excluded at send time", extra={"mass_message_id": message.id, "excluded": counts})
    return counts


def _exclude_groups(message: MassMessage) -> dict[str, int]:
    """A group dismissed, or no longer owned by the sender, cannot receive the sender's group message."""
    pending = CampaignGroupRecipient.objects.filter(mass_message_id=message.id, status=R.PENDING)
    live = CustomerGroup.objects.filter(pk=OuterRef("group_id"), status=CustomerGroup.Status.ACTIVE,
                                        owner_id=message.sender_id)
    condition = Q() if message.sender.status != Staff.Status.ACTIVE else ~Q(Exists(live))
    n = pending.filter(condition).update(status=R.EXCLUDED, reason=CampaignRecipient.Reason.RELATION_GONE,
                                         updated_at=timezone.now())
    return {CampaignRecipient.Reason.RELATION_GONE: n} if n else {}


# --- the claim -------------------------------------------------------------------------------------------------


def _claim(message: MassMessage) -> tuple[str, bool] | None:
    """Take the row by compare-and-set: (token, recovering), or None when another attempt holds it."""
    token = uuid.uuid4().hex
    now = timezone.now()
    rows = MassMessage.objects.filter(id=message.id)
    claimed = {"status": M.SENDING, "claim_token": token, "sending_at": now, "attempts": F("attempts") + 1}
    if message.status == M.PENDING:
        if rows.filter(status=M.PENDING).update(**claimed) == 1:
            return token, False
        return None
    # A "sending" row: its holder died, or its call timed out, more than the grace ago. The token read with the
    # row is part of the condition: of two attempts taking the same stale row over, one wins.
    stale = rows.filter(status=M.SENDING, claim_token=message.claim_token, sending_at__lt=now - send_grace())
    if stale.update(**claimed) == 1:
        return token, True
    return None


def _release(message: MassMessage, token: str, *, to_pending: bool) -> bool:
    """Give the claim back after an attempt that certainly created nothing: pending again, or (while recovering
    a crashed attempt) stale again so the next attempt can take it over at once."""
    fields = {"status": M.PENDING, "claim_token": ""} if to_pending else {
        "sending_at": timezone.now() - send_grace() - timedelta(seconds=1)}
    return MassMessage.objects.filter(id=message.id, claim_token=token, status=M.SENDING).update(**fields) == 1


def _finish_run(message: MassMessage) -> None:
    from crm.services import campaign_runs

    if message.run_id:
        campaign_runs.run_finish_if_complete(message.run_id)
    else:
        campaign_runs.campaign_finish_if_complete(message.campaign_id)


def _blocked(message: MassMessage) -> str:
    """"cancelled" / "paused" when the message must not be sent now, else ""."""
    campaign, run = message.campaign, message.run
    if campaign.status in (Campaign.Status.CANCELLED, Campaign.Status.DONE) or (
            run is not None and run.status == CampaignRun.Status.CANCELLED):
        return "cancelled"
    if (run is not None and run.status == CampaignRun.Status.PAUSED) or (
            run is None and campaign.status == Campaign.Status.PAUSED):
        return "paused"
    return ""


def _cancel_unsent(message: MassMessage, token: str | None = None) -> None:
    rows = MassMessage.objects.filter(id=message.id)
    rows = rows.filter(claim_token=token, status=M.SENDING) if token else rows.filter(status=M.PENDING)
    with transaction.atomic():
        if rows.update(status=M.CANCELLED, claim_token=""):
            _recipients(message).filter(status=R.PENDING).update(status=R.CANCELLED, updated_at=timezone.now())


# --- sending -----------------------------------------------------------------------------------------------------


def _find_created_task(message: MassMessage) -> tuple[str, list[str]] | None:
    """(msgid, fail_list) of a task WeCom created for this row in a crashed attempt, if it can be found."""
    client = get_client()
    now = timezone.now()
    # Since the row was made (clamped to WeCom's one-month window), not since the last sending_at: several attempts
    # may have crashed in a row.
    since = max(message.created_at - timedelta(seconds=5), now - timedelta(days=30))
    text = message.text or message.campaign.text
    known = set(MassMessage.objects.filter(created_task_at__gte=since).exclude(msgid=None)
                .values_list("msgid", flat=True))
    key = _key_field(message)
    wanted = set(_recipients(message).values_list(key, flat=True))
    chat_type = message.chat_type or "single"
    for item in client.iter_groupmsg_list_v2(chat_type=chat_type, start_time=int(since.timestamp()),
                                             end_time=int(now.timestamp()) + 5, filter_type=0):
        msgid = item.get("msgid")
        if not msgid or msgid in known or (item.get("text") or {}).get("content") != text:
            continue
        senders = {t.get("userid", "").lower() for t in client.iter_groupmsg_task(msgid)}
        if message.sender.userid.lower() not in senders:
            continue
        got = {r.get(key) for r in client.iter_groupmsg_send_result(msgid, message.sender.userid)}
        if got and got <= wanted:
            return msgid, sorted(wanted - got)
    return None


def _store_created(message: MassMessage, token: str, msgid: str, fail_list: list[str]) -> bool:
    now = timezone.now()
    with transaction.atomic():
        stored = MassMessage.objects.filter(id=message.id, claim_token=token, status=M.SENDING).update(
            msgid=msgid, fail_list=fail_list, status=M.CREATED, created_task_at=now,
            deadline_at=now + confirm_deadline(), last_error="", poll_cursor="",
        )
        if stored and fail_list:
            _recipients(message).filter(**{f"{_key_field(message)}__in": fail_list}, status=R.PENDING).update(
                status=R.REJECTED, updated_at=now)
    if not stored:
        # The grace was exceeded and another attempt took the row over: its lookup finds this msgid.
        logger.error("mass message claim lost before storing the msgid",
                     extra={"mass_message_id": message.id, "msgid": msgid})
        return False
    # A cancel that came while the call was in flight saw no msgid to cancel: do it now.
    if _blocked(MassMessage.objects.select_related("campaign", "run").get(id=message.id)) == "cancelled":
        mass_message_cancel(message.id)
    return True


def _add_msg_template(message: MassMessage, targets: list[str], body: dict) -> dict:
    try:
        return get_client().add_msg_template(**body)
    except WeComError as exc:
        if exc.errcode != INVALID_MEDIA_ID or message.campaign.attachment not in (
                Campaign.Attachment.IMAGE, Campaign.Attachment.MINIPROGRAM):
            raise
    # WeCom refused the stored media id (expired early, or another corp's): nothing was created, so the same
    # claim uploads the image again and sends once more.
    return get_client().add_msg_template(**_body(message, targets, force_upload=True))


def mass_message_send(message_id: int) -> str:
    """Create the WeCom task for one MassMessage; the resulting status ("held" when another attempt holds the
    claim, "paused" when its run is paused). Raises PushRetry when worth retrying."""
    message = MassMessage.objects.select_related("campaign", "run", "sender").filter(id=message_id).first()
    if message is None:
        return "missing"
    if message.status not in (M.PENDING, M.SENDING):
        return message.status
    blocked = _blocked(message)
    if blocked == "paused":
        return "paused"  # run_resume queues it again
    if blocked == "cancelled" and message.status == M.PENDING:
        _cancel_unsent(message)
        _finish_run(message)
        return M.CANCELLED
    claim = _claim(message)
    if claim is None:
        return "held"
    token, recovering = claim
    if recovering:
        try:
            found = _find_created_task(message)
        except WeComError as exc:
            _release(message, token, to_pending=False)
            raise PushRetry(f"recovery lookup failed: {exc}") from exc
        if found:
            logger.warning("adopted a task created by a crashed attempt",
                           extra={"mass_message_id": message.id, "msgid": found[0]})
            _store_created(message, token, found[0], found[1])
            return M.CREATED
    if blocked == "cancelled":
        _cancel_unsent(message, token)
        _finish_run(message)
        return M.CANCELLED
    _exclude(message)
    targets = _pending_targets(message)
    if not targets:
        MassMessage.objects.filter(id=message.id, claim_token=token).update(status=M.DONE, claim_token="")
        _finish_run(message)  # no poll will come for a message never sent
        return M.DONE
    try:
        body = _body(message, targets)  # may upload the image (media/upload): nothing is sent yet
    except WeComError as exc:
        _release(message, token, to_pending=not recovering)
        raise PushRetry(f"attachment upload failed: {exc}") from exc
    try:
        data = _add_msg_template(message, targets, body)
    except WeComError as exc:
        MassMessage.objects.filter(id=message.id).update(last_error=str(exc)[:512])
        if exc.retryable:
            if exc.errcode in NOT_CREATED_ERRCODES:
                _release(message, token, to_pending=not recovering)
                raise PushRetry(str(exc)) from exc
            # A timeout may still have created the task: left "sending", taken over (with the lookup) after the
            # grace, which is when this retry comes.
            raise PushRetry(str(exc), countdown=send_grace().total_seconds() + 5) from exc
        with transaction.atomic():
            if MassMessage.objects.filter(id=message.id, claim_token=token).update(status=M.FAILED):
                _recipients(message).filter(status=R.PENDING).update(status=R.REJECTED, updated_at=timezone.now())
        logger.warning("mass message refused by WeCom", extra={"mass_message_id": message.id,
                                                               "errcode": exc.errcode})
        _finish_run(message)
        return M.FAILED
    _store_created(message, token, str(data.get("msgid") or ""), list(data.get("fail_list") or []))
    return M.CREATED


# --- results -------------------------------------------------------------------------------------------------------


def _store_page(message: MassMessage, rows: list[dict], next_cursor: str) -> dict[str, int]:
    """One page of send results: one UPDATE per status, and the cursor, in one transaction."""
    key = _key_field(message)
    by_status: dict[str, list[tuple[str, datetime | None]]] = defaultdict(list)
    for row in rows:
        status = WECOM_STATUS.get(int(row.get("status") or 0))
        target = row.get(key)
        if status and target:
            stamp = row.get("send_time")
            by_status[status].append((target, datetime.fromtimestamp(int(stamp), tz=UTC) if stamp else None))
    counts: dict[str, int] = {}
    with transaction.atomic():
        for status, items in by_status.items():
            counts[status] = _bulk_result(message, status, items)
        MassMessage.objects.filter(id=message.id).update(poll_cursor=next_cursor, last_polled_at=timezone.now())
        if counts.get(R.DELIVERED) and message.chat_type != "group":
            # Delivery is the moment a campaign's coupon is granted (loyalty's hook): once this page is committed.
            campaign_id, run_id = message.campaign_id, message.run_id
            transaction.on_commit(lambda: delivered_notify(campaign_id, run_id))
    return counts


def _bulk_result(message: MassMessage, status: str, items: list[tuple[str, datetime | None]]) -> int:
    table = (CampaignGroupRecipient if message.chat_type == "group" else CampaignRecipient)._meta.db_table
    key = _key_field(message)
    now = timezone.now()
    if connection.vendor == "postgresql":
        values = ", ".join(["(%s, %s::timestamptz)"] * len(items))
        params: list = [status, now]
        for target, sent in items:
            params += [target, sent]
        params += [message.id, R.PENDING]
        # Table and column names come from the models, every value is a parameter.
        sql = _VALUES_UPDATE.format(table=table, key=key, values=values)
        with connection.cursor() as cursor:
            cursor.execute(sql, params)
            return cursor.rowcount
    # SQLite: one UPDATE per distinct send time (one sender confirms a task at one moment: usually one).
    model = CampaignGroupRecipient if message.chat_type == "group" else CampaignRecipient
    by_time: dict[datetime | None, list[str]] = defaultdict(list)
    for target, sent in items:
        by_time[sent].append(target)
    n = 0
    for sent, targets in by_time.items():
        fields = {"status": status, "updated_at": now}
        if sent is not None:
            fields["sent_at"] = sent
        n += model.objects.filter(mass_message_id=message.id, status=R.PENDING,
                                  **{f"{key}__in": targets}).update(**fields)
    return n


# --- the poll lease ----------------------------------------------------------------------------------------------

POLL_LEASE_PREFIX = "crm:mass-poll-lease:"
# Renew / release only a lease this pass still holds (it may have expired and been taken by another pass).
_RENEW_LUA = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('expire', KEYS[1], ARGV[2]) end return 0"
_RELEASE_LUA = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end return 0"
_lease_redis: tuple[str, redis.Redis] | None = None


def _leases() -> redis.Redis:
    global _lease_redis
    if _lease_redis is None or _lease_redis[0] != settings.REDIS_URL:
        client = redisconn.client(settings.REDIS_URL, socket_timeout=5, socket_connect_timeout=5)
        _lease_redis = (settings.REDIS_URL, client)
    return _lease_redis[1]


def poll_lease_seconds() -> int:
    # Longer than one page (read and stored); renewed after each page, so a long pass keeps it.
    return max(5, int(getattr(settings, "MASS_POLL_LEASE_SECONDS", 120)))


def first_poll_delay() -> float:
    """Seconds between creating a task and its first poll: WeCom answers 41063 (still dispatching) before."""
    return float(getattr(settings, "MASS_FIRST_POLL_SECONDS", 5.0))


def _poll_lease(message_id: int) -> str | None:
    token = uuid.uuid4().hex
    if _leases().set(f"{POLL_LEASE_PREFIX}{message_id}", token, nx=True, ex=poll_lease_seconds()):
        return token
    return None


def _renew_lease(message_id: int, token: str) -> bool:
    return bool(_leases().eval(_RENEW_LUA, 1, f"{POLL_LEASE_PREFIX}{message_id}", token, poll_lease_seconds()))


def _release_lease(message_id: int, token: str) -> None:
    _leases().eval(_RELEASE_LUA, 1, f"{POLL_LEASE_PREFIX}{message_id}", token)


def mass_message_poll(message_id: int, *, final: bool = False) -> dict:
    """Read the task's send results page by page from the stored cursor, storing each page in bulk.

    A pass ends at the last page, and the cursor goes back to the start: results change when the sender confirms,
    so the next poll reads them all again. The message is done once none of its recipients is pending.
    `final`: the last poll of a cancelled or expired task (any status but created is accepted); it does not wait
    for the lease (one per task, and what it reads must be stored before the task is closed).
    A poll while another pass holds the message's lease reads nothing and returns {}."""
    message = MassMessage.objects.select_related("sender").filter(id=message_id).first()
    if message is None or not message.msgid or (message.status != M.CREATED and not final):
        return {}
    if final:
        return _poll_pass(message, final=True)
    token = _poll_lease(message.id)
    if token is None:
        logger.debug("mass message poll skipped: another pass holds it", extra={"mass_message_id": message.id})
        return {}
    try:
        # Re-read under the lease: the pass that held it may have moved the cursor or finished the message.
        message = MassMessage.objects.select_related("sender").get(id=message.id)
        if message.status != M.CREATED:
            return {}
        return _poll_pass(message, lease=token)
    finally:
        _release_lease(message.id, token)


def _sender_confirmed(client, message: MassMessage) -> bool:
    """Has the sender acted on the task (get_groupmsg_task: status 0 = not sent yet)? Until then its send results
    are all still unsent, so one call here spares reading them page by page (10 pages for 10,000 recipients)."""
    userid = message.sender.userid.lower()
    for task in client.iter_groupmsg_task(message.msgid):
        if (task.get("userid") or "").lower() == userid:
            return int(task.get("status") or 0) != 0
    return True  # not listed: read the results and let them say


def _poll_pass(message: MassMessage, *, final: bool = False, lease: str | None = None) -> dict:
    client = get_client()
    counts: dict[str, int] = defaultdict(int)
    cursor = message.poll_cursor or None
    if not final and cursor is None:
        try:
            if not _sender_confirmed(client, message):
                MassMessage.objects.filter(id=message.id).update(last_polled_at=timezone.now())
                return {}
        except WeComError as exc:
            if exc.retryable:  # 41063: still being dispatched; or a transient failure: the next poll looks again
                return {}
            raise
    seen: set[str] = set()
    while True:
        try:
            page = client.get_groupmsg_send_result(message.msgid, message.sender.userid, cursor=cursor,
                                                   limit=POLL_PAGE)
        except WeComError as exc:
            if exc.retryable:  # 41063: still being dispatched; or a transient failure: the next poll resumes
                return dict(counts)
            raise
        next_cursor = page.get("next_cursor") or ""
        if next_cursor in seen:
            next_cursor = ""
        for status, n in _store_page(message, page.get("send_list") or [], next_cursor).items():
            counts[status] += n
        if not next_cursor:
            break
        if lease is not None and not _renew_lease(message.id, lease):
            # The lease expired (a stalled pass) and another pass may hold it: it resumes from the stored cursor.
            logger.warning("mass message poll lease lost", extra={"mass_message_id": message.id})
            return dict(counts)
        seen.add(next_cursor)
        cursor = next_cursor
    done = False
    if message.status == M.CREATED and not _recipients(message).filter(status=R.PENDING).exists():
        done = bool(MassMessage.objects.filter(id=message.id, status=M.CREATED).update(status=M.DONE))
    if done:
        _finish_run(message)
    return dict(counts)


def mass_messages_to_poll(limit: int = 5000) -> list[int]:
    # Never polled first, then the longest unpolled (a large backlog is worked through fairly).
    order = (F("last_polled_at").asc(nulls_first=True), "id")
    return list(MassMessage.objects.filter(status=M.CREATED).order_by(*order).values_list("id", flat=True)[:limit])


def mass_messages_to_resend(older_than: timedelta = timedelta(minutes=2)) -> list[int]:
    """Rows whose send may have been lost (a task message gone with a dead worker, retries exhausted): pending
    rows of sending runs made a while ago, and sending rows whose claim is stale. Queued again by beat; the claim
    makes a duplicate harmless."""
    now = timezone.now()
    sendable = Q(run__isnull=True, campaign__status=Campaign.Status.RUNNING) | Q(
        run__status=CampaignRun.Status.SENDING, campaign__status=Campaign.Status.RUNNING)
    # A stale claim whatever the run's state: a cancelled run's crashed send must still find (and cancel) a task
    # it may have created; a paused run's is looked up and left pending-like until resumed.
    stuck = Q(sendable, status=M.PENDING, created_at__lt=now - older_than) | Q(
        status=M.SENDING, sending_at__lt=now - send_grace())
    return list(MassMessage.objects.filter(stuck).order_by("id").values_list("id", flat=True)[:1000])


# --- deadline, cancel, remind ------------------------------------------------------------------------------------


def mass_message_cancel(message_id: int) -> bool:
    """cancel_groupmsg_send for a created task, a last poll, then its still-pending recipients are cancelled.
    False when there is no task or WeCom refused the cancel."""
    return _cancel_task(message_id, M.CANCELLED) is not None


def _cancel_task(message_id: int, to_status: str) -> int | None:
    """Cancel the task in WeCom, poll it a last time (what was delivered before stays delivered), then move the
    message (unless that poll found it done) and its pending recipients to `to_status` (cancelled or expired).
    How many recipients moved; None when there is no task or WeCom refused."""
    message = MassMessage.objects.filter(id=message_id).first()
    if message is None or not message.msgid:
        return None
    try:
        get_client().cancel_groupmsg_send(message.msgid)
    except WeComError as exc:
        if exc.errcode != 41093:  # already cancelled is fine
            logger.warning("cancel_groupmsg_send failed", extra={"msgid": message.msgid, "errcode": exc.errcode})
            return None
    try:
        mass_message_poll(message.id, final=True)
    except WeComError:
        logger.warning("last poll before cancel failed", extra={"mass_message_id": message.id}, exc_info=True)
    recipient_status = R.EXPIRED if to_status == M.EXPIRED else R.CANCELLED
    with transaction.atomic():
        n = _recipients(message).filter(status=R.PENDING).update(status=recipient_status, updated_at=timezone.now())
        MassMessage.objects.filter(id=message.id, status__in=[M.CREATED, M.SENDING]).update(status=to_status)
    _finish_run(message)
    return n


def mass_messages_expire(now: datetime | None = None) -> dict:
    """Beat: created tasks still unconfirmed past their deadline are cancelled in WeCom, polled a last time, and
    expired with their pending recipients. {"messages": n, "recipients": n} (logged at WARNING)."""
    now = now or timezone.now()
    due = list(MassMessage.objects.filter(status=M.CREATED, deadline_at__lt=now).order_by("deadline_at")
               .values_list("id", flat=True)[:1000])
    messages = recipients = 0
    for message_id in due:
        expired = _cancel_task(message_id, M.EXPIRED)
        message = MassMessage.objects.get(id=message_id)
        if expired is None or message.status != M.EXPIRED:
            continue  # refused (tried again next time), or confirmed just in time: the last poll found it done
        messages += 1
        recipients += expired
        logger.warning("mass message expired: staff did not confirm before the deadline", extra={
            "mass_message_id": message.id, "campaign_id": message.campaign_id, "run_id": message.run_id,
            "sender_id": message.sender_id, "deadline_at": message.deadline_at.isoformat(),
            "recipients_expired": expired,
        })
    if messages:
        logger.warning("mass messages expired", extra={"messages": messages, "recipients": recipients})
    return {"messages": messages, "recipients": recipients}


def mass_message_remind(message_id: int) -> bool:
    """remind_groupmsg_send; False when WeCom refuses (41094: 3 reminders per 24 h already used)."""
    message = MassMessage.objects.filter(id=message_id).first()
    if message is None or not message.msgid:
        return False
    try:
        get_client().remind_groupmsg_send(message.msgid)
    except WeComError as exc:
        logger.info("remind_groupmsg_send refused", extra={"msgid": message.msgid, "errcode": exc.errcode})
        return False
    MassMessage.objects.filter(id=message.id).update(reminders=F("reminders") + 1)
    return True
