"""Provably fair lucky draws in customer groups: create, open (commit), enter, close, reveal (winners), fulfil.

The winner function (`draw_winners`) is pure and documented in docs/lucky-draws.md so anyone can recompute it from
the revealed seed and the published sorted entry list. crm does not import loyalty: coupon and points prizes are
fulfilled through hooks loyalty registers (`register_prize_hook`), as crm/services/push_hooks.py does for coupons."""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
from collections.abc import Callable
from datetime import datetime, timedelta

from django.db import IntegrityError, transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from crm.audit import audit_action
from crm.errors import ApplicationError, Conflict, NotFound
from crm.models import (
    Contact,
    CustomerGroup,
    GroupDraw,
    GroupDrawAnnouncement,
    GroupDrawEntry,
    GroupDrawPrize,
    GroupDrawWinner,
    GroupMember,
    RedPacketClaim,
    RedPacketPool,
)
from crm.models.redpackets import MAX_PACKET_FEN, MIN_PACKET_FEN
from crm.services.claim_expiry import MAX_CLAIM_EXPIRY_HOURS

logger = logging.getLogger(__name__)
# A red-packet prize's pool stays open this long after the draw closes (or after a late reveal) for its winners'
# claims to be made and retried; what no winner took (fewer entries than winners) is refunded at its expiry.
PRIZE_CLAIM_WINDOW = timedelta(days=7)

# (prize, contact_id, idempotency_key) -> reference of what was granted (coupon code, ledger id)
PrizeHook = Callable[[GroupDrawPrize, int, str], str]
_prize_hooks: dict[str, PrizeHook] = {}


def register_prize_hook(kind: str, hook: PrizeHook) -> None:
    """loyalty registers the coupon and points fulfilment from its AppConfig.ready() (replacing by kind)."""
    _prize_hooks[kind] = hook


# --- the public function --------------------------------------------------------------------------------------


def commitment_of(seed: bytes) -> str:
    return hashlib.sha256(seed).hexdigest()


def draw_winners(seed: bytes, entry_ids: list[str], count: int) -> list[str]:
    """The winners in draw order: entries sorted; for i in 0..count-1, HMAC-SHA256(seed, str(i)) as a big-endian
    integer modulo the number still in the list picks the next winner, who is removed (Fisher-Yates style)."""
    remaining = sorted(entry_ids)
    winners = []
    for i in range(min(count, len(remaining))):
        digest = hmac.new(seed, str(i).encode("ascii"), hashlib.sha256).digest()
        winners.append(remaining.pop(int.from_bytes(digest, "big") % len(remaining)))
    return winners


def draw_verify_export(data: dict) -> dict:
    """Check an export (draw_export's shape) without the DB: the seed matches the commitment and the winners are
    those the function gives for the sorted entries."""
    seed = bytes.fromhex(data["seed"])
    count = sum(p["winners"] for p in data["prizes"])
    recomputed = draw_winners(seed, data["entries"], count)
    commitment_ok = commitment_of(seed) == data["commitment"]
    winners_ok = recomputed == data["winners"]
    return {"commitment_ok": commitment_ok, "winners_ok": winners_ok, "recomputed": recomputed,
            "matches": commitment_ok and winners_ok}


# --- writes ---------------------------------------------------------------------------------------------------


