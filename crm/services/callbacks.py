"""WeCom callbacks: verify and store on receipt (before answering), then process once in a worker.

The receiver does not publish a task per event: at 1,000 callbacks/s a Celery publish (a few ms of CPU) would
cost more than verifying and storing. It stores the event, then sets a Redis "drain requested" flag (SET NX); only
the request that sets the flag publishes one `drain_callbacks` task, which clears the flag first and then applies
every received event in id order. An event committed after the clear sets the flag again and so gets its own
drain; one committed before it is seen by the running drain. The beat sweep covers a lost drain."""

from __future__ import annotations

import hashlib
import logging
import threading
import time
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import redis
from django.conf import settings
from django.db import OperationalError, connection, transaction
from django.db.models import F, Q
from django.utils import timezone

from crm.errors import ApplicationError, Conflict, NotFound
from crm.models import CallbackEvent
from crm.services import callback_routing
from crm.wecom.crypto import CallbackCryptoError, WXBizMsgCrypt

logger = logging.getLogger(__name__)

REPLAY_KEY = "crm:wecom:callback-seen:{digest}"
DRAIN_FLAG = "crm:wecom:callback-drain-requested"
# A drain that was published but lost (broker restart, worker killed before it cleared the flag) delays the next
# one by at most this long: the flag expires and the next callback publishes again.
DRAIN_FLAG_TTL_SECONDS = 30
# Fields that tell two events apart. WeCom's own rule is FromUserName + CreateTime, but several distinct
# events can share a second (a burst of adds, a group change), so the ids they concern are part of it too.
IDENTITY_FIELDS = (
    "ToUserName", "FromUserName", "CreateTime", "MsgType", "MsgId", "Event", "ChangeType", "UserID",
    "ExternalUserID", "ChatId", "UpdateDetail", "JoinScene", "QuitScene", "MemChangeCnt", "MemChangeList",
    "LastMemVer", "CurMemVer", "Id", "TagType", "StrategyId", "FailReason", "Source",
)  # fmt: skip
# Child tags whose value is a list: `<Item>` children in newer payloads, a comma string in older ones.
LIST_FIELDS = frozenset({"MemChangeList"})
MAX_BODY_BYTES = 256 * 1024
NONCE_MAX_LENGTH = 64  # CallbackEvent.nonce


class CallbackRefused(ApplicationError):
    """The request is not a genuine, fresh WeCom callback (the signature is the only auth there is)."""

    def __init__(self, message: str, code: str, status_code: int = 403) -> None:
        super().__init__(message, code=code, status_code=status_code)


def replay_refused() -> CallbackRefused:
    return CallbackRefused("this request was already received", code="replayed")


# The answer when an event could not be stored: not acknowledged, so WeCom delivers it again.
NOT_STORED = {"status": 503, "code": "unavailable", "message": "the event could not be stored; retry"}


def max_attempts() -> int:
    return settings.CALLBACK_MAX_ATTEMPTS


def sweep_after_seconds() -> float:
    return float(settings.CALLBACK_SWEEP_AFTER_SECONDS)


# --- crypto and replay guard, built from settings at call time (tests override settings) ------------

_crypt_cache: dict[tuple[str, str, str], WXBizMsgCrypt] = {}
_redis_cache: dict[str, redis.Redis] = {}
_cache_lock = threading.Lock()


def _crypt() -> WXBizMsgCrypt:
    key = (settings.WECOM_CALLBACK_TOKEN, settings.WECOM_ENCODING_AES_KEY, settings.WECOM_CORP_ID)
    crypt = _crypt_cache.get(key)
    if crypt is None:
        crypt = WXBizMsgCrypt(*key)
        with _cache_lock:
            _crypt_cache[key] = crypt
    return crypt


def _redis() -> redis.Redis:
    client = _redis_cache.get(settings.REDIS_URL)
    if client is None:
        client = redis.Redis.from_url(settings.REDIS_URL, socket_timeout=2, socket_connect_timeout=2)
        with _cache_lock:
            _redis_cache[settings.REDIS_URL] = client
    return client


