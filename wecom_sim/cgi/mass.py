"""Mass messages (企业群发): tasks created by the API, delivered only when the sender confirms."""

from __future__ import annotations

import datetime as dt

from django.db import connection, transaction
from django.db.models import F
from django.db.models.expressions import RawSQL

from wecom_sim import ids
from wecom_sim.cgi.base import (
    WecomError,
    as_int,
    as_list,
    clamp_limit,
    endpoint,
    make_cursor,
    page,
    read_cursor,
    require,
)
from wecom_sim.cgi.contact_ways import check_attachments
from wecom_sim.clockwork import confirm_due
from wecom_sim.corp import now, ts
from wecom_sim.models import SimCorp, SimFriendship, SimGroupChat, SimMassMessage, SimMassResult, SimMassTask, SimMember

MAX_CUSTOMERS = 10000
MAX_CHATS = 2000
MONTH = 31 * 86400


def _lookup_chunk() -> int:
    """Ids per IN list: all of them in one query where the database takes that many parameters (PostgreSQL), else
    under its bound-parameter limit (SQLite: 999). Each query scans the sender's friendships once (a hash join
    against the ids), so five queries of 2,000 read a 20,000-customer sender's relations five times."""
    limit = connection.features.max_query_params
    return MAX_CUSTOMERS if not limit else max(1, min(MAX_CUSTOMERS, limit - 20))


def _senders_for_single(corp: SimCorp, params: dict) -> tuple[list[tuple[str, str]], list[str]]:
    """-> ([(sender, external_userid)], fail_list). Set-based: the live relations of all the ids in a few queries,
    never one per recipient."""
    eids = as_list(params, "external_userid")
    sender = params.get("sender")
    if len(eids) > MAX_CUSTOMERS:
        raise WecomError(40058, "external_userid exceed 10000")
    if not all(isinstance(e, str) for e in eids):
        raise WecomError(47001, "external_userid must be a list of strings")
    live = SimFriendship.objects.filter(member__corp=corp, member_deleted=False, confirmed=True,
                                        member__resigned_at__isnull=True)
    if sender:
        member = SimMember.objects.filter(corp=corp, userid__iexact=sender, resigned_at__isnull=True).first()
        if member is None:
            raise WecomError(40003)
        live = live.filter(member=member)
    if not eids:
        if not sender:
            raise WecomError(40063, "external_userid and sender both empty")
        eids = list(live.values_list("shopper__external_userid", flat=True))
    tag_groups = ((params.get("tag_filter") or {}).get("group_list")) or []
    wanted = list(dict.fromkeys(eids))
    # Pushed to the member who most recently got the customer (stands for "last chatted"): the first row per id
    # in createtime order, newest first.
    chosen: dict[str, tuple[str, list]] = {}
    # Tags are read (and their JSON decoded) only when a tag filter asks for them.
    fields = ("shopper__external_userid", "member__userid", *(("tag_ids",) if tag_groups else ()))
    chunk = _lookup_chunk()
    for start in range(0, len(wanted), chunk):
        rows = (live.filter(shopper__external_userid__in=wanted[start:start + chunk])
                .order_by("-createtime", "-id").values_list(*fields))
        # A plain fetch, not .iterator(): outside a transaction PostgreSQL's server-side cursor is WITH HOLD, which
        # materialises the result once more at commit.
        for eid, userid, *tags in list(rows):
            chosen.setdefault(eid, (userid, tags[0] if tags else []))
    pairs, fail = [], []
    for eid in wanted:
        found = chosen.get(eid)
        if found is None or not _matches_tags(found[1], tag_groups):
            fail.append(eid)
        else:
            pairs.append((found[0], eid))
    return pairs, fail


def _matches_tags(tag_ids: list, tag_groups: list) -> bool:
    # Between groups AND, within a group OR.
    return all(set(g.get("tag_list") or []) & set(tag_ids) for g in tag_groups if g.get("tag_list"))


