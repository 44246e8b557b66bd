"""Red-packet claims in groups: the claim server's fast path (crm/api/claim_ingest.py).

`redpacket_claim` (crm.services.redpackets) costs one request's worth of Django per claim: a few reads, the Lua
call, an INSERT, an UPDATE and a commit (a WAL flush), and a Celery publish. At a Singles' Day burst most of that
is per-claim overhead, not the claim. Here the claims that arrive together are taken as one group:

1. one Redis pipeline: per claim one EVALSHA of the claim script with the claim throttles folded in (still one
   atomic script per claim, so "once per customer, never over budget" is decided exactly as before);
2. one transaction: the pools held FOR KEY SHARE (as `_hold_pool`: a rebuild or a refund waits for us), the
   reservations checked to be still ours (one HMGET per pool), ids drawn from the sequence in one statement,
   the rows and their billnos written in one COPY, one commit;
3. one task message for the groups' payouts, sent by a thread of its own (`pay_claims` fans them out in the
   worker).

Only pools whose claim needs no per-customer reads take this path (no eligibility, no gate, no group, open now);
the rest, and every edge case (a row already there, a lost Redis state, a SQLite database), go through
`redpacket_claim`'s own code, so there is one definition of a claim's rules. An acknowledged claim is committed
before it is answered, as there."""

from __future__ import annotations

import functools
import itertools
import logging
import os
import queue
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

import redis
from django.db import IntegrityError, connection, transaction
from django.db.models import Q
from django.utils import timezone

from crm.models import Contact, RedPacketClaim, RedPacketPool
from crm.services import redpackets as rp
from crm.services.gates import pool_gates

logger = logging.getLogger(__name__)

# The claim throttles (crm.api.throttles: per visitor, per IP), counted as DRF's sliding windows are, then the
# claim script itself. KEYS: the pool's three keys, then the window keys. ARGV: contact id, now, then per
# window its duration, limit and member. A refusal by any window answers {-9, ms to wait} and claims nothing;
# as in DRF, every window still counts the request.
THROTTLED_CLAIM_LUA = """
local now, wait = tonumber(ARGV[2]), -1
for i = 4, #KEYS do
  local key, a = KEYS[i], 3 + (i - 4) * 3
  local duration, limit, member = tonumber(ARGV[a]), tonumber(ARGV[a + 1]), ARGV[a + 2]
  redis.call('ZREMRANGEBYSCORE', key, '-inf', now - duration)
  if redis.call('ZCARD', key) >= limit then
    local oldest = tonumber(redis.call('ZRANGE', key, 0, 0, 'WITHSCORES')[2] or now)
    wait = math.max(wait, duration - (now - oldest))
  else
    redis.call('ZADD', key, now, member)
    redis.call('PEXPIRE', key, math.ceil(duration * 1000))
  end
end
if wait >= 0 then return {-9, math.ceil(wait * 1000)} end
""" + rp._CLAIM_LUA

THROTTLED = -9


@dataclass(frozen=True)
class PoolFacts:
    """What the fast path needs to know of a pool, read once and kept briefly by the server."""

    id: int
    fast: bool  # active, open now, and nothing to check per customer
    expires_at: datetime
    campaign: str
    read_at: float


def pool_facts(pool_id: int) -> PoolFacts | None:
    pool = RedPacketPool.objects.select_related("campaign").filter(id=pool_id).first()
    if pool is None:
        return None
    now = timezone.now()
    fast = (
        pool.status == RedPacketPool.Status.ACTIVE
        and pool.expires_at > now
        and (pool.starts_at is None or pool.starts_at <= now)
        and pool.group_id is None
        and pool.draw_prize_id is None  # a draw's prize: its winners only (redpacket_claim_refusal)
        and not pool.eligibility
        and not pool_gates(pool)  # the gates' own list: a gate added there is never skipped here
    )
    return PoolFacts(pool.id, fast, pool.expires_at, pool.campaign.name if pool.campaign else "", time.monotonic())


@dataclass
class ClaimRequest:
    """One customer's claim; the Redis answer is kept on it, so a group retried on a new connection does not claim
    (or count) twice."""

    pool_id: int
    contact_id: int
    windows: tuple[tuple[str, int, int], ...]  # (raw Redis key, duration s, limit) per throttle window
    reserved: tuple[int, int] | None = None  # (script code, amount)
    now: float = field(default_factory=time.time)


@dataclass(frozen=True)
class ClaimAnswer:
    status: str  # claimed | already_claimed | none_left | expired | throttled | retry | not_found | unavailable
    amount_fen: int = 0
    claim_id: int | None = None
    wait_seconds: float | None = None