@transaction.atomic
def draw_create(*, name: str, group_ids: list[int], opens_at: datetime, closes_at: datetime, prizes: list[dict],
                user=None) -> GroupDraw:
    if not name.strip():
        raise ApplicationError(_("A draw needs a name."), code="required", field="name")
    if closes_at <= opens_at:
        raise ApplicationError(_("The draw must close after it opens."), code="closes_before_opens", field="closes_at")
    groups = list(CustomerGroup.objects.filter(pk__in=group_ids, status=CustomerGroup.Status.ACTIVE))
    if not group_ids or len(groups) != len(set(group_ids)):
        raise ApplicationError(_("Choose one or more active customer groups."), code="unknown_group", field="groups")
    if not prizes:
        raise ApplicationError(_("A draw needs at least one prize."), code="required", field="prizes")
    draw = GroupDraw.objects.create(name=name.strip(), opens_at=opens_at, closes_at=closes_at, created_by=user)
    draw.groups.set(groups)
    for position, prize in enumerate(prizes):
        kind = prize.get("kind")
        value_field = {"coupon": "reward_id", "points": "points", "red_packet": "amount_fen"}.get(kind)
        if value_field is None:
            raise ApplicationError(_("Unknown prize kind."), code="unknown_prize_kind", field=f"prizes.{position}.kind")
        value = prize.get(value_field)
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ApplicationError(_("Give a positive whole number."), code="invalid",
                                   field=f"prizes.{position}.{value_field}")
        winners = prize.get("winners", 1)
        if not isinstance(winners, int) or winners < 1:
            raise ApplicationError(_("Give a positive whole number."), code="invalid",
                                   field=f"prizes.{position}.winners")
        if kind == GroupDrawPrize.Kind.RED_PACKET and not MIN_PACKET_FEN <= value <= MAX_PACKET_FEN:
            raise ApplicationError(
                _("A red packet is %(min)s to %(max)s fen (WeChat Pay's limits).") % {"min": MIN_PACKET_FEN,
                                                                                      "max": MAX_PACKET_FEN},
                code="out_of_range", field=f"prizes.{position}.amount_fen")  # fmt: skip
        row = GroupDrawPrize.objects.create(draw=draw, position=position, kind=kind, winners=winners,
                                            **{value_field: value})
        if kind == GroupDrawPrize.Kind.RED_PACKET:
            _prize_pool_create(draw, row, user)
    return draw


def _prize_pool_create(draw: GroupDraw, prize: GroupDrawPrize, user) -> RedPacketPool:
    """The red-packet prize's money as a pool: amount x winners, fixed split, made with the draw so the budget is
    known (and approved over the threshold) before anyone enters. It stays a draft until fulfilment activates it."""
    from crm.services.redpackets import redpacket_pool_create

    # claim_expiry_hours at its longest: a won prize's payout gets the most time to be retried before its claim
    # would be refunded (crm.services.claim_expiry).
    pool = redpacket_pool_create(
        campaign_id=None, budget_fen=prize.amount_fen * prize.winners, count=prize.winners,
        mode=RedPacketPool.Mode.FIXED, min_fen=prize.amount_fen, max_fen=prize.amount_fen,
        expires_at=draw.closes_at + PRIZE_CLAIM_WINDOW, act_name=draw.name[:32], wishing=draw.name[:128],
        created_by=user, claim_expiry_hours=MAX_CLAIM_EXPIRY_HOURS,
    )  # fmt: skip
    pool.draw_prize = prize
    pool.save(update_fields=["draw_prize"])
    return pool


def draw_prize_pools(draw_id: int) -> list[RedPacketPool]:
    return list(RedPacketPool.objects.filter(draw_prize__draw_id=draw_id).order_by("draw_prize__position"))


def _locked(draw_id: int) -> GroupDraw:
    draw = GroupDraw.objects.select_for_update().filter(pk=draw_id).first()
    if draw is None:
        raise NotFound(_("No such draw."), code="unknown_draw", field="draw")
    return draw


def _announce(draw: GroupDraw, kind: str, text: str) -> GroupDrawAnnouncement:
    """The announcement row (unique per draw and kind), sent on commit by the task."""
    row, _created = GroupDrawAnnouncement.objects.get_or_create(
        draw=draw, kind=kind, defaults={"idempotency_key": f"draw:{draw.pk}:{kind}", "text": text})
    from crm.tasks.draws import send_draw_announcement

    transaction.on_commit(lambda: send_draw_announcement.delay(row.pk))
    return row


