"""Console (admin) of the coupons area: the rewards catalogue (kind, value, stock, per-customer limit, validity,
eligible tiers), written through loyalty.services.rewards, and the issued coupons (read-only: written by
redemptions, grants and the till only).

The catalogue screen replaces loyalty.admin's RewardAdmin (same form base and delete service, more fields)."""

from __future__ import annotations

from django.contrib import admin
from django.db.models import Q
from unfold.admin import ModelAdmin

from crm.admin.base import ServiceModelAdmin, adopt
from loyalty.admin import ReadOnlyAdminMixin, ServiceDeleteMixin, ServiceForm
from loyalty.models import Card, Coupon, Reward
from loyalty.scoping import scope_to_user_stores, sees_all_stores
from loyalty.services.rewards import CATALOGUE_FIELDS, reward_delete, reward_save, reward_validate

FORM_FIELDS = [
    "name", "kind", "description", "value_fen", "points_cost", "stock", "per_customer_limit",
    "valid_from", "valid_until", "valid_days", "eligible_tiers", "is_active",
]  # fmt: skip


class CatalogueForm(ServiceForm):
    class Meta:
        model = Reward
        fields = FORM_FIELDS

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["kind"].required = False  # left out: a gift, as before kinds existed

    def clean_kind(self) -> str:
        return self.cleaned_data.get("kind") or Reward.Kind.GIFT

    def service_validate(self, data: dict) -> None:
        reward_validate(
            name=data.get("name", ""),
            points_cost=data.get("points_cost"),
            stock=data.get("stock"),
            **{field: data.get(field) for field in CATALOGUE_FIELDS if field != "description"},
        )


if admin.site.is_registered(Reward):
    admin.site.unregister(Reward)


@admin.register(Reward)
class CatalogueAdmin(ServiceDeleteMixin, ServiceModelAdmin):
    """The rewards catalogue; a reward once redeemed is switched off, not deleted."""

    form = CatalogueForm
    list_display = ["name", "kind", "points_cost", "stock", "per_customer_limit", "valid_until", "is_active"]
    list_filter = ["kind", "is_active", "eligible_tiers"]
    search_fields = ["name"]
    filter_horizontal = ["eligible_tiers"]
    delete_service = staticmethod(reward_delete)

    def save_model(self, request, obj, form, change) -> None:
        data = form.cleaned_data
        adopt(
            obj,
            reward_save(
                name=data["name"],
                points_cost=data["points_cost"],
                stock=data.get("stock"),
                is_active=data.get("is_active", False),
                reward_id=obj.pk if change else None,
                eligible_tier_ids=[tier.pk for tier in data.get("eligible_tiers") or []],
                **{field: data.get(field) for field in CATALOGUE_FIELDS},
            ),
        )

    def save_related(self, request, form, formsets, change) -> None:
        """The service already set the eligible tiers (the form's own m2m save would write them again)."""
        for formset in formsets:
            self.save_formset(request, form, formset, change=change)


@admin.register(Coupon)
class CouponAdmin(ReadOnlyAdminMixin, ModelAdmin):
    list_display = ["issued_at", "card", "reward", "source", "expires_at", "redeemed_at", "redeemed_store"]
    list_filter = ["source", "reward"]
    search_fields = ["card__number", "reward__name", "code"]
    list_select_related = ["card", "reward", "redeemed_store"]
    # The code is the customer's secret (their QR): searchable for support, not listed.
    exclude = ["code"]

    def get_queryset(self, request):
        """A store-bound user sees the coupons of cards their stores serve, and those redeemed at their stores."""
        qs = super().get_queryset(request)
        if sees_all_stores(request.user):
            return qs
        cards = scope_to_user_stores(Card.objects.all(), request.user)
        return qs.filter(Q(card__in=cards) | Q(redeemed_store__members=request.user)).distinct()
