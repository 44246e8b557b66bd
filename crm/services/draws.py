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
from datetime import datetime

from django.db import IntegrityError, transaction
from django.utils import timezone
from django.utils.translation import gettext as _

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
)

logger = logging.getLogger(__name__)

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
        GroupDrawPrize.objects.create(draw=draw, position=position, kind=kind, winners=winners,
                                      **{value_field: value})
    return draw


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
        winner = (GroupDrawWinner.objects.select_for_update().select_related("prize", "entry")
                  .filter(pk=winner_id).first())
        if winner is None or winner.status == GroupDrawWinner.Status.FULFILLED:
            return "done"
        if Contact.objects.filter(pk=winner.entry.contact_id, erased_at__isnull=False).exists():
            winner.status, winner.reason = GroupDrawWinner.Status.FAILED, "contact_erased"  # crm.services.erasure
            winner.save(update_fields=["status", "reason"])
            return winner.reason
        hook = _prize_hooks.get(winner.prize.kind)
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


def draw_fulfil(draw_id: int) -> dict[str, int]:
    counts: dict[str, int] = {}
    pending = GroupDrawWinner.objects.filter(draw_id=draw_id).exclude(status=GroupDrawWinner.Status.FULFILLED)
    for winner_id in pending.values_list("pk", flat=True):
        outcome = winner_fulfil(winner_id)
        counts[outcome] = counts.get(outcome, 0) + 1
    return counts


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
