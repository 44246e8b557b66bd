"""Console (admin) of the tiers area: the ladder (points and spend thresholds), the tier rules (basis, rolling
window, grace; one row) and the tier change events. Every write goes through loyalty.services.tiers."""

from __future__ import annotations

from django.contrib import admin
from django.http import HttpResponseRedirect
from django.urls import reverse
from django.utils.translation import gettext_lazy as _
from unfold.admin import ModelAdmin

from crm.admin.base import ServiceModelAdmin, adopt
from loyalty.admin import ReadOnlyAdminMixin, ServiceDeleteMixin, ServiceForm
from loyalty.models import Tier, TierChange, TierEffect, TierPolicy
from loyalty.scoping import StoreScopedAdminMixin
from loyalty.services.tiers import (
    tier_delete,
    tier_policy_get,
    tier_policy_save,
    tier_policy_validate,
    tier_save,
    tier_validate,
)


class TierForm(ServiceForm):
    class Meta:
        model = Tier
        fields = ["name", "rank", "min_points", "min_spend_fen", "is_vip"]

    def service_validate(self, data: dict) -> None:
        tier_validate(
            name=data.get("name", ""),
            min_points=data.get("min_points"),
            rank=data.get("rank"),
            tier_id=self.instance.pk,
            min_spend_fen=data.get("min_spend_fen"),
        )


@admin.register(Tier)
class TierAdmin(ServiceDeleteMixin, ServiceModelAdmin):
    """The ladder, written through loyalty.services.tiers (unique names, thresholds and ranks, more points and
    spend for a higher rank); a tier that cards hold or their history names is kept."""

    form = TierForm
    list_display = ["name", "rank", "min_points", "min_spend_fen", "is_vip"]
    search_fields = ["name"]
    delete_service = staticmethod(tier_delete)

    def save_model(self, request, obj, form, change) -> None:
        data = form.cleaned_data
        adopt(
            obj,
            tier_save(
                name=data["name"],
                min_points=data["min_points"],
                rank=data["rank"],
                is_vip=data.get("is_vip", False),
                tier_id=obj.pk if change else None,
                min_spend_fen=data.get("min_spend_fen"),
            ),
        )


class TierPolicyForm(ServiceForm):
    class Meta:
        model = TierPolicy
        fields = ["basis", "window_days", "grace_days"]

    def service_validate(self, data: dict) -> None:
        tier_policy_validate(basis=data.get("basis"), window_days=data.get("window_days"),
                             grace_days=data.get("grace_days"))  # fmt: skip


@admin.register(TierPolicy)
class TierPolicyAdmin(ServiceModelAdmin):
    """One row: the list opens it. Owner: admin (change_tierpolicy)."""

    form = TierPolicyForm
    search_fields = ["basis"]

    def changelist_view(self, request, extra_context=None):
        policy = tier_policy_get()
        return HttpResponseRedirect(reverse("admin:loyalty_tierpolicy_change", args=[policy.pk]))

    def has_add_permission(self, request) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

    def save_model(self, request, obj, form, change) -> None:
        data = form.cleaned_data
        adopt(
            obj,
            tier_policy_save(basis=data["basis"], window_days=data["window_days"], grace_days=data["grace_days"]),
        )

    def response_change(self, request, obj):
        self.message_user(request, _("Tier rules saved. Cards move up at their next credit and down at the next "
                                     "scheduled evaluation, after the grace period."))  # fmt: skip
        return HttpResponseRedirect(request.path)


@admin.register(TierChange)
class TierChangeAdmin(StoreScopedAdminMixin, ReadOnlyAdminMixin, ModelAdmin):
    """The tier change events: every move of a card, with its reason and what the rules counted."""

    list_display = ["created_at", "card", "contact_name", "from_tier", "to_tier", "reason", "basis", "value",
                    "vip_invite_sent_at"]  # fmt: skip
    list_filter = ["reason", "to_tier"]
    search_fields = ["card__number", "card__contact__name"]
    list_select_related = ["card__contact", "from_tier", "to_tier"]

    @admin.display(description=_("Customer"), ordering="card__contact__name")
    def contact_name(self, obj: TierChange) -> str:
        return obj.card.contact.name


@admin.register(TierEffect)
class TierEffectAdmin(ReadOnlyAdminMixin, ModelAdmin):
    """What leaving VIP did, once per tier change: the VIP tag removed, the staff notified (or why not). Admin only
    (no role but admin holds view_tiereffect), so not store-scoped."""

    list_display = ["created_at", "change", "kind", "status", "detail"]
    list_filter = ["kind", "status"]
    search_fields = ["change__card__number", "change__card__contact__name", "detail"]
    list_select_related = ["change"]