def claims_take(requests: Sequence[ClaimRequest]) -> list[ClaimAnswer]:
    """Claim a group: the Redis scripts in one pipeline, the new rows in one transaction. One answer per request."""
    _reserve(requests)
    answers: dict[int, ClaimAnswer] = {}
    fresh: list[int] = []
    rest: list[int] = []
    for i, req in enumerate(requests):
        code, amount = req.reserved
        if code == THROTTLED:
            answers[i] = ClaimAnswer("throttled", wait_seconds=amount / 1000)
        elif code == -2:
            answers[i] = ClaimAnswer("none_left")
        elif code == -3:
            answers[i] = ClaimAnswer("expired")
        elif code == 1 and connection.vendor == "postgresql":
            fresh.append(i)
        else:
            rest.append(i)
    if fresh:
        answers.update(_insert(requests, fresh))
    # After the group's rows, so that a second tap in the same group finds its row. A tap reserved before (-1) is
    # most often a customer tapping again: its committed row answers it, one query for the group's repeats.
    answers.update(_repeated(requests, [i for i in rest if requests[i].reserved[0] == -1]))
    # -1 without its row (its writer died between Redis and the database), -4 (Redis state lost), SQLite: the
    # one-claim code handles each of these already (it writes a missing row).
    for i in rest:
        if i not in answers:
            answers[i] = _one(requests[i])
    return [answers[i] for i in range(len(requests))]


def _repeated(requests: Sequence[ClaimRequest], repeats: list[int]) -> dict[int, ClaimAnswer]:
    """'already_claimed' for the repeated taps whose claim row is committed with the amount Redis holds for them.
    An erased person's row is left to the one-claim code, which refuses it as not_found."""
    if not repeats:
        return {}
    wanted: dict[int, set[int]] = {}
    for i in repeats:
        wanted.setdefault(requests[i].pool_id, set()).add(requests[i].contact_id)
    match = Q()
    for pool_id, contact_ids in wanted.items():
        match |= Q(pool_id=pool_id, contact_id__in=sorted(contact_ids))
    rows = {
        (pool_id, contact_id): (claim_id, amount)
        for pool_id, contact_id, claim_id, amount in RedPacketClaim.objects.filter(
            match, contact__erased_at__isnull=True
        ).values_list("pool_id", "contact_id", "id", "amount_fen")
    }
    answers = {}
    for i in repeats:
        req = requests[i]
        row = rows.get((req.pool_id, req.contact_id))
        if row is not None and row[1] == req.reserved[1]:
            answers[i] = ClaimAnswer("already_claimed", row[1], row[0])
    return answers


def _reserve(requests: Sequence[ClaimRequest]) -> None:
    todo = [req for req in requests if req.reserved is None]
    if not todo:
        return
    r = rp.get_redis()
    sha = _script_sha(r)
    # Plain EVALSHA commands, not redis-py's Script objects: those add a SCRIPT EXISTS round trip per pipeline.
    pipe = r.pipeline(transaction=False)
    for req in todo:
        base = f"{rp.KEY_PREFIX}{req.pool_id}:"
        member = f"{req.now!r}:{os.getpid()}.{next(_members)}"  # unique in its window: this process's counter
        args = [req.contact_id, repr(req.now)]
        for _key, duration, limit in req.windows:
            args += [duration, limit, member]
        pipe.execute_command("EVALSHA", sha, 3 + len(req.windows), base + "left", base + "claimed", base + "state",
                             *[w[0] for w in req.windows], *args)
    replies = pipe.execute(raise_on_error=False)
    if any(isinstance(reply, redis.exceptions.NoScriptError) for reply in replies):
        # Redis restarted or its scripts were flushed: load ours and send only those again (nothing ran for them).
        _shas.pop(id(r), None)
        missing = redis.exceptions.NoScriptError
        again = [req for req, reply in zip(todo, replies, strict=True) if isinstance(reply, missing)]
        for req, reply in zip(todo, replies, strict=True):
            if not isinstance(reply, Exception):
                req.reserved = (int(reply[0]), int(reply[1]))
        _reserve(again)
        return
    for req, reply in zip(todo, replies, strict=True):
        if isinstance(reply, Exception):
            raise reply
        req.reserved = (int(reply[0]), int(reply[1]))


_members = itertools.count()
_shas: dict[int, str] = {}


def _script_sha(r) -> str:
    sha = _shas.get(id(r))
    if sha is None:
        sha = _shas[id(r)] = r.script_load(THROTTLED_CLAIM_LUA)
    return sha


