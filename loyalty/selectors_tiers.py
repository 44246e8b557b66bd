"""Reads of the tiers area: the tier change events (API, console) and a card's progress to the next tier."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from django.db.models import QuerySet
from django.utils import timezone

from loyalty.models import Card, Tier, TierChange, TierPolicy


def tier_changes(*, card_id: int | None = None, reason: str | None = None) -> QuerySet[TierChange]:
    """Newest first, with what a list shows (card, contact, both tiers)."""
    rows = TierChange.objects.select_related("card__contact", "from_tier", "to_tier").order_by("-created_at", "-id")
    if card_id is not None:
        rows = rows.filter(card_id=card_id)
    if reason:
        rows = rows.filter(reason=reason)
    return rows


@dataclass(frozen=True)
class TierProgress:
    """How far a card is from the tier above its own, counted as the tier rules count (basis and window)."""

    basis: str  # "points" or "spend" (TierPolicy.Basis)
    window_days: int  # 0: all history
    value: int  # points earned, or spend in fen, in the window
    next_tier: Tier | None  # None: the card holds the top tier
    needed: int  # the next tier's threshold on that basis
    remaining: int  # what is still missing (>= 0)

    @property
    def remaining_yuan(self) -> str:
        yuan, fen = divmod(self.remaining, 100)
        return f"{yuan}.{fen:02d}" if fen else str(yuan)


def tier_progress(card: Card, *, at: datetime | None = None) -> TierProgress:
    """Progress to the tier above the card's own on the tier rules' basis (points earned or spend, in the rolling
    window), not on lifetime points: the same numbers that move the card (loyalty.services.tiers.card_standing)."""
    from loyalty.services.tiers import card_standing, tier_policy_get

    policy = tier_policy_get()
    standing = card_standing(card, policy, at or timezone.now())
    rank = card.tier.rank if card.tier_id else -1
    next_tier = Tier.objects.filter(rank__gt=rank).order_by("rank").first()
    spend = policy.basis == TierPolicy.Basis.SPEND
    needed = (next_tier.min_spend_fen if spend else next_tier.min_points) if next_tier else 0
    return TierProgress(
        basis=policy.basis, window_days=policy.window_days, value=standing.value, next_tier=next_tier,
        needed=needed, remaining=max(needed - standing.value, 0) if next_tier else 0,
    )  # fmt: skip
