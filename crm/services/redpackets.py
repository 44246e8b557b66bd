"""Red packets: pool validation and lucky split, activation into Redis, atomic claims, refunds, reconciliation.

Redis holds the live state of an active pool (keys under crm:rp:<pool id>:):
    left     list of the amounts still claimable (the precomputed split, popped from the left)
    claimed  hash contact id -> amount (every reservation ever made)
    state    "open" | "closed"; its absence means "not built" (lost or never built): rebuilt from the DB.
A claim is one Lua script (already claimed? closed? pop an amount, record it), so a customer claims once and
the pool never pays more than its budget, whatever the concurrency: left + claimed == budget always holds.
The DB row (RedPacketClaim, UNIQUE (pool, contact)) is written right after, and committed before the customer is
answered (an acknowledged amount is durable); it is what pays out. One EVALSHA per claim (tests/crm/claims_scale).
"""

from __future__ import annotations

import logging
import secrets
from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import redis
from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.db.models import Q, Sum
from django.utils import timezone
from django.utils.translation import gettext

from crm import redisconn
from crm.errors import ApplicationError, Conflict, NotFound
from crm.models import Contact, RedPacketClaim, RedPacketPool, RedPacketRefund
from crm.models.redpackets import MAX_PACKET_FEN, MIN_PACKET_FEN
from crm.services.claim_expiry import clean_claim_expiry
from crm.services.customer_links import absolute_url, sign_contact, unsign_contact_any
from crm.services.gates import clean_gates, gates_incomplete

SHANGHAI = ZoneInfo("Asia/Shanghai")
KEY_PREFIX = "crm:rp:"
logger = logging.getLogger(__name__)
# Refunded pools stay watched this long after their refund (late payouts, a stray claim).
WATCH_AFTER_REFUND = timedelta(days=1)

_CLAIM_LUA = """
local state = redis.call('GET', KEYS[3])
if not state then return {-4, 0} end
local prev = redis.call('HGET', KEYS[2], ARGV[1])
if prev then return {-1, tonumber(prev)} end
if state ~= 'open' then return {-3, 0} end
local amount = redis.call('LPOP', KEYS[1])
if not amount then return {-2, 0} end
redis.call('HSET', KEYS[2], ARGV[1], amount)
return {1, tonumber(amount)}
"""
# Undo a reservation whose DB row could not be written (only while open, and only if it is still ours).
_RELEASE_LUA = """
if redis.call('GET', KEYS[3]) ~= 'open' then return 0 end
if redis.call('HGET', KEYS[2], ARGV[1]) ~= ARGV[2] then return 0 end
redis.call('HDEL', KEYS[2], ARGV[1])
redis.call('RPUSH', KEYS[1], ARGV[2])
return 1
"""
_CLOSE_LUA = """
if not redis.call('GET', KEYS[3]) then return -1 end
redis.call('SET', KEYS[3], 'closed')
return 1
"""
# One atomic read of the live state: {state, left amounts, claimed hash}.
_SNAPSHOT_LUA = """
return {redis.call('GET', KEYS[3]) or '', redis.call('LRANGE', KEYS[1], 0, -1), redis.call('HGETALL', KEYS[2])}
"""

_redis: redis.Redis | None = None
_redis_url: str | None = None
_scripts: dict[str, object] = {}


def get_redis() -> redis.Redis:
    global _redis, _redis_url
    if _redis is None or _redis_url != settings.REDIS_URL:
        _redis = redisconn.client(settings.REDIS_URL, socket_timeout=5, socket_connect_timeout=5)
        _redis_url = settings.REDIS_URL
        _scripts.clear()
        for name, lua in (("claim", _CLAIM_LUA), ("release", _RELEASE_LUA), ("close", _CLOSE_LUA),
                          ("snapshot", _SNAPSHOT_LUA)):
            _scripts[name] = _redis.register_script(lua)
    return _redis


def _script(name: str):
    get_redis()
    return _scripts[name]


def pool_keys(pool_id: int) -> list[str]:
    base = f"{KEY_PREFIX}{pool_id}:"
    return [base + "left", base + "claimed", base + "state"]


# --- validation and the split ----------------------------------------------------------------------------


MAX_GATE_FRIENDS = 50


def _clean_gate(friends) -> int:
    if not isinstance(friends, int) or isinstance(friends, bool) or not 0 <= friends <= MAX_GATE_FRIENDS:
        raise ApplicationError(f"gate_friends must be 0 (no gate) to {MAX_GATE_FRIENDS}.", field="gate_friends")
    return friends


