"""Reads of the tiers area: the tier change events (API, console)."""

from __future__ import annotations

from django.db.models import QuerySet

from loyalty.models import TierChange


def tier_changes(*, card_id: int | None = None, reason: str | None = None) -> QuerySet[TierChange]:
    """Newest first, with what a list shows (card, contact, both tiers)."""
    rows = TierChange.objects.select_related("card__contact", "from_tier", "to_tier").order_by("-created_at", "-id")
    if card_id is not None:
        rows = rows.filter(card_id=card_id)
    if reason:
        rows = rows.filter(reason=reason)
    return rows