def _check_fresh(timestamp: str) -> int:
    try:
        ts = int(timestamp)
    except (TypeError, ValueError):
        raise CallbackRefused("timestamp is not an integer", code="bad_request", status_code=400) from None
    if abs(int(time.time()) - ts) > settings.WECOM_CALLBACK_MAX_AGE_SECONDS:  # ints: no float overflow
        raise CallbackRefused("timestamp outside the accepted window", code="stale")
    return ts


def _require(params: dict, *names: str) -> list[str]:
    values = [params.get(name) or "" for name in names]
    missing = [name for name, value in zip(names, values, strict=True) if not value]
    if missing:
        raise CallbackRefused(f"missing {', '.join(missing)}", code="bad_request", status_code=400)
    return values


def _check_storable(nonce: str, body: bytes) -> None:
    """What is stored as text must fit its column: WeCom's nonce is short, its envelope UTF-8 and without NUL
    (PostgreSQL text cannot hold one). Anything else is not WeCom's, and refused before it is stored: a 503
    would have WeCom (or whoever sent it) retry a request that can never be stored."""
    if len(nonce) > NONCE_MAX_LENGTH or "\x00" in nonce:
        raise CallbackRefused("nonce is not a WeCom nonce", code="bad_request", status_code=400)
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise CallbackRefused("body is not UTF-8", code="bad_encoding", status_code=400) from None
    if "\x00" in text:
        raise CallbackRefused("body contains NUL", code="bad_encoding", status_code=400)


def _refuse(exc: CallbackCryptoError) -> CallbackRefused:
    if exc.reason in ("bad_signature", "bad_receiveid"):
        return CallbackRefused(str(exc), code=exc.reason)
    return CallbackRefused(str(exc), code=exc.reason, status_code=400)


def callback_verify_url(*, params: dict) -> str:
    """WeCom's URL verification (GET): the plaintext echostr, once signature, freshness and receiveid check out."""
    msg_signature, timestamp, nonce, echostr = _require(params, "msg_signature", "timestamp", "nonce", "echostr")
    _check_fresh(timestamp)
    try:
        return _crypt().verify_url(msg_signature, timestamp, nonce, echostr)
    except CallbackCryptoError as exc:
        raise _refuse(exc) from None


# --- parsing ---------------------------------------------------------------------------------------


def parse_event_xml(xml: str) -> dict:
    """The event XML's child tags as a dict, exactly as named; MemChangeList (and repeated tags) as lists."""
    try:
        # As the UTF-8 bytes it was: expat then holds a declared encoding to them (a str parse ignores it).
        root = ET.fromstring(xml.encode())
    except (ET.ParseError, LookupError, ValueError):  # LookupError/ValueError: an unknown or multi-byte encoding
        raise CallbackRefused("decrypted message is not XML", code="bad_xml", status_code=400) from None
    payload: dict = {}
    for child in root:
        if child.tag in LIST_FIELDS:
            items = [(item.text or "").strip() for item in child]
            if not items:
                items = [part.strip() for part in (child.text or "").split(",") if part.strip()]
            value: object = items
        elif len(child):
            value = {sub.tag: (sub.text or "").strip() for sub in child}
        else:
            value = (child.text or "").strip()
        if child.tag in payload:  # a repeated tag: keep every value
            previous = payload[child.tag]
            payload[child.tag] = [*previous, value] if isinstance(previous, list) else [previous, value]
        else:
            payload[child.tag] = value
    return payload


def dedupe_key(payload: dict) -> str:
    """sha256 over the event's identity fields (messages: MsgId is unique on its own)."""
    parts = []
    for name in IDENTITY_FIELDS:
        value = payload.get(name, "")
        if isinstance(value, list):
            value = ",".join(str(v) for v in value)
        parts.append(f"{name}={value}")
    return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()


def _event_time(payload: dict) -> datetime | None:
    try:
        return datetime.fromtimestamp(int(payload.get("CreateTime", "")), tz=UTC)
    except (TypeError, ValueError, OverflowError, OSError):
        return None