@transaction.atomic
def draw_open(draw_id: int) -> GroupDraw:
    """Make the secret seed, store it and its commitment, and announce the commitment in the draw's groups."""
    draw = _locked(draw_id)
    if draw.status != GroupDraw.Status.DRAFT:
        raise Conflict(_("This draw is already open."), code="not_draft", field="status")
    if timezone.now() >= draw.closes_at:
        raise ApplicationError(_("This draw has already closed."), code="draw_closed", field="closes_at")
    from crm.services.redpackets import redpacket_pool_needs_approval

    # A red-packet prize over the approval threshold is money a second admin must approve before it is promised.
    unapproved = [p.pk for p in draw_prize_pools(draw.pk) if redpacket_pool_needs_approval(p)]
    if unapproved:
        raise Conflict(_("A red-packet prize's budget needs a second admin's approval first (pool %(ids)s).")
                       % {"ids": ", ".join(map(str, unapproved))}, code="approval_required", field="prizes")
    seed = secrets.token_bytes(32)
    draw.seed_hex, draw.commitment = seed.hex(), commitment_of(seed)
    draw.status, draw.opened_at = GroupDraw.Status.OPEN, timezone.now()
    draw.save(update_fields=["seed_hex", "commitment", "status", "opened_at"])
    _announce(draw, GroupDrawAnnouncement.Kind.COMMITMENT, _(
        "Lucky draw %(name)s: commitment sha256(seed) = %(c)s. The seed is revealed after entries close."
    ) % {"name": draw.name, "c": draw.commitment})
    return draw


def entry_refusal(draw: GroupDraw, contact: Contact, *, now: datetime) -> tuple[str, str] | None:
    if draw.status == GroupDraw.Status.DRAFT or now < draw.opens_at:
        return "draw_not_open", _("This draw has not opened yet.")
    if draw.status != GroupDraw.Status.OPEN or now >= draw.closes_at:
        return "draw_closed", _("This draw is closed.")
    member = GroupMember.objects.filter(group__in=draw.groups.all(), member_id=contact.external_userid,
                                        type=GroupMember.Type.EXTERNAL, left_at__isnull=True).exists()
    if not member:
        return "not_member", _("This draw is for members of its groups.")
    return None


def draw_enter(draw_id: int, contact_id: int) -> GroupDrawEntry:
    """Enter a member once; refusals are 4xx with a reason code and write nothing."""
    with transaction.atomic():
        draw = GroupDraw.objects.select_for_update(of=("self",)).filter(pk=draw_id).first()  # serialise with close
        if draw is None:
            raise NotFound(_("No such draw."), code="unknown_draw", field="draw")
        contact = Contact.objects.filter(pk=contact_id, erased_at__isnull=True).first()
        if contact is None:
            raise NotFound(_("No such customer."), code="unknown_contact", field="contact")
        reason = entry_refusal(draw, contact, now=timezone.now())
        if reason:
            code, message = reason
            raise ApplicationError(message, code=code, field="draw", status_code=403 if code == "not_member" else 400)
        try:
            with transaction.atomic():
                return GroupDrawEntry.objects.create(draw=draw, contact=contact,
                                                     external_userid=contact.external_userid)
        except IntegrityError:
            raise Conflict(_("You have already entered this draw."), code="already_entered", field="draw")


@transaction.atomic
def draw_close(draw_id: int) -> GroupDraw:
    draw = _locked(draw_id)
    if draw.status != GroupDraw.Status.OPEN:
        raise Conflict(_("Only an open draw can be closed."), code="not_open", field="status")
    draw.status, draw.closed_at = GroupDraw.Status.CLOSED, timezone.now()
    draw.save(update_fields=["status", "closed_at"])
    return draw