def _clean_window_and_eligibility(starts_at: datetime | None, expires_at: datetime, eligibility) -> dict:
    from crm.services.segments import segment_validate

    if starts_at is not None and expires_at is not None and starts_at >= expires_at:
        raise ApplicationError("starts_at must be before expires_at.", field="starts_at")
    eligibility = segment_validate(eligibility, field="eligibility") if eligibility else {}
    return {"starts_at": starts_at, "eligibility": eligibility}


def redpacket_pool_validate(
    *, budget_fen: int, count: int, mode: str, min_fen: int | None, max_fen: int | None, expires_at: datetime
) -> tuple[int, int]:
    """The (min_fen, max_fen) a pool will use, or a 400 ApplicationError naming the field at fault."""
    if mode not in RedPacketPool.Mode.values:
        raise ApplicationError("mode must be lucky or fixed.", field="mode")
    if not isinstance(count, int) or count < 1:
        raise ApplicationError("count must be at least 1.", field="count")
    if not isinstance(budget_fen, int) or budget_fen < 1:
        raise ApplicationError("budget_fen must be a positive number of fen.", field="budget_fen")
    if expires_at is None or expires_at <= timezone.now():
        raise ApplicationError("expires_at must be in the future.", field="expires_at")
    if mode == RedPacketPool.Mode.FIXED:
        if budget_fen % count:
            raise ApplicationError("A fixed pool's budget must divide evenly by count.", field="budget_fen")
        amount = budget_fen // count
        if not MIN_PACKET_FEN <= amount <= MAX_PACKET_FEN:
            raise ApplicationError(
                f"Each packet would be {amount} fen; it must be within {MIN_PACKET_FEN}..{MAX_PACKET_FEN}.",
                field="budget_fen",
            )
        return amount, amount
    min_fen = MIN_PACKET_FEN if min_fen is None else min_fen
    max_fen = MAX_PACKET_FEN if max_fen is None else max_fen
    if not MIN_PACKET_FEN <= min_fen <= MAX_PACKET_FEN:
        raise ApplicationError(f"min_fen must be within {MIN_PACKET_FEN}..{MAX_PACKET_FEN}.", field="min_fen")
    if not MIN_PACKET_FEN <= max_fen <= MAX_PACKET_FEN:
        raise ApplicationError(f"max_fen must be within {MIN_PACKET_FEN}..{MAX_PACKET_FEN}.", field="max_fen")
    if min_fen > max_fen:
        raise ApplicationError("min_fen must not exceed max_fen.", field="min_fen")
    if budget_fen < count * min_fen:
        raise ApplicationError("budget_fen is below count x min_fen.", field="budget_fen")
    if budget_fen > count * max_fen:
        raise ApplicationError("budget_fen is above count x max_fen.", field="budget_fen")
    return min_fen, max_fen


