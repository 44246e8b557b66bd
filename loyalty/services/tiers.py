"""Tiers: the default ladder, and moving a card to the tier its lifetime points earn."""

from __future__ import annotations

import logging

from django.db import transaction
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext as _

from crm.errors import ApplicationError, NotFound
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


def tier_validate(*, name: str, min_points: int, rank: int, tier_id: int | None = None) -> str:
    """Refuse a tier that would break the ladder, naming the field: names, thresholds and ranks are unique, and a
    higher rank needs more lifetime points than every lower one. Returns the cleaned name; writes nothing."""
    name = (name or "").strip()
    if not name:
        raise ApplicationError(_("A tier needs a name."), field="name")
    if len(name) > 64:
        raise ApplicationError(_("At most 64 characters."), field="name")
    if min_points is None or min_points < 0:
        raise ApplicationError(_("Lifetime points must be 0 or more."), field="min_points")
    if rank is None or rank < 1:
        raise ApplicationError(_("The rank must be 1 or more."), field="rank")
    others = Tier.objects.exclude(pk=tier_id) if tier_id else Tier.objects.all()
    if others.filter(name__iexact=name).exists():
        raise ApplicationError(
            _("A tier named %(name)s already exists.") % {"name": name}, code="duplicate", field="name"
        )
    if others.filter(rank=rank).exists():
        raise ApplicationError(
            _("Another tier already has rank %(rank)d.") % {"rank": rank}, code="duplicate", field="rank"
        )
    if others.filter(min_points=min_points).exists():
        raise ApplicationError(
            _("Another tier already starts at %(n)d points.") % {"n": min_points}, code="duplicate", field="min_points"
        )
    below = others.filter(rank__lt=rank, min_points__gt=min_points).order_by("-min_points").first()
    above = others.filter(rank__gt=rank, min_points__lt=min_points).order_by("min_points").first()
    clash = below or above
    if clash:
        raise ApplicationError(
            _("A higher rank needs more points: %(other)s (rank %(rank)d) starts at %(n)d points.")
            % {"other": clash.name, "rank": clash.rank, "n": clash.min_points},
            code="ladder_order",
            field="min_points",
        )
    return name


@transaction.atomic
def tier_save(*, name: str, min_points: int, rank: int, is_vip: bool = False, tier_id: int | None = None) -> Tier:
    """Create (no tier_id) or change a tier of the ladder, validated by `tier_validate`. Cards move to a changed
    ladder when next evaluated (a scan, or the cards admin's "re-evaluate" action): a threshold is not retroactive."""
    tier = None
    if tier_id is not None:
        tier = Tier.objects.select_for_update().filter(pk=tier_id).first()
        if tier is None:
            raise NotFound(_("No such tier."), field="tier")
    name = tier_validate(name=name, min_points=min_points, rank=rank, tier_id=tier_id)
    values = {"name": name, "min_points": min_points, "rank": rank, "is_vip": bool(is_vip)}
    if tier is None:
        return Tier.objects.create(**values)
    for field, value in values.items():
        setattr(tier, field, value)
    tier.save()
    return tier


@transaction.atomic
def tier_delete(tier_id: int) -> None:
    """Delete a tier no card holds and no tier change names (a card's history keeps its tiers)."""
    tier = Tier.objects.select_for_update().filter(pk=tier_id).first()
    if tier is None:
        return
    if Card.objects.filter(tier=tier).exists():
        raise ApplicationError(
            _("Cards are in tier %(name)s: move them first (change the ladder and re-evaluate).") % {"name": tier.name},
            code="in_use",
            field="tier",
        )
    if TierChange.objects.filter(Q(from_tier=tier) | Q(to_tier=tier)).exists():
        raise ApplicationError(
            _("Tier %(name)s is in cards' history and is kept.") % {"name": tier.name}, code="in_use", field="tier"
        )
    tier.delete()