# --- receive ---------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class OpenedCallback:
    """A POSTed callback whose signature, freshness and receiveid held, decrypted and parsed; not yet stored."""

    payload: dict
    xml: str
    body: bytes
    msg_signature: str
    timestamp: int
    nonce: str
    dedupe_key: str


@dataclass(frozen=True, slots=True)
class Receipt:
    """What storing one opened callback came to."""

    event_id: int
    created: bool  # False: the same event was stored before (WeCom's redelivery); nothing new to process
    replayed: bool  # this very signed request was received before: refuse it


def callback_open(*, params: dict, body: bytes) -> OpenedCallback:
    """Verify and decrypt one POSTed callback, without any I/O. Raises CallbackRefused for forged, tampered,
    foreign, stale or malformed requests."""
    msg_signature, timestamp, nonce = _require(params, "msg_signature", "timestamp", "nonce")
    if len(body) > MAX_BODY_BYTES:
        raise CallbackRefused("body too large", code="too_large", status_code=413)
    _check_storable(nonce, body)
    ts = _check_fresh(timestamp)
    try:
        xml = _crypt().decrypt_message(msg_signature, timestamp, nonce, body)
    except CallbackCryptoError as exc:
        raise _refuse(exc) from None
    payload = parse_event_xml(xml)
    return OpenedCallback(payload, xml, body, msg_signature, ts, nonce, dedupe_key(payload))


def callbacks_store(opened: Sequence[OpenedCallback]) -> list[Receipt]:
    """Store opened callbacks (one statement for all of them), then check them against the replay guard and ask
    for a drain (one Redis round trip for all of them). One receipt per callback, in order.

    Store first: a replayed request carries the very same event, so its insert is a no-op (dedupe key) and
    nothing is stored twice whatever the guard answers. Round trips are what an acknowledgement costs (a
    loopback round trip is a quarter of a millisecond on this kind of VM), so a group of callbacks that arrive
    together (the ingest server's group commit) pays for two, not two each."""
    if not opened:
        return []
    new_ids = _insert_unless_stored([_new_event(item) for item in opened])
    ids: dict[str, int] = {}
    created: list[bool] = []
    for item in opened:  # the first copy of a key in this group is the stored one; a later copy is a duplicate
        fresh = item.dedupe_key in new_ids and item.dedupe_key not in ids
        created.append(fresh)
        ids.setdefault(item.dedupe_key, new_ids.get(item.dedupe_key, 0))
    missing = [key for key, pk in ids.items() if not pk]
    if missing:  # stored before this group: the first copy is the one that counts
        ids.update(CallbackEvent.objects.filter(dedupe_key__in=missing).values_list("dedupe_key", "id"))
    # Outside a transaction the rows are committed now and the drain can be asked for in the same pipeline;
    # inside one (a caller's atomic block, tests) it is asked for on commit.
    deferred = connection.in_atomic_block
    first_sight = _first_sight(opened, ask_drain=bool(new_ids) and not deferred)
    if new_ids and deferred:
        transaction.on_commit(request_drain)
    receipts = [
        Receipt(event_id=ids[item.dedupe_key], created=fresh, replayed=not seen_first)
        for item, fresh, seen_first in zip(opened, created, first_sight, strict=True)
    ]
    if new_ids:
        logger.info("callbacks stored", extra={"count": len(new_ids), "callback_ids": sorted(new_ids.values())})
    for receipt in receipts:
        if not receipt.created and not receipt.replayed:
            logger.info("callback duplicate", extra={"callback_id": receipt.event_id})
    return receipts


def callback_receive(*, params: dict, body: bytes) -> Receipt:
    """Verify, decrypt and store one POSTed callback; ask for a drain once it is committed.

    A second delivery of a stored event gets created=False and asks for nothing. Raises CallbackRefused for
    forged, tampered, foreign, stale or replayed requests (nothing stored)."""
    receipt = callbacks_store([callback_open(params=params, body=body)])[0]
    if receipt.replayed:
        raise replay_refused()
    return receipt


