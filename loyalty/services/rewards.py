"""Rewards: redeeming points, once per request key."""

from __future__ import annotations

from django.contrib.auth.models import AbstractBaseUser
from django.db import IntegrityError, transaction
from django.db.models import F

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
