"""Gates: a red packet unlocks only after tasks the CRM can verify, every one the pool sets.

    friends   fission: N friends new to the brand through the customer's invite QR (crm.services.fission)
    game      the mini-game on the campaign page, its result signed and checked (crm.services.game_gate)
    purchase  at least gate_purchase_fen spent since the pool opened: till receipts and imported orders. crm
              cannot import loyalty, so loyalty registers the sum (register_purchase_total, from its ready());
              without it crm counts the imported orders it holds itself.
    staff     the customer added one of our staff through gate_channel's contact way: an active follow relation
              whose state (recorded by the add callback) is the channel's.

gate_progress is what the customer's page shows for each; redpacket_claim_refusal asks gates_incomplete.
The segment field `gate_passed` (pool ids) lets another pool's eligibility require a completed gate: contacts who
claimed from one of those pools (a claim passes every gate) or finished its game.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from django.db.models import Q, Sum
from django.utils.translation import gettext_lazy as _

from crm.errors import ApplicationError
from crm.models import Channel, FollowRelation, GameSession, RedPacketClaim, RedPacketPool, SourceOrderLine
from crm.services import segments as seg
from crm.services.fission import fission_progress
from crm.services.game_gate import game_played
from crm.services.segments import FieldSpec, Members, active_follow_q

GATES = ("friends", "game", "purchase", "staff")
MAX_GATE_PURCHASE_FEN = 10**10  # 100 million yuan: anything above is a typo

PurchaseTotal = Callable[[int, datetime], int]
_purchase_total: PurchaseTotal | None = None


def register_purchase_total(fn: PurchaseTotal | None) -> None:
    """fn(contact_id, since) -> fen the contact spent since then (loyalty's till receipts and imported orders)."""
    global _purchase_total
    _purchase_total = fn


def purchase_total(contact_id: int, since: datetime) -> int:
    if _purchase_total is not None:
        return int(_purchase_total(contact_id, since))
    total = SourceOrderLine.objects.filter(contact_id=contact_id, ordered_at__gte=since).aggregate(s=Sum("amount_fen"))
    return int(total["s"] or 0)


def pool_opened_at(pool: RedPacketPool) -> datetime:
    return pool.starts_at or pool.activated_at or pool.created_at


def clean_gates(*, gate_game=False, gate_purchase_fen=0, gate_channel=None) -> dict:
    """The gate fields a pool stores, or a 400 naming the field. gate_channel: a Channel, its id, or None."""
    if not isinstance(gate_game, bool):
        raise ApplicationError("gate_game must be true or false.", field="gate_game")
    if (not isinstance(gate_purchase_fen, int) or isinstance(gate_purchase_fen, bool)
            or not 0 <= gate_purchase_fen <= MAX_GATE_PURCHASE_FEN):  # fmt: skip
        raise ApplicationError("gate_purchase_fen must be 0 (no gate) or a positive number of fen.",
                               field="gate_purchase_fen")  # fmt: skip
    channel_id = gate_channel.pk if isinstance(gate_channel, Channel) else gate_channel
    if channel_id is not None and (
        not isinstance(channel_id, int) or not Channel.objects.filter(id=channel_id).exists()
    ):
        raise ApplicationError("gate_channel must be an existing channel.", field="gate_channel")
    return {"gate_game": gate_game, "gate_purchase_fen": gate_purchase_fen, "gate_channel_id": channel_id}


def pool_gates(pool: RedPacketPool) -> list[str]:
    out = []
    if pool.gate_friends:
        out.append("friends")
    if pool.gate_game:
        out.append("game")
    if pool.gate_purchase_fen:
        out.append("purchase")
    if pool.gate_channel_id:
        out.append("staff")
    return out


def staff_added_via(channel: Channel, contact_id: int) -> bool:
    return FollowRelation.objects.filter(active_follow_q(prefix=""), contact_id=contact_id,
                                         state=channel.state).exists()  # fmt: skip


def gate_progress(pool: RedPacketPool, contact_id: int) -> list[dict]:
    """One entry per gate the pool sets: {"gate", "done", ...what the page shows}."""
    out = []
    for gate in pool_gates(pool):
        if gate == "friends":
            p = fission_progress(pool, contact_id)
            out.append({"gate": gate, "done": p["unlocked"], "friends": p["friends"], "needed": p["needed"]})
        elif gate == "game":
            out.append({"gate": gate, "done": game_played(pool.id, contact_id)})
        elif gate == "purchase":
            spent = purchase_total(contact_id, pool_opened_at(pool))
            out.append({"gate": gate, "done": spent >= pool.gate_purchase_fen, "spent_fen": min(spent, 10**12),
                        "needed_fen": pool.gate_purchase_fen})  # fmt: skip
        else:
            channel = pool.gate_channel
            out.append({"gate": gate, "done": staff_added_via(channel, contact_id), "channel": channel.name,
                        "channel_id": channel.id})  # fmt: skip
    return out


def gates_incomplete(pool: RedPacketPool, contact_id: int) -> list[str]:
    """The gates this contact has not passed yet, cheapest checks first; [] when the packet is unlocked."""
    if not pool_gates(pool):
        return []
    missing = [g["gate"] for g in gate_progress(pool, contact_id) if not g["done"]]
    # Whoever claimed passed them then: their packet stays theirs (a later unfollow does not lock it again).
    if missing and RedPacketClaim.objects.filter(pool=pool, contact_id=contact_id).exists():
        return []
    return missing


# --- eligibility: "completed another pool's gate" ------------------------------------------------------------


def _v_gate_passed(cond: dict, path: str) -> dict:
    ids = seg.int_list(cond.get("value"), f"{path}.value", allow_single=True)
    return {"value": seg.known_ids(RedPacketPool, ids, f"{path}.value")}


def _b_gate_passed(cond: dict, ctx) -> Q:
    claimed = RedPacketClaim.objects.filter(pool_id__in=cond["value"])
    played = GameSession.objects.filter(pool_id__in=cond["value"], finished_at__isnull=False)
    return seg.AnyOf([Members(claimed), Members(played)])


seg.register_field(
    "gate_passed",
    FieldSpec(
        _("Completed a red packet's gate"), ("in",), "ids", _v_gate_passed, _b_gate_passed,
        lambda: [{"value": p.id, "label": str(p)} for p in RedPacketPool.objects.order_by("-id")[:200]],
        help=_("Claimed one of these red packets (every gate passed) or played its game."), order=130,
    ),
)  # fmt: skip