def _first_sight(opened: Sequence[OpenedCallback], *, ask_drain: bool) -> list[bool]:
    """Replay guard: False for a signed request (nonce + signature) already seen inside the freshness window;
    past the window the timestamp check refuses it. Only reached once the signature held, so forgeries can't
    fill it. With ask_drain, the drain request rides in the same round trip."""
    window = settings.WECOM_CALLBACK_MAX_AGE_SECONDS * 2 + 60
    try:
        pipe = _redis().pipeline(transaction=False)
        for item in opened:
            digest = hashlib.sha1(f"{item.nonce}:{item.msg_signature}".encode()).hexdigest()
            pipe.set(REPLAY_KEY.format(digest=digest), 1, nx=True, ex=window)
        if ask_drain:
            _set_drain_flag(pipe)
        replies = pipe.execute()
    except redis.RedisError:
        # Redis down: the events are stored (a replay of one is a no-op); the sweep routes them later.
        logger.warning("callback replay guard unavailable", exc_info=True)
        return [True] * len(opened)
    if ask_drain and replies[-1]:
        _publish_drain()
    return [bool(reply) for reply in replies[: len(opened)]]


def _new_event(item: OpenedCallback) -> CallbackEvent:
    payload = item.payload
    return CallbackEvent(
        dedupe_key=item.dedupe_key,
        msg_signature=item.msg_signature,
        timestamp=item.timestamp,
        nonce=item.nonce,
        raw_body=item.body.decode("utf-8", errors="replace"),
        decrypted_xml=item.xml,
        payload=payload,
        event=str(payload.get("Event") or payload.get("MsgType") or "")[:64],
        change_type=str(payload.get("ChangeType") or "")[:64],
        event_time=_event_time(payload),
    )


def _insert_unless_stored(events: list[CallbackEvent]) -> dict[str, int]:
    """{dedupe key: new id} for the events this call stored. A key stored before is left out; a key twice in
    the list is stored once.

    One statement (INSERT .. VALUES (..), (..) ON CONFLICT (dedupe_key) DO NOTHING RETURNING), committed by
    itself outside a transaction: one round trip instead of a BEGIN, INSERT, COMMIT and IntegrityError path
    per event. Values go through each field's own pre_save/get_db_prep_save, so defaults and JSON adaptation
    stay the ORM's. Rows get their ids in list order, which the drain relies on (arrival order)."""
    meta = CallbackEvent._meta
    fields = [f for f in meta.concrete_fields if not f.primary_key]
    key = (connection.vendor, len(events))
    sql = _insert_sql.get(key)
    if sql is None:
        qn = connection.ops.quote_name
        row = f"({', '.join(['%s'] * len(fields))})"
        # Identifiers come from the model, quoted; every value is a bound parameter.
        sql = _insert_sql[key] = (
            f"INSERT INTO {qn(meta.db_table)} ({', '.join(qn(f.column) for f in fields)}) "  # noqa: S608
            f"VALUES {', '.join([row] * len(events))} "
            f"ON CONFLICT ({qn(meta.get_field('dedupe_key').column)}) DO NOTHING "
            f"RETURNING {qn(meta.pk.column)}, {qn(meta.get_field('dedupe_key').column)}"
        )
    params = [f.get_db_prep_save(f.pre_save(event, add=True), connection) for event in events for f in fields]
    if connection.vendor == "postgresql":
        # A server-side-bound, prepared statement: no client-side quoting of the ~2 KB of text per event and
        # no parse/plan on the server. (Django's own cursors bind client-side.)
        import psycopg

        connection.ensure_connection()
        # Django's error wrapper still applies: a lost connection is flagged and replaced at the request's end.
        with connection.wrap_database_errors, psycopg.Cursor(connection.connection) as cursor:
            cursor.execute(sql, params, prepare=True)
            rows = cursor.fetchall()
    else:
        with connection.cursor() as cursor:
            cursor.execute(sql, params)
            rows = cursor.fetchall()
    return {dedupe: pk for pk, dedupe in rows}