@endpoint("externalcontact/add_msg_template", empty={"fail_list": [], "msgid": ""})
def add_msg_template(corp: SimCorp, params: dict) -> dict:
    chat_type = params.get("chat_type") or "single"
    if chat_type not in ("single", "group"):
        raise WecomError(40058, "invalid chat_type")
    text = params.get("text") or {}
    attachments = as_list(params, "attachments")
    if not isinstance(text, dict):
        raise WecomError(47001)
    if not text.get("content") and not attachments:
        raise WecomError(40063, "text and attachments both empty")
    check_attachments(attachments)
    fail: list[str] = []
    if chat_type == "single":
        pairs, fail = _senders_for_single(corp, params)
    else:
        sender = require(params, "sender")
        chat_ids = as_list(params, "chat_id_list")
        if len(chat_ids) > MAX_CHATS:
            raise WecomError(40058, "chat_id_list exceed 2000")
        chats = SimGroupChat.objects.filter(corp=corp, owner__iexact=sender, dismissed=False)
        if chat_ids:
            chats = chats.filter(chat_id__in=chat_ids)
            found = set(chats.values_list("chat_id", flat=True))
            fail = [c for c in chat_ids if c not in found]
        pairs = [(c.owner, c.chat_id) for c in chats]
    if not pairs:
        raise WecomError(41048)
    with transaction.atomic():
        message = SimMassMessage.objects.create(corp=corp, msgid=ids.msgid(), chat_type=chat_type, text=text,
                                                attachments=attachments, created_at=now(corp))
        SimMassTask.objects.bulk_create(SimMassTask(message=message, userid=u)
                                        for u in dict.fromkeys(u for u, _ in pairs))
        _insert_results(message, pairs, "external_userid" if chat_type == "single" else "chat_id")
    return {"fail_list": fail, "msgid": message.msgid}


def _insert_results(message: SimMassMessage, pairs: list[tuple[str, str]], key: str) -> None:
    """Up to 10,000 result rows: one INSERT ... SELECT FROM unnest(...) on PostgreSQL, bulk_create elsewhere."""
    if connection.vendor == "postgresql":
        table = SimMassResult._meta.db_table
        other = "chat_id" if key == "external_userid" else "external_userid"
        # Table and column names come from the model; every value is a parameter.
        sql = (f'INSERT INTO "{table}" (message_id, userid, "{key}", "{other}", status) '  # noqa: S608
               "SELECT %s, u, r, '', 0 FROM unnest(%s::text[], %s::text[]) AS t(u, r)")
        with connection.cursor() as cursor:
            cursor.execute(sql, [message.pk, [u for u, _ in pairs], [r for _, r in pairs]])
        return
    SimMassResult.objects.bulk_create((SimMassResult(message=message, userid=u, **{key: r}) for u, r in pairs),
                                      batch_size=500)


def message_or_error(corp: SimCorp, params: dict, *, dispatching_check: bool = True) -> SimMassMessage:
    message = SimMassMessage.objects.filter(corp=corp, msgid=require(params, "msgid")).first()
    if message is None:
        raise WecomError(40058, "invalid msgid")
    # Right after creation the task is still being dispatched to the senders' clients.
    if dispatching_check and now(corp) < message.created_at + dt.timedelta(seconds=corp.mass_dispatch_seconds):
        raise WecomError(41063)
    confirm_due(corp, message)  # what this read shows is settled (the other messages settle on their own reads)
    return message


@endpoint("externalcontact/get_groupmsg_list_v2", empty={"group_msg_list": [], "next_cursor": ""})
def get_groupmsg_list_v2(corp: SimCorp, params: dict) -> dict:
    start, end = as_int(params, "start_time"), as_int(params, "end_time")
    if start is None or end is None:
        raise WecomError(40063, "start_time or end_time missing")
    if end < start or end - start > MONTH:
        raise WecomError(40058, "time range exceed one month")
    chat_type = params.get("chat_type") or "single"
    filter_type = as_int(params, "filter_type", 2)
    messages = [m for m in SimMassMessage.objects.filter(corp=corp, chat_type=chat_type).order_by("id")
                if start <= ts(m.created_at) <= end and filter_type in (0, 2)]
    query = {"api": "list_v2", "s": start, "e": end, "t": chat_type, "f": filter_type, "c": params.get("creator")}
    chunk, cursor = page(messages, params, query, 50, 100)
    rows = [{"msgid": m.msgid, "create_time": str(ts(m.created_at)), "create_type": m.create_type, "text": m.text,
             "attachments": m.attachments} for m in chunk]
    return {"group_msg_list": rows, "next_cursor": cursor}