@transaction.atomic
def draw_reveal(draw_id: int) -> GroupDraw:
    """Publish the seed, write the winners (one row per entry, its key unique), queue fulfilment and the
    announcement. Re-running is refused (status), and the unique rows make a second write impossible anyway."""
    draw = _locked(draw_id)
    if draw.status == GroupDraw.Status.OPEN and timezone.now() >= draw.closes_at:
        draw.status, draw.closed_at = GroupDraw.Status.CLOSED, timezone.now()
    if draw.status != GroupDraw.Status.CLOSED:
        raise Conflict(_("Only a closed draw can be revealed."), code="not_closed", field="status")
    entries = {e.external_userid: e for e in draw.entries.all()}
    prizes = list(draw.prizes.order_by("position"))
    slots = [p for p in prizes for _i in range(p.winners)]
    winners = draw_winners(bytes.fromhex(draw.seed_hex), list(entries), len(slots))
    GroupDrawWinner.objects.bulk_create([
        GroupDrawWinner(draw=draw, entry=entries[uid], prize=slots[rank], rank=rank,
                        idempotency_key=f"draw:{draw.pk}:entry:{entries[uid].pk}")
        for rank, uid in enumerate(winners)
    ])
    draw.status, draw.revealed_at = GroupDraw.Status.REVEALED, timezone.now()
    draw.save(update_fields=["status", "closed_at", "revealed_at"])
    _announce(draw, GroupDrawAnnouncement.Kind.WINNERS, _(
        "Lucky draw %(name)s: seed %(seed)s. Winners: %(winners)s. Check it on the draw's verify page."
    ) % {"name": draw.name, "seed": draw.seed_hex, "winners": ", ".join(winners) or "-"})
    from crm.tasks.draws import fulfil_draw

    transaction.on_commit(lambda: fulfil_draw.delay(draw.pk))
    return draw


def winner_fulfil(winner_id: int) -> str:
    """Fulfil one winner's prize once: the hook gets the winner's unique key, so a re-run grants nothing new."""
    with transaction.atomic():
        winner = (GroupDrawWinner.objects.select_for_update(of=("self",)).select_related("prize", "entry")
                  .filter(pk=winner_id).first())
        if winner is None or winner.status == GroupDrawWinner.Status.FULFILLED:
            return "done"
        if Contact.objects.filter(pk=winner.entry.contact_id, erased_at__isnull=False).exists():
            winner.status, winner.reason = GroupDrawWinner.Status.FAILED, "contact_erased"  # crm.services.erasure
            winner.save(update_fields=["status", "reason"])
            return winner.reason
        kind = winner.prize.kind
        hook = red_packet_prize_fulfil if kind == GroupDrawPrize.Kind.RED_PACKET else _prize_hooks.get(kind)
        if hook is None:
            winner.status, winner.reason = GroupDrawWinner.Status.FAILED, "no_fulfilment"
            winner.save(update_fields=["status", "reason"])
            return winner.reason
        try:
            with transaction.atomic():
                ref = hook(winner.prize, winner.entry.contact_id, winner.idempotency_key)
        except ApplicationError as exc:
            winner.status, winner.reason = GroupDrawWinner.Status.FAILED, exc.code[:64]
            winner.save(update_fields=["status", "reason"])
            return winner.reason
        winner.status, winner.fulfilled_ref, winner.fulfilled_at = (
            GroupDrawWinner.Status.FULFILLED, str(ref)[:64], timezone.now())
        winner.reason = ""
        winner.save(update_fields=["status", "fulfilled_ref", "fulfilled_at", "reason"])
        return "fulfilled"


def red_packet_prize_fulfil(prize: GroupDrawPrize, contact_id: int, key: str) -> str:
    """A red-packet prize: the winner's claim in the prize's pool (UNIQUE pool and contact; its billno UNIQUE and
    derived from the claim), paid by the payout machinery (crm.services.payouts) on commit; the billno. Re-run, the
    claim is found again and nothing is reserved or paid twice; only the prize's winners may claim there."""
    from crm.services.redpackets import redpacket_claim, redpacket_pool_activate, redpacket_pool_update

    pool = RedPacketPool.objects.filter(draw_prize=prize).first()
    if pool is None:
        raise ApplicationError(_("This red-packet prize has no pool."), code="no_pool", field="prize")
    if pool.status == RedPacketPool.Status.DRAFT:
        if pool.expires_at < timezone.now() + PRIZE_CLAIM_WINDOW / 2:  # revealed late: leave time to pay
            redpacket_pool_update(pool.id, expires_at=timezone.now() + PRIZE_CLAIM_WINDOW)
        redpacket_pool_activate(pool.id)
    outcome = redpacket_claim(pool_id=pool.id, contact_id=contact_id)
    if not outcome.ok:
        raise ApplicationError(_("The red packet could not be claimed (%(status)s).") % {"status": outcome.status},
                               code=outcome.status, field="prize")  # fmt: skip
    return RedPacketClaim.objects.filter(pk=outcome.claim_id).values_list("billno", flat=True).first() or ""