_insert_sql: dict[tuple[str, int], str] = {}


def request_drain() -> None:
    """Ask for a drain of received events, unless one is already requested and not yet started."""
    try:
        if _set_drain_flag(_redis()):
            _publish_drain()
    except redis.RedisError:
        # The event is stored; the sweep will pick it up. Never fail the acknowledgement over Redis.
        logger.warning("callback drain request failed", exc_info=True)


def _set_drain_flag(client: redis.Redis) -> bool | None:
    """SET NX the request flag (on a client, or queued on a pipeline): true when this caller set it."""
    return client.set(DRAIN_FLAG, 1, nx=True, ex=DRAIN_FLAG_TTL_SECONDS)


def _publish_drain() -> None:
    from crm.tasks.callbacks import drain_callbacks

    try:
        drain_callbacks.delay()
    except Exception:
        # The event is stored; the sweep will pick it up. Never fail the acknowledgement over the broker.
        logger.exception("callback drain publish failed")


def drain_started() -> None:
    """Clear the request flag before looking for work, so that any event stored from now on asks again."""
    _redis().delete(DRAIN_FLAG)


def callback_ids_to_drain(limit: int = 100, after_id: int = 0) -> list[int]:
    """The oldest received events (id order: WeCom's order of arrival), past `after_id`."""
    return list(
        CallbackEvent.objects.filter(status=CallbackEvent.Status.RECEIVED, id__gt=after_id)
        .order_by("id")
        .values_list("id", flat=True)[:limit]
    )


# --- route, apply, retry, replay ------------------------------------------------------------------
#
# received -> routed -> applied | failed(reason). Routing runs under the event row's lock and commits the
# `routed` mark with whatever the dispatcher wrote; the effect (re-reading WeCom, writing contacts) runs after
# that commit, outside any transaction (see callback_routing), and its outcome is recorded on the row: applied,
# or failed with the error and, while attempts are left, when it is retried (`next_attempt_at`, exponential).


def retry_delay_seconds(attempts: int) -> int:
    """Backoff before the next automatic attempt: 2, 4, 8 ... seconds, at most a minute."""
    return min(60, 2 ** min(max(attempts, 1), 6))


def _failure(event: CallbackEvent, exc: BaseException) -> None:
    """Mark the instance failed (the caller saves): the reason, and the next attempt while any are left, counted
    from now (the failure), not from the attempt's start: a slow failure must not eat its own backoff."""
    event.status = CallbackEvent.Status.FAILED
    event.error = f"{type(exc).__name__}: {exc}"[:4000]
    left = event.attempts < max_attempts()
    event.next_attempt_at = timezone.now() + timedelta(seconds=retry_delay_seconds(event.attempts)) if left else None


def callback_process(*, event_id: int, skip_locked: bool = False) -> CallbackEvent | None:
    """Route one stored event (received, or failed at routing) through the dispatcher, at most once.

    The row is locked for the whole run and the dispatcher's writes commit with the `routed` mark, so a second
    run (duplicate task, sweep, redelivery after a crash) finds it routed and does nothing. An event no handler
    knows has nothing to apply: it is `applied` at once ("ignored"). A routed event's effect is queued on
    commit (crm.tasks.callbacks.apply_callback). A dispatcher failure is rolled back and recorded as `failed`.
    With skip_locked (drains), an event another worker holds is left to it: None."""
    with transaction.atomic():
        if skip_locked:
            event = CallbackEvent.objects.select_for_update(skip_locked=True).filter(pk=event_id).first()
            if event is None:
                return None
        else:
            event = CallbackEvent.objects.select_for_update().get(pk=event_id)
        if event.status != CallbackEvent.Status.RECEIVED and not (
            event.status == CallbackEvent.Status.FAILED and event.routed_at is None
        ):
            return event  # routed already (or applied): nothing to do here
        now = timezone.now()
        event.last_attempt_at = now
        try:
            with transaction.atomic():
                result = callback_routing.handle_event(dict(event.payload))
        except Exception as exc:
            event.attempts += 1  # the row is locked: no other writer
            _failure(event, exc)
            logger.warning(
                "callback routing failed", extra={"callback_id": event.pk, "error": event.error}, exc_info=True
            )
        else:
            event.routed_at = now
            event.error = ""
            event.next_attempt_at = None
            event.result = "" if result is None else str(result)[:4000]
            if result == callback_routing.IGNORED:
                event.attempts += 1
                event.status = CallbackEvent.Status.APPLIED
                event.applied_at = now
            else:
                event.status = CallbackEvent.Status.ROUTED
                transaction.on_commit(lambda: _queue_apply(event_id))
        event.save(update_fields=["attempts", "last_attempt_at", "status", "error", "result", "routed_at",
                                  "applied_at", "next_attempt_at"])
    return event


