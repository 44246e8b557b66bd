"""Tiers: the default ladder, and moving a card to the tier its lifetime points earn."""

from __future__ import annotations

import logging

from django.db import transaction
from django.utils import timezone

from loyalty.models import Card, Tier, TierChange

logger = logging.getLogger(__name__)

# (name, min lifetime points, is VIP). Gold and above are invited to the VIP customer group.
DEFAULT_TIERS: tuple[tuple[str, int, bool], ...] = (
    ("Member", 0, False),
    ("Silver", 1000, False),
    ("Gold", 5000, True),
    ("Platinum", 20000, True),
)


@transaction.atomic
def tiers_ensure_defaults() -> list[Tier]:
    """Create the default ladder when no tier exists yet; a ladder edited in the admin is left alone."""
    if not Tier.objects.exists():
        for rank, (name, min_points, is_vip) in enumerate(DEFAULT_TIERS, start=1):
            Tier.objects.get_or_create(name=name, defaults={"min_points": min_points, "is_vip": is_vip, "rank": rank})
    return list(Tier.objects.order_by("rank"))


def tier_for_points(points: int) -> Tier | None:
    """The highest tier whose threshold `points` reaches (None when no tier is defined)."""
    return Tier.objects.filter(min_points__lte=max(points, 0)).order_by("-min_points").first()


@transaction.atomic
def tier_evaluate(card_id: int) -> TierChange | None:
    """Move the card to the tier its lifetime points earn; record the move; on entering VIP, invite on commit."""
    card = Card.objects.select_for_update(of=("self",)).select_related("tier").get(pk=card_id)
    target = tier_for_points(card.lifetime_points)
    if target is None or target.pk == card.tier_id:
        return None
    change = TierChange.objects.create(
        card=card, from_tier=card.tier, to_tier=target, lifetime_points=card.lifetime_points
    )
    card.tier = target
    card.save(update_fields=["tier", "updated_at"])
    logger.info("card tier changed", extra={"card": card.pk, "from": change.from_tier_id, "to": target.pk})
    if change.entered_vip:
        # Only after commit, and in a worker: a WeCom outage must never fail or slow a till scan.
        from loyalty.tasks import vip_invite

        transaction.on_commit(lambda: vip_invite.delay(change.pk))
    return change


def tier_change_send_vip_invite(tier_change_id: int) -> bool:
    """Invite the card's contact to the VIP group for this tier change, once. False when nothing was sent."""
    change = TierChange.objects.select_related("card__tier", "to_tier").get(pk=tier_change_id)
    if change.vip_invite_sent_at is not None:
        return False
    if not (change.card.tier and change.card.tier.is_vip):
        return False  # demoted again before the worker got to it
    from crm.services.vip import invite_to_vip_group

    invite_to_vip_group(change.card.contact_id)
    TierChange.objects.filter(pk=change.pk, vip_invite_sent_at__isnull=True).update(vip_invite_sent_at=timezone.now())
    return True