def draw_fulfil(draw_id: int) -> dict[str, int]:
    counts: dict[str, int] = {}
    pending = GroupDrawWinner.objects.filter(draw_id=draw_id).exclude(status=GroupDrawWinner.Status.FULFILLED)
    for winner_id in pending.values_list("pk", flat=True):
        outcome = winner_fulfil(winner_id)
        counts[outcome] = counts.get(outcome, 0) + 1
    return counts


# --- the console's retries (audited) -------------------------------------------------------------------------


def winner_fulfil_retry(winner_id: int, *, user) -> str:
    """Grant a failed prize again, now (the console waits for the outcome): the same winner key, so whatever the
    first attempt granted is found, never granted twice. 409 not_failed for a prize that did not fail."""
    with transaction.atomic():
        winner = GroupDrawWinner.objects.select_for_update().filter(pk=winner_id).first()
        if winner is None:
            raise NotFound(_("No such winner."), code="unknown_winner", field="winner")
        if winner.status != GroupDrawWinner.Status.FAILED:
            raise Conflict(_("Only a failed prize can be retried."), code="not_failed", field="status")
        audit_action(winner, actor=user, action="retry_prize",
                     changes={"status": (winner.status, GroupDrawWinner.Status.PENDING), "reason": (winner.reason, "")})
        GroupDrawWinner.objects.filter(pk=winner.pk).update(status=GroupDrawWinner.Status.PENDING, reason="")
    return winner_fulfil(winner_id)


def announcement_retry(announcement_id: int, *, user) -> str:
    """Send a failed announcement again, now: back to pending, then the once-only send (one holder calls WeCom).
    A retryable failure leaves it pending for the task's retries; the outcome. 409 not_failed otherwise."""
    from crm.tasks.draws import send_draw_announcement
    from crm.wecom.errors import WeComError

    with transaction.atomic():
        row = GroupDrawAnnouncement.objects.select_for_update().filter(pk=announcement_id).first()
        if row is None:
            raise NotFound(_("No such announcement."), code="unknown_announcement", field="announcement")
        if row.status != GroupDrawAnnouncement.Status.FAILED:
            raise Conflict(_("Only a failed announcement can be sent again."), code="not_failed", field="status")
        audit_action(row, actor=user, action="retry_announcement",
                     changes={"status": (row.status, GroupDrawAnnouncement.Status.PENDING)})
        GroupDrawAnnouncement.objects.filter(pk=row.pk).update(status=GroupDrawAnnouncement.Status.PENDING)
    try:
        return announcement_send(announcement_id)
    except WeComError:
        status = GroupDrawAnnouncement.objects.filter(pk=announcement_id).values_list("status", flat=True).first()
        if status == GroupDrawAnnouncement.Status.PENDING:
            send_draw_announcement.delay(announcement_id)
        return status or "failed"


def draw_retry_failed(draw_id: int, *, user) -> dict[str, int]:
    """The draw page's one button: every failed prize and failed announcement of the draw, retried; the outcomes."""
    counts: dict[str, int] = {}
    for winner_id in GroupDrawWinner.objects.filter(draw_id=draw_id, status=GroupDrawWinner.Status.FAILED).values_list(
            "pk", flat=True):
        outcome = winner_fulfil_retry(winner_id, user=user)
        counts[outcome] = counts.get(outcome, 0) + 1
    for row_id in GroupDrawAnnouncement.objects.filter(
            draw_id=draw_id, status=GroupDrawAnnouncement.Status.FAILED).values_list("pk", flat=True):
        outcome = f"announcement_{announcement_retry(row_id, user=user)}"
        counts[outcome] = counts.get(outcome, 0) + 1
    return counts