@endpoint("externalcontact/get_groupmsg_task", empty={"task_list": [], "next_cursor": ""})
def get_groupmsg_task(corp: SimCorp, params: dict) -> dict:
    message = message_or_error(corp, params)
    tasks = list(message.tasks.order_by("id"))
    chunk, cursor = page(tasks, params, {"api": "task", "m": message.msgid}, 500, 1000)
    rows = []
    for task in chunk:
        row = {"userid": task.userid, "status": task.status}
        if task.send_time:
            row["send_time"] = ts(task.send_time)
        rows.append(row)
    return {"task_list": rows, "next_cursor": cursor}


@endpoint("externalcontact/get_groupmsg_send_result", empty={"send_list": [], "next_cursor": ""})
def get_groupmsg_send_result(corp: SimCorp, params: dict) -> dict:
    """Paged in the database: the cursor holds the last row id of the page (bound to msgid and userid), so a page
    is one index range scan and pages stay stable while statuses change underneath."""
    message = message_or_error(corp, params)
    userid = require(params, "userid", 40003)
    if not isinstance(userid, str):
        raise WecomError(47001, "userid must be a string")
    # The task's own spelling of the userid (WeCom userids are case-insensitive), then an exact, indexed filter.
    userid = next((u for u in message.tasks.values_list("userid", flat=True) if u.lower() == userid.lower()), userid)
    query = {"api": "result", "m": message.msgid, "u": userid.lower()}
    limit = clamp_limit(params, 500, 1000)
    after = read_cursor(params.get("cursor"), query)
    results = message.results.filter(userid=userid, id__gt=after).order_by("id")
    if connection.vendor == "postgresql":
        # Seconds computed by the server: parsing 1,000 timestamps a page in Python costs more than the query.
        results = results.annotate(sent=RawSQL("floor(EXTRACT(EPOCH FROM send_time))::bigint", []))
    else:
        results = results.annotate(sent=F("send_time"))
    chunk = list(results.values_list("id", "userid", "external_userid", "chat_id", "status", "sent")[:limit + 1])
    more = len(chunk) > limit
    chunk = chunk[:limit]
    rows = []
    for _, uid, eid, chat_id, status, send_time in chunk:
        row = {"userid": uid, "status": status}
        if chat_id:
            row["chat_id"] = chat_id
        else:
            row["external_userid"] = eid
        if status == 1 and send_time:
            row["send_time"] = send_time if isinstance(send_time, int) else ts(send_time)
        rows.append(row)
    return {"send_list": rows, "next_cursor": make_cursor(chunk[-1][0], query) if more else ""}


@endpoint("externalcontact/cancel_groupmsg_send")
def cancel_groupmsg_send(corp: SimCorp, params: dict) -> dict:
    message = message_or_error(corp, params, dispatching_check=False)
    if not SimMassMessage.objects.filter(pk=message.pk, cancelled=False).update(cancelled=True):
        raise WecomError(41093)
    return {}


@endpoint("externalcontact/remind_groupmsg_send")
def remind_groupmsg_send(corp: SimCorp, params: dict) -> dict:
    message = message_or_error(corp, params, dispatching_check=False)
    if message.cancelled:
        raise WecomError(41093)
    moment = now(corp)
    recent = [r for r in message.reminds if r > ts(moment) - 86400]
    if len(recent) >= 3:
        raise WecomError(41094)
    message.reminds = [*recent, ts(moment)]
    message.save(update_fields=["reminds"])
    return {}


