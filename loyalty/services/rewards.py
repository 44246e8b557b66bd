"""Rewards: redeeming points, once per request key."""

from __future__ import annotations

from django.contrib.auth.models import AbstractBaseUser
from django.db import IntegrityError, transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from crm.errors import ApplicationError, Conflict, NotFound
from loyalty.models import Card, Coupon, PointsLedger, Redemption, Reward, Store, Tier
from loyalty.scoping import sees_all_stores, store_check_user
from loyalty.services.coupons import coupon_issue, refuse, reward_refusal, reward_stock_take
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
    """Redeem a reward for the card's points: (redemption, created). A repeated key returns the first one.

    One transaction: the card row lock (per-customer limit, balance), stock by a conditional UPDATE, the points
    through points_credit (a negative delta consumes lots) and a single-use coupon code. Refusal codes:
    unknown_reward, outside_validity, out_of_stock, tier_not_eligible, over_customer_limit, insufficient_points."""
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
    reward = Reward.objects.filter(pk=reward_id).prefetch_related("eligible_tiers").first()
    if reward is None:
        raise ApplicationError("No such reward on offer.", code="unknown_reward", field="reward", status_code=404)
    # Every refusal is decided before the first write; the stock UPDATE below is the one re-checked under its lock.
    refuse(reward_refusal(reward, card, now=timezone.now()))
    if card.points_balance < reward.points_cost:
        raise ApplicationError(
            f"Not enough points: {reward.points_cost} needed, {card.points_balance} available.",
            code="insufficient_points",
            field="reward",
        )
    reward_stock_take(reward)
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
    coupon_issue(
        card=card,
        reward=reward,
        source=Coupon.Source.POINTS,
        idempotency_key=f"redeem:{idempotency_key}",
        redemption=redemption,
    )
    return redemption, True


CATALOGUE_FIELDS = (
    "kind",
    "description",
    "value_fen",
    "per_customer_limit",
    "valid_from",
    "valid_until",
    "valid_days",
)


def reward_validate(
    *,
    name: str,
    points_cost: int,
    stock: int | None,
    kind: str = Reward.Kind.GIFT,
    per_customer_limit: int | None = None,
    valid_from=None,
    valid_until=None,
    valid_days: int | None = None,
    value_fen: int | None = None,
    **_ignored,
) -> str:
    """Refuse a reward the catalogue cannot offer, naming the field (no constraint names); returns the name."""
    name = (name or "").strip()
    if not name:
        raise ApplicationError(_("A reward needs a name."), field="name")
    if len(name) > 128:
        raise ApplicationError(_("At most 128 characters."), field="name")
    if kind not in Reward.Kind.values:
        raise ApplicationError(_("Choose coupon, gift or discount."), field="kind")
    if points_cost is None or points_cost < 1:
        raise ApplicationError(_("A reward costs at least 1 point."), field="points_cost")
    if stock is not None and stock < 0:
        raise ApplicationError(_("Stock is 0 or more; leave it empty for unlimited."), field="stock")
    if per_customer_limit is not None and per_customer_limit < 1:
        raise ApplicationError(_("At least 1; leave it empty for no limit."), field="per_customer_limit")
    if valid_days is not None and not 1 <= valid_days <= 3660:
        raise ApplicationError(_("Between 1 and 3660 days; leave it empty for none."), field="valid_days")
    if valid_from and valid_until and valid_until <= valid_from:
        raise ApplicationError(_("The end of validity must be after its start."), field="valid_until")
    if value_fen is not None and value_fen < 0:
        raise ApplicationError(_("A value is 0 or more (fen)."), field="value_fen")
    if kind in (Reward.Kind.COUPON, Reward.Kind.DISCOUNT) and not value_fen:
        raise ApplicationError(_("A coupon or discount needs its value (fen)."), field="value_fen")
    return name


@transaction.atomic
def reward_save(
    *,
    name: str,
    points_cost: int,
    stock: int | None = None,
    is_active: bool = True,
    reward_id: int | None = None,
    eligible_tier_ids: list[int] | None = None,
    **catalogue,
) -> Reward:
    """Create (no reward_id) or change a reward of the catalogue; `catalogue` takes CATALOGUE_FIELDS (kind,
    limits, validity). Past redemptions keep the points they cost, issued coupons their expiry."""
    unknown = set(catalogue) - set(CATALOGUE_FIELDS)
    if unknown:
        raise ApplicationError(_("Unknown field."), field=sorted(unknown)[0])
    reward = None
    if reward_id is not None:
        reward = Reward.objects.select_for_update().filter(pk=reward_id).first()
        if reward is None:
            raise NotFound(_("No such reward."), field="reward")
    name = reward_validate(name=name, points_cost=points_cost, stock=stock, **catalogue)
    if eligible_tier_ids is not None:
        eligible_tier_ids = sorted(set(eligible_tier_ids))
        if Tier.objects.filter(pk__in=eligible_tier_ids).count() != len(eligible_tier_ids):
            raise ApplicationError(_("Unknown tier."), field="eligible_tiers")
    values = {"name": name, "points_cost": points_cost, "stock": stock, "is_active": bool(is_active), **catalogue}
    if reward is None:
        reward = Reward.objects.create(**values)
    else:
        for field, value in values.items():
            setattr(reward, field, value)
        reward.save()
    if eligible_tier_ids is not None:
        reward.eligible_tiers.set(eligible_tier_ids)
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