def _one(req: ClaimRequest) -> ClaimAnswer:
    code, amount = req.reserved
    try:
        if code == 1:  # a fresh reservation on SQLite: write it as the one-claim path does
            if Contact.objects.filter(id=req.contact_id, erased_at__isnull=False).exists():
                # An erased person's old link claims nothing (as _insert refuses it): the amount goes back.
                rp._script("release")(keys=rp.pool_keys(req.pool_id), args=[str(req.contact_id), str(amount)])
                return ClaimAnswer("not_found")
            pool = RedPacketPool.objects.get(id=req.pool_id)
            claim, _ = rp._persist_claim(pool, req.contact_id, amount, fresh=True)
            return ClaimAnswer("claimed", claim.amount_fen, claim.id)
        outcome = rp.redpacket_claim(pool_id=req.pool_id, contact_id=req.contact_id)
    except rp.PoolClosed:
        return ClaimAnswer("expired")
    except rp.NotFound:
        return ClaimAnswer("not_found")
    except rp.ApplicationError as exc:
        return ClaimAnswer("retry" if exc.code == "retry" else "unavailable")
    return ClaimAnswer(outcome.status, outcome.amount_fen, outcome.claim_id)


def _insert(requests: Sequence[ClaimRequest], fresh: list[int]) -> dict[int, ClaimAnswer]:
    """The fresh reservations' rows, in one transaction; any that cannot be written are released or redone alone.

    Two statements: the pools held FOR KEY SHARE (as _hold_pool: claims share the lock, a rebuild or a refund
    waits for it) with the erased among the claimants and the ids drawn from the sequence, then the reservations
    checked in Redis under that lock (as _persist_claim), then one COPY of every row, billno included; then the
    commit."""
    answers: dict[int, ClaimAnswer] = {}
    pool_ids = sorted({requests[i].pool_id for i in fresh})
    r = rp.get_redis()
    try:
        with transaction.atomic():
            with connection.cursor() as cur:
                cur.execute(_HOLD_SQL, [pool_ids, [requests[i].contact_id for i in fresh], _sequence(), len(fresh)])
                held_pools, erased, ids = cur.fetchone()
            active = {int(pid) for pid, status in (held_pools or []) if status == RedPacketPool.Status.ACTIVE}
            erased = set(erased or ())
            pipe = r.pipeline(transaction=False)
            by_pool = {pid: [i for i in fresh if requests[i].pool_id == pid] for pid in pool_ids}
            for pid, mine in by_pool.items():
                pipe.execute_command("HMGET", f"{rp.KEY_PREFIX}{pid}:claimed", *[requests[i].contact_id for i in mine])
            held = {}
            for mine, values in zip(by_pool.values(), pipe.execute(), strict=True):
                held.update(zip(mine, values, strict=True))
            writable, release = [], []
            for i in fresh:
                req = requests[i]
                if req.contact_id in erased:
                    # An erased person's old link claims nothing (crm.services.erasure): the amount goes back.
                    answers[i] = ClaimAnswer("not_found")
                    release.append(req)
                elif req.pool_id not in active:
                    answers[i] = ClaimAnswer("expired")  # refunded meanwhile: its reservation went with the refund
                elif held[i] is None or int(held[i]) != req.reserved[1]:
                    answers[i] = ClaimAnswer("retry")  # a rebuild from the DB dropped it (as in _persist_claim)
                else:
                    writable.append(i)
            if writable:
                now = timezone.now()
                prefix = rp.billno_prefix(now)  # make_billno's, once for the group
                columns, template = _row_template()
                rows = []
                written = ids[: len(writable)]
                for i, claim_id in zip(writable, written, strict=True):
                    req = requests[i]
                    rows.append(template(claim_id, req.pool_id, req.contact_id, req.reserved[1],
                                         f"{prefix}{claim_id % 10**10:010d}", now))
                    answers[i] = ClaimAnswer("claimed", req.reserved[1], claim_id)
                # COPY: a group's rows in one go, without building (and the server parsing) a statement of
                # hundreds of parameters. Our own table and column names only; the values are data.
                # (The raw cursor's errors are Django's IntegrityError etc. only inside wrap_database_errors.)
                with connection.cursor() as cur, connection.wrap_database_errors, cur.cursor.copy(
                    f"COPY {RedPacketClaim._meta.db_table} ({', '.join(columns)}) FROM STDIN"
                ) as copy:
                    for row in rows:
                        copy.write_row(row)
                transaction.on_commit(lambda: _payouts.put(written))
            if release:
                script = rp._script("release")
                for req in release:
                    script(keys=rp.pool_keys(req.pool_id), args=[str(req.contact_id), str(req.reserved[1])])
    except IntegrityError:
        # A row already there (a rebuild re-put it) or a contact gone: the group is rolled back, each claim is
        # written alone, as the one-claim path would.
        logger.warning("claim group rolled back; writing its claims one by one", extra={"claims": len(fresh)})
        return {i: _alone(requests[i]) for i in fresh}
    return answers