# A revealed draw's fulfilment or an announcement still pending this long after it was queued lost its task (broker
# trouble, a worker gone): the beat queues it again; the unique keys and the conditional UPDATE make that harmless.
REQUEUE_AFTER = timedelta(minutes=5)


def draws_close_due(now: datetime | None = None) -> dict[str, list[int]]:
    """Beat: every draw whose entries are due to close is closed, revealed (winners drawn, fulfilment and the
    announcement queued on commit); lost fulfilments and announcements are queued again. Idempotent."""
    from crm.tasks.draws import fulfil_draw, send_draw_announcement

    now = now or timezone.now()
    revealed, refused = [], []
    due = GroupDraw.objects.filter(status__in=[GroupDraw.Status.OPEN, GroupDraw.Status.CLOSED], closes_at__lte=now)
    for draw_id in due.order_by("closes_at", "pk").values_list("pk", flat=True):
        try:
            draw_reveal(draw_id)
            revealed.append(draw_id)
        except ApplicationError as exc:  # revealed by staff meanwhile: not an error
            if exc.code != "not_closed":
                logger.warning("draw %s could not be revealed: %s", draw_id, exc.code, extra={"draw_id": draw_id})
                refused.append(draw_id)
    stale = now - REQUEUE_AFTER
    lost_fulfilments = sorted(set(GroupDrawWinner.objects.filter(
        status=GroupDrawWinner.Status.PENDING, draw__revealed_at__lte=stale).values_list("draw_id", flat=True)))
    for draw_id in lost_fulfilments:
        fulfil_draw.delay(draw_id)
    lost_announcements = list(GroupDrawAnnouncement.objects.filter(
        status=GroupDrawAnnouncement.Status.PENDING, created_at__lte=stale).values_list("pk", flat=True)[:500])
    for announcement_id in lost_announcements:
        send_draw_announcement.delay(announcement_id)
    return {"revealed": revealed, "refused": refused, "fulfil_requeued": lost_fulfilments,
            "announcements_requeued": lost_announcements}


def announcement_send(announcement_id: int) -> str:
    """Send the group message once: a conditional UPDATE (pending -> sending) makes one task its holder, and only
    the holder calls WeCom. A failed call goes back to pending for the retry; a holder that dies mid-call leaves
    it `sending`, which is never resent blindly (the message may have gone out)."""
    from crm.wecom.client import get_client
    from crm.wecom.errors import WeComError

    Status = GroupDrawAnnouncement.Status
    if not GroupDrawAnnouncement.objects.filter(pk=announcement_id, status=Status.PENDING).update(
            status=Status.SENDING):
        return "held"
    row = GroupDrawAnnouncement.objects.select_related("draw").get(pk=announcement_id)
    by_owner: dict[str, list[str]] = {}
    for group in row.draw.groups.select_related("owner").order_by("chat_id"):
        if group.owner_id:
            by_owner.setdefault(group.owner.userid, []).append(group.chat_id)
    msgids = []
    try:
        for sender, chat_ids in sorted(by_owner.items()):
            result = get_client().add_msg_template(chat_type="group", sender=sender, chat_id_list=chat_ids,
                                                   text={"content": row.text})
            msgids.append(result.get("msgid", ""))
    except WeComError as exc:
        # Retry only what can succeed; a permanent refusal is failed, with its reason, for the console.
        # A call that may have reached WeCom stays `sending`: never resent blindly.
        status = Status.SENDING if exc.maybe_applied else Status.PENDING if exc.retryable else Status.FAILED
        GroupDrawAnnouncement.objects.filter(pk=row.pk).update(status=status, last_error=str(exc)[:512])
        raise
    GroupDrawAnnouncement.objects.filter(pk=row.pk).update(
        status=Status.SENT, msgid=",".join(msgids)[:64], sent_at=timezone.now(), last_error="")
    return "sent"
