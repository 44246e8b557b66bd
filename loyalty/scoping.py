"""Which stores a user works at, and loyalty querysets cut down to them (store managers see only their stores).

Users holding loyalty.all_stores (admins; superusers hold every permission) are not scoped. Everyone else sees
the stores they are a member of (Store.members), and the cards, purchases and points of those stores: a card
belongs to a store once it has a purchase there.

For the console: `get_queryset` of a loyalty ModelAdmin returns `scope_to_user_stores(qs, request.user)`, or
inherits StoreScopedAdminMixin.
"""

from __future__ import annotations

from django.db.models import Exists, Model, OuterRef, QuerySet

from crm.errors import ApplicationError
from loyalty.models import Card, PointsLedger, Purchase, PurchaseLine, Redemption, Store, TierChange
from loyalty.till_cache import till_config

ALL_STORES = "loyalty.all_stores"


def sees_all_stores(user) -> bool:
    return bool(user and user.is_authenticated and user.is_active and user.has_perm(ALL_STORES))


def stores_for(user) -> QuerySet[Store]:
    """The stores this user may see and work at."""
    if sees_all_stores(user):
        return Store.objects.all()
    if not (user and user.is_authenticated and user.is_active):
        return Store.objects.none()
    return Store.objects.filter(members=user)


def user_may_use_store(user, store: Store) -> bool:
    # The bindings are cached per process (every till scan asks): loyalty.till_cache.
    return sees_all_stores(user) or user.pk in till_config().store_member_ids(store.pk)


def _cards_with_purchase_at_user_stores(user, card_ref: str = "pk") -> Exists:
    return Exists(Purchase.objects.filter(card_id=OuterRef(card_ref), store__members=user))


def scope_to_user_stores(qs: QuerySet[Model], user) -> QuerySet[Model]:
    """`qs` (of a loyalty model) limited to what `user` may see; unchanged for users who see all stores."""
    if sees_all_stores(user):
        return qs
    if not (user and user.is_authenticated and user.is_active):
        return qs.none()
    model = qs.model
    if model is Store:
        return qs.filter(members=user)
    if model in (Purchase, Redemption):
        return qs.filter(store__members=user)
    if model is PurchaseLine:
        return qs.filter(purchase__store__members=user)
    if model is Card:
        return qs.filter(_cards_with_purchase_at_user_stores(user))
    if model in (PointsLedger, TierChange):
        return qs.filter(_cards_with_purchase_at_user_stores(user, "card_id"))
    return qs  # tiers, rewards: the same for every store


class StoreScopedAdminMixin:
    """A ModelAdmin mixin: the change list and every object page show only the user's stores' rows."""

    def get_queryset(self, request):
        return scope_to_user_stores(super().get_queryset(request), request.user)


def store_check_user(store: Store, user) -> None:
    """Refuse (403, field store) a till operation by `user` at a store they are not bound to.

    No user (a service called by the system, not through the till) is not checked."""
    if user is None or user_may_use_store(user, store):
        return
    mine = ", ".join(stores_for(user).values_list("code", flat=True)) or "none"
    raise ApplicationError(
        f"You are not bound to store {store.code}; your store(s): {mine}.",
        code="store_forbidden",
        field="store",
        status_code=403,
    )