_HOLD_SQL = """
WITH held AS (SELECT id, status FROM crm_redpacketpool WHERE id = ANY(%s) FOR KEY SHARE)
SELECT (SELECT array_agg(ARRAY[id::text, status]) FROM held),
       (SELECT array_agg(id) FROM crm_contact WHERE id = ANY(%s) AND erased_at IS NOT NULL),
       (SELECT array_agg(nextval(%s)) FROM generate_series(1, %s))
"""


@functools.cache
def _sequence() -> str:
    with connection.cursor() as cur:
        cur.execute("SELECT pg_get_serial_sequence(%s, 'id')", [RedPacketClaim._meta.db_table])
        return cur.fetchone()[0]


@functools.cache
def _row_template():
    """(quoted columns, fn(id, pool, contact, amount, billno, now) -> a row's values): every column of the model,
    those a new claim does not set at their defaults, as the ORM would write them (a field added later is covered)."""
    ours = {"id", "pool", "contact", "amount_fen", "billno", "claimed_at"}
    fields = list(RedPacketClaim._meta.concrete_fields)
    defaults = [None if f.name in ours else f.get_db_prep_save(f.get_default(), connection) for f in fields]
    slots = {f.name: n for n, f in enumerate(fields)}
    columns = [connection.ops.quote_name(f.column) for f in fields]
    order = [slots[name] for name in ("id", "pool", "contact", "amount_fen", "billno", "claimed_at")]

    def template(*values):
        row = list(defaults)
        for slot, value in zip(order, values, strict=True):
            row[slot] = value
        return row

    return columns, template


PAYOUT_LINGER_SECONDS = 0.05


class _PayoutPublisher:
    """Queues the committed groups' payouts from a thread of its own: one `pay_claims` message for whatever was
    committed while the previous message was being sent and in the linger after the first. A Celery publish costs
    about as much CPU as writing a group, and the writer need not wait for it. A message lost with the process
    (killed before it was sent) is picked up by the stuck-payout sweep (crm.tasks.redpackets.refund_expired_pools),
    as a lost task is."""

    def __init__(self) -> None:
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def put(self, ids: list[int]) -> None:
        self._queue.put(ids)
        if self._thread is None or not self._thread.is_alive():
            with self._lock:
                if self._thread is None or not self._thread.is_alive():
                    self._thread = threading.Thread(target=self._run, name="claim-payouts", daemon=True)
                    self._thread.start()

    def _run(self) -> None:
        from crm.tasks.redpackets import pay_claims  # tasks import services; this edge is only called at runtime

        while True:
            ids = list(self._queue.get())
            # A publish costs ~0.5 ms of CPU under the GIL the event loop shares, however many ids it carries:
            # waiting a moment lets one message carry a burst's groups (a payout starts 50 ms later, unnoticed).
            time.sleep(PAYOUT_LINGER_SECONDS)
            while True:
                try:
                    ids.extend(self._queue.get_nowait())
                except queue.Empty:
                    break
            try:
                pay_claims.delay(ids)
            except Exception:  # the broker is down: the sweep queues these payouts later
                logger.exception("payouts not queued; the stuck-payout sweep will", extra={"claims": len(ids)})


_payouts = _PayoutPublisher()


def _alone(req: ClaimRequest) -> ClaimAnswer:
    try:
        pool = RedPacketPool.objects.get(id=req.pool_id)
        claim, _created = rp._persist_claim(pool, req.contact_id, req.reserved[1])
    except rp.PoolClosed:
        return ClaimAnswer("expired")
    except rp.ApplicationError as exc:
        if exc.code == "retry":  # a rebuild dropped the reservation meanwhile: the customer taps again
            return ClaimAnswer("retry")
        raise
    except Exception:
        # Give the amount back only when no row holds it (as redpacket_claim does).
        if not RedPacketClaim.objects.filter(pool_id=req.pool_id, contact_id=req.contact_id).exists():
            rp._script("release")(keys=rp.pool_keys(req.pool_id), args=[str(req.contact_id), str(req.reserved[1])])
            return ClaimAnswer("not_found")
        raise
    return ClaimAnswer("claimed", claim.amount_fen, claim.id)
