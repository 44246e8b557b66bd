"""Rewards: redeeming points, once per request key."""

from __future__ import annotations

from django.contrib.auth.models import AbstractBaseUser
from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils.translation import gettext as _

from crm.errors import ApplicationError, Conflict, NotFound
from loyalty.models import Card, PointsLedger, Redemption, Reward, Store
from loyalty.scoping import sees_all_stores, store_check_user
from loyalty.services.points import points_credit


def _replay(existing: Redemption, card_id: int, reward_id: int) -> Redemption:
    if (existing.card_id, existing.reward_id) != (card_id, reward_id):
        raise Conflict("This idempotency key was already used for another redemption.", field="idempotency_key")
    return existing


@transaction.atomic
def redemption_create(
    *,
    card_id: int,
    reward_id: int,
    idempotency_key: str,
    store_code: str | None = None,
    user: AbstractBaseUser | None = None,
) -> tuple[Redemption, bool]:
    """Redeem a reward for the card's points: (redemption, created). A repeated key returns the first one."""
    if not idempotency_key or len(idempotency_key) > 128:
        raise ApplicationError("idempotency_key is required (at most 128 chars).", field="idempotency_key")
    store = None
    if store_code:
        store = Store.objects.filter(code=store_code).first()
        if store is None:
            raise ApplicationError(f"Unknown store {store_code!r}.", code="unknown_store", field="store")
        store_check_user(store, user if user is not None and user.is_authenticated else None)
    elif user is not None and user.is_authenticated and not sees_all_stores(user):
        # A till bound to stores says which one it is at: the redemption is that store's.
        raise ApplicationError("store is required: give the code of the store this till is at.", field="store")
    card = Card.objects.select_for_update().filter(pk=card_id).first()
    if card is None:
        raise NotFound("No such card.", field="card")
    existing = Redemption.objects.filter(idempotency_key=idempotency_key).first()
    if existing:
        return _replay(existing, card_id, reward_id), False
    reward = Reward.objects.select_for_update().filter(pk=reward_id).first()
    if reward is None or not reward.is_active:
        raise ApplicationError("No such reward on offer.", code="unknown_reward", field="reward")
    if reward.stock is not None and reward.stock < 1:
        raise Conflict("This reward is out of stock.", code="out_of_stock", field="reward")
    if card.points_balance < reward.points_cost:
        raise ApplicationError(
            f"Not enough points: {reward.points_cost} needed, {card.points_balance} available.",
            code="insufficient_points",
            field="reward",
        )
    try:
        with transaction.atomic():
            redemption = Redemption.objects.create(
                card=card,
                reward=reward,
                points=reward.points_cost,
                idempotency_key=idempotency_key,
                store=store,
                created_by=user if user is not None and user.is_authenticated else None,
            )
    except IntegrityError:
        existing = Redemption.objects.filter(idempotency_key=idempotency_key).first()
        if existing is None:
            raise
        return _replay(existing, card_id, reward_id), False
    points_credit(
        card_id=card.pk,
        delta=-reward.points_cost,
        kind=PointsLedger.Kind.REDEEM,
        idempotency_key=f"redeem:{idempotency_key}",
        reason=f"Redeemed {reward.name}",
        redemption=redemption,
        user=user,
    )
    if reward.stock is not None:
        Reward.objects.filter(pk=reward.pk).update(stock=F("stock") - 1)
    return redemption, True


def reward_validate(*, name: str, points_cost: int, stock: int | None) -> str:
    """Refuse a reward the catalogue cannot offer, naming the field (no constraint names); returns the name."""
    name = (name or "").strip()
    if not name:
        raise ApplicationError(_("A reward needs a name."), field="name")
    if len(name) > 128:
        raise ApplicationError(_("At most 128 characters."), field="name")
    if points_cost is None or points_cost < 1:
        raise ApplicationError(_("A reward costs at least 1 point."), field="points_cost")
    if stock is not None and stock < 0:
        raise ApplicationError(_("Stock is 0 or more; leave it empty for unlimited."), field="stock")
    return name


@transaction.atomic
def reward_save(
    *, name: str, points_cost: int, stock: int | None = None, is_active: bool = True, reward_id: int | None = None
) -> Reward:
    """Create (no reward_id) or change a reward of the catalogue. Past redemptions keep the points they cost."""
    reward = None
    if reward_id is not None:
        reward = Reward.objects.select_for_update().filter(pk=reward_id).first()
        if reward is None:
            raise NotFound(_("No such reward."), field="reward")
    name = reward_validate(name=name, points_cost=points_cost, stock=stock)
    values = {"name": name, "points_cost": points_cost, "stock": stock, "is_active": bool(is_active)}
    if reward is None:
        return Reward.objects.create(**values)
    for field, value in values.items():
        setattr(reward, field, value)
    reward.save()
    return reward


@transaction.atomic
def reward_delete(reward_id: int) -> None:
    """Delete a reward never redeemed; one with redemptions is withdrawn from offer instead (is_active off)."""
    reward = Reward.objects.select_for_update().filter(pk=reward_id).first()
    if reward is None:
        return
    if reward.redemptions.exists():
        raise ApplicationError(
            _("%(name)s has been redeemed and stays in the records: switch it off instead.") % {"name": reward.name},
            code="in_use",
            field="reward",
        )
    reward.delete()