def _queue_apply(event_id: int, countdown: float | None = None) -> None:
    from crm.tasks.callbacks import apply_callback

    try:
        apply_callback.apply_async((event_id,), countdown=countdown)
    except Exception:
        # The event is routed; the sweep applies it once the broker is back.
        logger.exception("callback apply publish failed", extra={"callback_id": event_id})


def callback_apply(*, event_id: int) -> CallbackEvent:
    """Apply a routed event's effect (or retry one that failed at it), and record the outcome on the row.

    The handlers re-read WeCom and are idempotent, so the effect runs outside any transaction (no lock held
    across HTTP calls). Two runs racing (a duplicate task, the sweep) are told apart by a compare-and-set on
    (status, attempts): only one of them applies. Never raises for the effect's failure: it is recorded."""
    event = CallbackEvent.objects.get(pk=event_id)
    applicable = event.status == CallbackEvent.Status.ROUTED or (
        event.status == CallbackEvent.Status.FAILED and event.routed_at is not None
    )
    if not applicable:
        return event
    now = timezone.now()
    claimed = CallbackEvent.objects.filter(pk=event_id, status=event.status, attempts=event.attempts).update(
        attempts=F("attempts") + 1, last_attempt_at=now, next_attempt_at=None
    )
    if not claimed:
        return CallbackEvent.objects.get(pk=event_id)
    event.refresh_from_db(fields=["attempts", "last_attempt_at"])
    try:
        result = _apply_racing(dict(event.payload))
    except Exception as exc:
        _failure(event, exc)
        CallbackEvent.objects.filter(pk=event_id).update(
            status=event.status, error=event.error, next_attempt_at=event.next_attempt_at
        )
        logger.warning(
            "callback apply failed",
            extra={"callback_id": event_id, "attempts": event.attempts, "error": event.error},
            exc_info=True,
        )
    else:
        event.status = CallbackEvent.Status.APPLIED
        event.result = "" if result is None else str(result)[:4000]
        event.error = ""
        event.applied_at = timezone.now()
        CallbackEvent.objects.filter(pk=event_id).update(
            status=event.status, result=event.result, error="", applied_at=event.applied_at
        )
    return event


# PostgreSQL's deadlock_detected and serialization_failure: two applies for the same person (an add and its
# redelivery, two staff adding one customer) writing the same unique keys in another order. One of them is
# aborted; it is a race, not a failure, and the handlers are idempotent, so it runs again at once.
_RACE_SQLSTATES = {"40P01", "40001"}
RACE_RETRIES = 3


def _apply_racing(payload: dict):
    attempt = 0
    while True:
        try:
            return callback_routing.apply_event(dict(payload))
        except OperationalError as exc:
            if getattr(exc.__cause__, "sqlstate", None) not in _RACE_SQLSTATES or attempt >= RACE_RETRIES:
                raise
            attempt += 1
            logger.info("callback apply raced another; again", extra={"attempt": attempt})
            time.sleep(0.05 * attempt)