def lucky_split(budget_fen: int, count: int, min_fen: int, max_fen: int) -> list[int]:
    """`count` random amounts, each within [min_fen, max_fen], summing exactly to budget_fen."""
    if not count * min_fen <= budget_fen <= count * max_fen:
        raise ValueError("budget cannot be split within the bounds")
    rng = secrets.SystemRandom()
    cap = max_fen - min_fen
    rest = budget_fen - count * min_fen
    extra = [0] * count
    if rest and cap:
        weights = [rng.random() + 1e-9 for _ in range(count)]
        total = sum(weights)
        extra = [min(cap, int(rest * w / total)) for w in weights]
        left = rest - sum(extra)
        while left > 0:  # hand out what flooring and capping left over, to random packets with room
            room = [i for i in range(count) if extra[i] < cap]
            rng.shuffle(room)
            share = max(1, left // len(room))
            for i in room:
                give = min(cap - extra[i], share, left)
                extra[i] += give
                left -= give
                if not left:
                    break
    return [min_fen + e for e in extra]


def pool_split(pool: RedPacketPool) -> list[int]:
    if pool.mode == RedPacketPool.Mode.FIXED:
        return [pool.budget_fen // pool.count] * pool.count
    return lucky_split(pool.budget_fen, pool.count, pool.min_fen, pool.max_fen)


# --- pool lifecycle ----------------------------------------------------------------------------------------


@transaction.atomic
def redpacket_pool_create(
    *,
    campaign_id: int | None,
    budget_fen: int,
    count: int,
    mode: str = RedPacketPool.Mode.LUCKY,
    min_fen: int | None = None,
    max_fen: int | None = None,
    expires_at: datetime,
    act_name: str = "Red packet",
    wishing: str = "Thank you!",
    sender_name: str = "Our brand",
    created_by=None,
    starts_at: datetime | None = None,
    eligibility: dict | None = None,
    gate_friends: int = 0,
    gate_game: bool = False,
    gate_purchase_fen: int = 0,
    gate_channel=None,
    claim_expiry_hours: int = 24,
) -> RedPacketPool:
    min_fen, max_fen = redpacket_pool_validate(
        budget_fen=budget_fen, count=count, mode=mode, min_fen=min_fen, max_fen=max_fen, expires_at=expires_at
    )
    window = _clean_window_and_eligibility(starts_at, expires_at, eligibility)
    window["gate_friends"] = _clean_gate(gate_friends)
    window.update(clean_gates(gate_game=gate_game, gate_purchase_fen=gate_purchase_fen, gate_channel=gate_channel))
    window["claim_expiry_hours"] = clean_claim_expiry(claim_expiry_hours)
    if campaign_id is not None and RedPacketPool.objects.filter(campaign_id=campaign_id).exists():
        raise ApplicationError("This campaign already has a red-packet pool.", field="campaign", code="conflict")
    return RedPacketPool.objects.create(
        campaign_id=campaign_id,
        budget_fen=budget_fen,
        count=count,
        mode=mode,
        min_fen=min_fen,
        max_fen=max_fen,
        expires_at=expires_at,
        act_name=act_name[:32],
        wishing=wishing[:128],
        sender_name=sender_name[:128],
        created_by=created_by if created_by is not None and created_by.is_authenticated else None,
        **window,
    )


POOL_EDITABLE_FIELDS = frozenset({"budget_fen", "count", "mode", "min_fen", "max_fen", "expires_at", "act_name",
                                   "wishing", "sender_name", "starts_at", "eligibility", "gate_friends",
                                   "gate_game", "gate_purchase_fen", "gate_channel", "claim_expiry_hours"})


@transaction.atomic
def redpacket_pool_update(pool_id: int, **fields) -> RedPacketPool:
    """Edit a draft pool. Once active its budget, count and bounds are what Redis and the ledger of claims hold
    (budget = paid + pending + refunded + claimable), so they never change again."""
    pool = RedPacketPool.objects.select_for_update().filter(id=pool_id).first()
    if pool is None:
        raise NotFound("No such red-packet pool.", field="pool")
    if pool.status != RedPacketPool.Status.DRAFT:
        raise Conflict(f"A {pool.status} pool cannot be changed.", field="status")
    unknown = sorted(set(fields) - POOL_EDITABLE_FIELDS)
    if unknown:
        raise ApplicationError(f"{unknown[0]} cannot be changed.", field=unknown[0])
    # A draw's red-packet prize pool is amount x winners of its prize: its money follows the prize, not an edit.
    money = sorted(name for name in ("budget_fen", "count", "mode", "min_fen", "max_fen")
                   if name in fields and fields[name] != getattr(pool, name))  # fmt: skip
    if pool.draw_prize_id is not None and money:
        raise Conflict(gettext("This pool is a lucky draw's prize: its amount follows the prize."), field=money[0],
                       code="draw_prize_pool")  # fmt: skip
    merged = {name: fields.get(name, getattr(pool, name)) for name in POOL_EDITABLE_FIELDS - {"gate_channel"}}
    merged["gate_channel"] = fields.get("gate_channel", pool.gate_channel_id)
    pool.min_fen, pool.max_fen = redpacket_pool_validate(
        budget_fen=merged["budget_fen"], count=merged["count"], mode=merged["mode"], min_fen=merged["min_fen"],
        max_fen=merged["max_fen"], expires_at=merged["expires_at"],
    )
    window = _clean_window_and_eligibility(merged["starts_at"], merged["expires_at"], merged["eligibility"])
    pool.starts_at, pool.eligibility = window["starts_at"], window["eligibility"]
    pool.gate_friends = _clean_gate(merged["gate_friends"])
    for name, value in clean_gates(gate_game=merged["gate_game"], gate_purchase_fen=merged["gate_purchase_fen"],
                                   gate_channel=merged["gate_channel"]).items():  # fmt: skip
        setattr(pool, name, value)
    pool.claim_expiry_hours = clean_claim_expiry(merged["claim_expiry_hours"])
    if merged["budget_fen"] != pool.budget_fen:
        pool.approved_by, pool.approved_at = None, None  # the approval was for another budget
    for name in ("budget_fen", "count", "mode", "expires_at"):
        setattr(pool, name, merged[name])
    pool.act_name, pool.wishing, pool.sender_name = (
        merged["act_name"][:32], merged["wishing"][:128], merged["sender_name"][:128]
    )
    pool.amounts = []  # the split is made at activation, from these figures
    pool.save()
    return pool


def redpacket_pool_needs_approval(pool: RedPacketPool) -> bool:
    """Over the threshold and not approved yet: it may not go live."""
    return pool.budget_fen > settings.REDPACKET_APPROVAL_THRESHOLD_FEN and pool.approved_by_id is None


@transaction.atomic
def redpacket_pool_approve(pool_id: int, *, approver) -> RedPacketPool:
    """A second admin approves a draft pool over the threshold: recorded (who, when). 403 without the
    permission or for the pool's own creator; 409 for a pool that is not a draft. Idempotent for the approver."""
    pool = RedPacketPool.objects.select_for_update().filter(id=pool_id).first()
    if pool is None:
        raise NotFound("No such red-packet pool.", field="pool")
    if approver is None or not approver.is_authenticated or not approver.has_perm("crm.approve_redpacketpool"):
        raise ApplicationError(gettext("Only an admin may approve a red-packet pool."), code="forbidden",
                               field="approved_by", status_code=403)  # fmt: skip
    if pool.approved_by_id is not None:
        return pool
    if pool.status != RedPacketPool.Status.DRAFT:
        raise Conflict(f"A {pool.status} pool cannot be approved.", field="status")
    if pool.created_by_id is not None and pool.created_by_id == approver.pk:
        raise ApplicationError(gettext("A second admin must approve: not the pool's own creator."),
                               code="same_person", field="approved_by", status_code=403)  # fmt: skip
    pool.approved_by, pool.approved_at = approver, timezone.now()
    pool.save(update_fields=["approved_by", "approved_at"])
    logger.info("red-packet pool approved", extra={"pool_id": pool.id, "approved_by": approver.pk})
    return pool


def redpacket_pool_activate(pool_id: int) -> RedPacketPool:
    """Precompute the split (once; kept in the DB) and build the pool's Redis state. Idempotent. 409
    (approval_required) for a draft over the approval threshold that no second admin approved."""
    with transaction.atomic():
        pool = RedPacketPool.objects.select_for_update().defer(None).get(id=pool_id)
        if pool.status == RedPacketPool.Status.DRAFT and redpacket_pool_needs_approval(pool):
            raise Conflict(
                gettext("This red-packet pool's budget needs a second admin's approval before it can go live."),
                code="approval_required", field="approved_by",
            )  # fmt: skip
        if pool.status == RedPacketPool.Status.DRAFT:
            if not pool.amounts:
                pool.amounts = pool_split(pool)
                assert sum(pool.amounts) == pool.budget_fen and len(pool.amounts) == pool.count
            pool.status = RedPacketPool.Status.ACTIVE
            pool.activated_at = timezone.now()
            pool.save(update_fields=["amounts", "status", "activated_at"])
    redpacket_state_ensure(pool.id)
    return pool


def redpacket_state_ensure(pool_id: int, *, force: bool = False) -> bool:
    """Rebuild the pool's Redis state from the DB when it is missing (Redis lost, flushed, expired).

    Left = the precomputed split minus the amounts of the claims in the DB (a multiset difference); claimed =
    those claims. Serialised by a Redis lock and the pool row lock. True when it (re)built."""
    r = get_redis()
    left_key, claimed_key, state_key = pool_keys(pool_id)
    if r.exists(state_key) and not force:
        return False
    with r.lock(f"{KEY_PREFIX}{pool_id}:rebuild-lock", timeout=30, blocking_timeout=30), transaction.atomic():
        if r.exists(state_key) and not force:
            return False
        pool = RedPacketPool.objects.select_for_update().defer(None).get(id=pool_id)  # the split, too
        if pool.status == RedPacketPool.Status.DRAFT or not pool.amounts:
            return False
        claims = dict(RedPacketClaim.objects.filter(pool=pool).values_list("contact_id", "amount_fen"))
        remaining = Counter(pool.amounts)
        remaining.subtract(Counter(claims.values()))
        left = []
        if pool.status == RedPacketPool.Status.ACTIVE:
            # Keep the precomputed order for what is left, so the sequence stays the planned random one.
            for amount in pool.amounts:
                if remaining[amount] > 0:
                    left.append(amount)
                    remaining[amount] -= 1
        state = "open" if pool.status == RedPacketPool.Status.ACTIVE and pool.expires_at > timezone.now() else "closed"
        pipe = r.pipeline(transaction=True)
        pipe.delete(left_key, claimed_key, state_key)
        if left:
            pipe.rpush(left_key, *left)
        if claims:
            pipe.hset(claimed_key, mapping={str(k): v for k, v in claims.items()})
        pipe.set(state_key, state)
        keep_until = pool.expires_at + timedelta(days=30)
        for key in (left_key, claimed_key, state_key):
            pipe.expireat(key, keep_until)
        pipe.execute()
    return True


# --- claims ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ClaimOutcome:
    """What a customer's claim came to: status is claimed | already_claimed | none_left | expired | not_started."""

    status: str
    amount_fen: int = 0
    claim_id: int | None = None

    @property
    def ok(self) -> bool:
        return self.status in ("claimed", "already_claimed")


def billno_prefix(claimed_at: datetime) -> str:
    """make_billno without the claim id: what every claim of that Shanghai day shares (claim groups use it)."""
    day = timezone.localtime(claimed_at, SHANGHAI).strftime("%Y%m%d")
    return "".join(ch for ch in settings.WECOM_MCH_ID if ch.isalnum())[:10] + day


def make_billno(claim: RedPacketClaim) -> str:
    """mch_id (10) + Shanghai date of the claim (8) + claim id (10): <= 28 of [0-9a-zA-Z], unique, deterministic."""
    return f"{billno_prefix(claim.claimed_at)}{claim.id % 10**10:010d}"


class PoolClosed(Exception):
    """The pool was refunded (or cancelled) while this claim was being written: it gets no packet."""


def _hold_pool(pool_id: int) -> str | None:
    """The pool's status, read under a KEY SHARE lock held to the end of the claim's transaction (PostgreSQL).

    A Redis rebuild and a refund lock the pool row FOR UPDATE before they read the claims: they wait for every
    claim already past this point to commit (so they see its row), and a claim arriving meanwhile waits for them
    (and then sees their Redis state and the pool's new status). Without it a rebuild could read the claims
    while one was still uncommitted and put that amount back into the pool: over budget by one packet. Claims
    do not block each other (KEY SHARE locks share)."""
    if connection.vendor != "postgresql":
        return RedPacketPool.objects.filter(id=pool_id).values_list("status", flat=True).first()
    with connection.cursor() as cur:
        cur.execute("SELECT status FROM crm_redpacketpool WHERE id = %s FOR KEY SHARE", [pool_id])
        row = cur.fetchone()
    return row[0] if row else None


def _persist_claim(pool: RedPacketPool, contact_id: int, amount: int, *, fresh: bool = False) -> tuple[
        RedPacketClaim, bool]:
    """Write the claim row for a Redis reservation (or find it); payout queued on commit, and committed before the
    customer is answered. PoolClosed when the pool stopped being active before the row could be written (its
    reservation was refunded with it). fresh: the Lua call just reserved it, so no row can exist yet (a rebuild
    puts every DB row into `claimed`): one query less on the hot path; the unique constraint still decides."""
    from crm.tasks.redpackets import pay_claim  # tasks import services; this edge is only called at runtime

    existing = None if fresh else RedPacketClaim.objects.filter(pool=pool, contact_id=contact_id).first()
    if existing:
        return existing, False
    r = get_redis()
    claimed_key = pool_keys(pool.id)[1]
    try:
        with transaction.atomic():
            if _hold_pool(pool.id) != RedPacketPool.Status.ACTIVE:
                raise PoolClosed
            claim = RedPacketClaim.objects.create(pool=pool, contact_id=contact_id, amount_fen=amount)
            claim.billno = make_billno(claim)
            claim.save(update_fields=["billno"])
            # The reservation must still be ours (a Redis rebuild from the DB in between would have dropped it).
            held = r.hget(claimed_key, str(contact_id))
            if held is None or int(held) != amount:
                raise ApplicationError(gettext("Please try again."), code="retry", status_code=409)
            # robust: a broker hiccup must not fail a committed claim (the beat sweeper re-queues stuck payouts).
            transaction.on_commit(lambda: pay_claim.delay(claim.id), robust=True)
        return claim, True
    except IntegrityError:
        return RedPacketClaim.objects.get(pool=pool, contact_id=contact_id), False


def redpacket_claim(*, pool_id: int, contact_id: int) -> ClaimOutcome:
    """Claim this contact's packet: atomic in Redis (once per contact, never over budget), then persisted."""
    pool = RedPacketPool.objects.filter(id=pool_id).first()
    if pool is None:
        raise NotFound("No such red-packet pool.", field="pool")
    if not Contact.objects.filter(id=contact_id, erased_at__isnull=True).exists():  # erased: an old link/session
        raise NotFound("No such customer.", field="contact")
    if pool.status == RedPacketPool.Status.DRAFT:
        return ClaimOutcome("not_started")
    left_key, claimed_key, state_key = pool_keys(pool.id)
    if pool.status != RedPacketPool.Status.ACTIVE or pool.expires_at <= timezone.now():
        existing = RedPacketClaim.objects.filter(pool=pool, contact_id=contact_id).first()
        if existing:
            return ClaimOutcome("already_claimed", existing.amount_fen, existing.id)
        return ClaimOutcome("expired")
    refusal = redpacket_claim_refusal(pool, contact_id)
    if refusal:
        return ClaimOutcome(refusal)
    for _ in range(2):
        code, amount = _script("claim")(keys=[left_key, claimed_key, state_key], args=[str(contact_id)])
        if code == -4:  # Redis state lost or never built: rebuild from the DB and try once more
            redpacket_state_ensure(pool.id)
            continue
        break
    else:
        raise ApplicationError(gettext("Red packets are not available right now."), code="unavailable", status_code=503)
    if code == -2:
        return ClaimOutcome("none_left")
    if code == -3:
        return ClaimOutcome("expired")
    try:
        # Also for code -1: the DB row may be missing when an earlier attempt died between Redis and the DB;
        # writing it now finishes that claim instead of leaving the amount stranded in flight.
        claim, _created = _persist_claim(pool, contact_id, int(amount), fresh=code == 1)
    except PoolClosed:
        return ClaimOutcome("expired")
    except Exception:
        # Give the amount back only when no row holds it; a committed row keeps its reservation.
        if code == 1 and not RedPacketClaim.objects.filter(pool=pool, contact_id=contact_id).exists():
            _script("release")(keys=[left_key, claimed_key, state_key], args=[str(contact_id), str(int(amount))])
        raise
    # "claimed" for the request whose Lua call reserved the amount, whoever wrote the row.
    return ClaimOutcome("claimed" if code == 1 else "already_claimed", claim.amount_fen, claim.id)


# --- claim links ---------------------------------------------------------------------------------------------


ELIGIBLE_CACHE_SECONDS = 60


def redpacket_claim_refusal(pool: RedPacketPool, contact_id: int) -> str | None:
    """Why this contact may not claim from an active pool yet: not_started (before starts_at), not_member (a
    group packet's or a members-only pool's outsider), not_eligible (outside its eligibility, or not a winner of a
    draw's prize pool), locked (a gate not passed: crm.services.gates); None when they may. The claim and the
    customer's page both ask this."""
    if pool.starts_at is not None and pool.starts_at > timezone.now():
        return "not_started"
    if pool.group_id is not None:  # a group packet: present members of the group only (at open time, uncached)
        from crm.services.group_packets import group_packet_refusal

        refusal = group_packet_refusal(pool, contact_id)
        if refusal:
            return refusal
    if pool.draw_prize_id is not None and not _is_prize_winner(pool, contact_id):
        return "not_eligible"  # a draw's red-packet prize: its winners only (claimed for them at fulfilment)
    if not redpacket_eligible(pool, contact_id):
        return "not_member" if _outside_required_groups(pool.eligibility, contact_id) else "not_eligible"
    if gates_incomplete(pool, contact_id):
        return "locked"
    return None


def _is_prize_winner(pool: RedPacketPool, contact_id: int) -> bool:
    from crm.models import GroupDrawWinner

    return GroupDrawWinner.objects.filter(prize_id=pool.draw_prize_id, entry__contact_id=contact_id).exists()


GROUP_FIELDS = ("group", "vip_group")


def _outside_required_groups(eligibility: dict, contact_id: int) -> bool:
    """A members-only pool (its eligibility requires a customer group's membership, alone or ANDed with more) and
    this contact is not a present member: the page says "members only" rather than "for other customers"."""
    from crm.services.segments import resolve

    conditions = eligibility.get("all") if isinstance(eligibility.get("all"), list) else [eligibility]
    required = [c for c in conditions if isinstance(c, dict) and c.get("field") in GROUP_FIELDS]
    return any(not resolve(c).filter(pk=contact_id).exists() for c in required)


def redpacket_eligible(pool: RedPacketPool, contact_id: int) -> bool:
    """Whether the contact meets the pool's eligibility (its segment definition). Each answer is kept in Redis for
    ELIGIBLE_CACHE_SECONDS: a burst of taps by one customer evaluates it once. Someone who has claimed already
    stays eligible (their packet is theirs)."""
    if not pool.eligibility:
        return True
    from crm.services.segments import resolve

    key = f"{KEY_PREFIX}{pool.id}:eligible:{contact_id}"
    r = get_redis()
    cached = r.get(key)
    if cached is not None:
        return cached == b"1"
    eligible = (
        resolve(pool.eligibility).filter(pk=contact_id).exists()
        or RedPacketClaim.objects.filter(pool=pool, contact_id=contact_id).exists()
    )
    r.set(key, b"1" if eligible else b"0", ex=ELIGIBLE_CACHE_SECONDS)
    return eligible


def claim_purpose(pool_id: int) -> str:
    return f"rp:{pool_id}"


def claim_url(pool_id: int, contact_id: int) -> str:
    """The customer's own claim page (the signed token identifies them and the pool)."""
    return absolute_url(f"/m/rp/{sign_contact(contact_id, claim_purpose(pool_id))}/")


def parse_object_token(token: str, prefix: str) -> tuple[int, int]:
    """(object id, contact id) from a token signed for purpose "<prefix>:<id>"; a 403 ApplicationError otherwise.
    Verified first, then read once (the claim server's every claim goes through here)."""
    contact_id, purpose = unsign_contact_any(token)
    kind, _, object_id = purpose.partition(":")
    if kind != prefix or not object_id.isdigit() or not int(object_id):
        raise ApplicationError(gettext("This link is not valid here."), code="bad_link", field="token",
                               status_code=403)
    return int(object_id), contact_id


def parse_claim_token(token: str) -> tuple[int, int]:
    """(pool_id, contact_id) from a claim token, verified; a 403 ApplicationError when it is not valid."""
    return parse_object_token(token, "rp")


# --- expiry, refund, reconciliation ------------------------------------------------------------------------


def redpacket_refund_expired(pool_id: int) -> RedPacketRefund | None:
    """Close an expired pool and refund what is left unclaimed (one Refund row per pool). Idempotent."""
    pool = RedPacketPool.objects.get(id=pool_id)
    if pool.status == RedPacketPool.Status.DRAFT:
        raise Conflict("This pool has not been launched; nothing to refund.", field="status")
    if pool.status != RedPacketPool.Status.ACTIVE:
        return RedPacketRefund.objects.filter(pool=pool).first()
    if pool.expires_at > timezone.now():
        raise ApplicationError("This pool has not expired yet.", field="expires_at", code="not_expired")
    redpacket_state_ensure(pool.id)
    r = get_redis()
    left_key, claimed_key, state_key = pool_keys(pool.id)
    # Closed first, so no claim can pop an amount while we count what is left; the list stays until commit.
    _script("close")(keys=[left_key, claimed_key, state_key], args=[])
    with transaction.atomic():
        # FOR UPDATE waits for the claims being written (see _hold_pool): the rows read below are all there are,
        # and a claim still to come finds the pool refunded and writes none.
        pool = RedPacketPool.objects.select_for_update().get(id=pool_id)
        if pool.status != RedPacketPool.Status.ACTIVE:
            return RedPacketRefund.objects.filter(pool=pool).first()
        left = [int(a) for a in r.lrange(left_key, 0, -1)]
        # Reserved in Redis with no row: a claim whose process died before writing it (the customer never saw an
        # amount). Refunded with the rest, or they would stay reserved forever, neither paid nor refunded.
        rows = set(RedPacketClaim.objects.filter(pool=pool).values_list("contact_id", flat=True))
        stranded = {str(int(c)): int(a) for c, a in r.hgetall(claimed_key).items() if int(c) not in rows}
        refund = RedPacketRefund.objects.create(
            pool=pool,
            amount_fen=sum(left) + sum(stranded.values()),
            packets=len(left) + len(stranded),
            reserved=stranded,
        )
        pool.status = RedPacketPool.Status.REFUNDED
        pool.save(update_fields=["status"])
    r.delete(left_key)
    redpacket_reconcile_record(pool_id)  # at expiry: the final account, and an alert if it does not balance
    return refund


def redpacket_refund_all_expired() -> list[int]:
    """Refund every active pool past its expiry; the ids refunded."""
    done = []
    for pool_id in RedPacketPool.objects.filter(
        status=RedPacketPool.Status.ACTIVE, expires_at__lte=timezone.now()
    ).values_list("id", flat=True):
        if redpacket_refund_expired(pool_id) is not None:
            done.append(pool_id)
    return done


def redpacket_reconcile(pool_id: int) -> dict:
    """budget = paid + pending + refunded + claimable, from the DB and Redis.

    pending is what is claimed but not paid yet: queued + paying + failed (a failed payout is retried or
    settled by hand, the money is still owed) + in_flight, amounts reserved in Redis whose DB row is not written
    yet (a claim in progress, or one whose process died; the customer opening the page again finishes it)."""
    pool = RedPacketPool.objects.filter(id=pool_id).first()
    if pool is None:
        raise NotFound("No such red-packet pool.", field="pool")
    # The DB first, then Redis: every DB claim is then also in the (later) Redis snapshot.
    by_status = dict(
        RedPacketClaim.objects.filter(pool=pool).values("status").annotate(s=Sum("amount_fen")).values_list(
            "status", "s"
        )
    )
    db_claims = dict(RedPacketClaim.objects.filter(pool=pool).values_list("contact_id", "amount_fen"))
    refund = RedPacketRefund.objects.filter(pool=pool).first()
    refunded = refund.amount_fen if refund else 0
    claimed_db = sum(db_claims.values())
    if pool.status == RedPacketPool.Status.DRAFT:
        claimable, in_flight, mismatched, state = pool.budget_fen, 0, 0, "draft"
    else:
        redpacket_state_ensure(pool.id)
        state_raw, left, flat = _script("snapshot")(keys=pool_keys(pool.id), args=[])
        state = state_raw.decode() if isinstance(state_raw, bytes) else str(state_raw)
        reserved = {int(flat[i]): int(flat[i + 1]) for i in range(0, len(flat), 2)}
        claimable = 0 if refund else sum(int(a) for a in left)
        # Reservations with no row that the refund took back are settled, whatever Redis still holds.
        settled = {int(c) for c in refund.reserved} if refund else set()
        in_flight = sum(a for c, a in reserved.items() if c not in db_claims and c not in settled)
        mismatched = sum(1 for c, a in db_claims.items() if reserved.get(c) != a)
    paid = by_status.get(RedPacketClaim.Status.PAID, 0) or 0
    # Claims not paid within the pool's claim expiry went back to the budget (crm.services.claim_expiry).
    expired = by_status.get(RedPacketClaim.Status.EXPIRED, 0) or 0
    refunded += expired
    paying = by_status.get(RedPacketClaim.Status.PAYING, 0) or 0
    queued = by_status.get(RedPacketClaim.Status.RECEIVED, 0) or 0
    failed = by_status.get(RedPacketClaim.Status.FAILED, 0) or 0
    pending = paying + queued + failed + in_flight
    total = paid + pending + refunded + claimable
    return {
        "pool_id": pool.id,
        "status": pool.status,
        "redis_state": state,
        "budget_fen": pool.budget_fen,
        "paid_fen": paid,
        "pending_fen": pending,
        "paying_fen": paying,
        "queued_fen": queued,
        "failed_fen": failed,
        "refunded_fen": refunded,
        "expired_claims_fen": expired,
        "claimable_fen": claimable,
        "in_flight_fen": in_flight,
        # The terms: budget = paid + paying + failed + refunded + reserved + claimable.
        "reserved_fen": queued + in_flight,
        "claimed_fen": claimed_db,
        "claims": len(db_claims),
        "mismatched_claims": mismatched,
        "total_fen": total,
        "balanced": total == pool.budget_fen and mismatched == 0,
    }


def redpacket_reconcile_record(pool_id: int) -> dict | None:
    """Reconcile one pool and keep the result on it; an imbalance is logged at ERROR (with the report). None when
    Redis cannot be read (not a money difference: the check runs again at the next beat)."""
    try:
        report = redpacket_reconcile(pool_id)
    except redis.RedisError:
        logger.warning("red-packet reconciliation skipped: Redis unavailable", extra={"pool_id": pool_id})
        return None
    difference = report["total_fen"] - report["budget_fen"]
    RedPacketPool.objects.filter(id=pool_id).update(
        reconciled_at=timezone.now(), reconcile_balanced=report["balanced"], reconcile_difference_fen=difference
    )
    if not report["balanced"]:
        logger.error(
            "red-packet pool %s out of balance by %s fen", pool_id, difference,
            extra={"pool_id": pool_id, "difference_fen": difference, "report": report},
        )  # fmt: skip
    return report


def redpacket_pools_to_watch() -> list[int]:
    """Live pools, pools refunded in the last WATCH_AFTER_REFUND, and any whose last check did not balance."""
    since = timezone.now() - WATCH_AFTER_REFUND
    return list(
        RedPacketPool.objects.filter(
            Q(status=RedPacketPool.Status.ACTIVE)
            | Q(status=RedPacketPool.Status.REFUNDED, refund__created_at__gte=since)
            | Q(reconcile_balanced=False)
        )
        .order_by("id")
        .values_list("id", flat=True)
        .distinct()
    )


def redpacket_reconcile_watched() -> dict:
    """Beat: reconcile every watched pool; {"checked": n, "unbalanced": [pool ids]}."""
    unbalanced, checked = [], 0
    for pool_id in redpacket_pools_to_watch():
        report = redpacket_reconcile_record(pool_id)
        if report is not None:
            checked += 1
            if not report["balanced"]:
                unbalanced.append(pool_id)
    return {"checked": checked, "unbalanced": unbalanced}