def callback_due_for_sweep(*, older_than: float | None = None, limit: int = 1000) -> list[int]:
    """Ids of events whose task was lost (the broker was down at enqueue time, a worker died mid-task):
    received or routed and untouched for longer than `older_than` seconds, or failed with attempts left and
    past both that age and their retry time."""
    age = sweep_after_seconds() if older_than is None else older_than
    now = timezone.now()
    cutoff = now - timedelta(seconds=age)
    untouched = Q(last_attempt_at__isnull=True) | Q(last_attempt_at__lte=cutoff)
    stale_received = Q(status=CallbackEvent.Status.RECEIVED, received_at__lte=cutoff) & untouched
    stale_routed = Q(status=CallbackEvent.Status.ROUTED, routed_at__lte=cutoff) & untouched
    stale_failed = Q(
        status=CallbackEvent.Status.FAILED, attempts__lt=max_attempts(), last_attempt_at__lte=cutoff
    ) & (Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lte=now))
    return list(
        CallbackEvent.objects.filter(stale_received | stale_routed | stale_failed)
        .order_by("id").values_list("id", flat=True)[:limit]
    )


def callback_run(event_id: int) -> CallbackEvent | None:
    """Take one event one step on, whatever its state: route it, or apply it (what a sweep or replay queues)."""
    event = callback_process(event_id=event_id)
    if event is not None and (event.status == CallbackEvent.Status.ROUTED or event.failed_step == "apply"):
        # Routed before this run: its apply task was lost, or this is a retry of a failed apply.
        return callback_apply(event_id=event_id)
    return event


def retry_due(event: CallbackEvent | None) -> float | None:
    """Seconds until a failed event's next automatic attempt, or None when it gets none (not failed, or out of
    attempts: left for a person to replay)."""
    if event is None or event.status != CallbackEvent.Status.FAILED or event.next_attempt_at is None:
        return None
    return max(0.0, (event.next_attempt_at - timezone.now()).total_seconds())


REPLAYABLE = (CallbackEvent.Status.FAILED,)


class CallbackNotReplayable(Conflict):
    def __init__(self, message: str) -> None:
        super().__init__(message, code="not_replayable", field="status")


def callback_replay(*, event_ids: Sequence[int], actor) -> list[int]:
    """A person asks for failed events to be applied again now (after fixing what made them fail): each gets a
    fresh retry budget, an audit entry (who, when, the error it had) and a task. Returns the ids queued; events
    not failed are skipped."""
    from auditlog.models import LogEntry

    queued: list[int] = []
    with transaction.atomic():
        events = list(
            CallbackEvent.objects.select_for_update().filter(pk__in=list(event_ids), status__in=REPLAYABLE)
            .order_by("id")
        )
        for event in events:
            LogEntry.objects.log_create(
                event, action=LogEntry.Action.UPDATE, actor=actor,
                changes={"status": [event.status, "replay requested"], "attempts": [str(event.attempts), "0"],
                         "error": [event.error, ""]},
            )  # fmt: skip
            queued.append(event.pk)
        # A fresh budget: the automatic retries had run out, or the cause was fixed. The error stays until the
        # next attempt replaces it, so the screen still says why it failed.
        CallbackEvent.objects.filter(pk__in=queued).update(attempts=0, next_attempt_at=None)
        for event_id in queued:
            transaction.on_commit(lambda event_id=event_id: _queue_run(event_id))
    logger.info("callbacks replayed", extra={"callback_ids": queued, "actor": getattr(actor, "pk", None)})
    return queued


def callback_replay_one(*, event_id: int, actor) -> CallbackEvent:
    """Replay one event (the API): 404 for an unknown id, 409 for one that is not failed."""
    event = CallbackEvent.objects.filter(pk=event_id).first()
    if event is None:
        raise NotFound(f"callback event {event_id} does not exist", field="event_id")
    if not callback_replay(event_ids=[event_id], actor=actor):
        raise CallbackNotReplayable(f"callback event {event_id} is {event.status}, not failed")
    event.refresh_from_db()
    return event


def _queue_run(event_id: int) -> None:
    from crm.tasks.callbacks import process_callback

    try:
        process_callback.delay(event_id)
    except Exception:
        logger.exception("callback replay publish failed", extra={"callback_id": event_id})
