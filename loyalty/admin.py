"""Loyalty admin: every model registered and searchable; the ledger and purchases are read-only."""

from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.utils.translation import gettext_lazy as _
from unfold.admin import ModelAdmin, TabularInline

from crm.admin.base import ServiceModelAdmin, add_service_error, adopt
from crm.errors import ApplicationError
from loyalty.models import (
    Card,
    PointsLedger,
    Product,
    Purchase,
    PurchaseLine,
    Redemption,
    Reward,
    Store,
)
from loyalty.scoping import StoreScopedAdminMixin  # store managers see their own stores' rows only
from loyalty.services import (
    reward_delete,
    reward_save,
    reward_validate,
    store_save,
    store_validate,
    tier_evaluate,
)
from loyalty.services.products import product_delete, product_save, product_validate


class ReadOnlyAdminMixin:
    """Facts written by services only: viewable, never added, changed or deleted here."""

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


class ServiceForm(forms.ModelForm):
    """A form checked by its service's own validation (`validate`), the refusal on the field it names; the table's
    constraints are the service's to say in words, never by their names."""

    def service_validate(self, data: dict) -> None:
        raise NotImplementedError

    def clean(self):
        data = super().clean()
        if not self.errors:
            try:
                self.service_validate(data)
            except ApplicationError as exc:
                add_service_error(self, exc)
        return data

    def validate_unique(self):
        """The service checks uniqueness, with its own message."""

    def validate_constraints(self):
        """The service checks what the constraints hold."""


class ServiceDeleteMixin:
    """Deletes through the service (`delete_service(pk)`), one by one; a refusal is a message, nothing deleted."""

    delete_service = None

    def delete_model(self, request, obj) -> None:
        type(self).delete_service(obj.pk)

    def delete_queryset(self, request, queryset) -> None:
        for obj in queryset:
            type(self).delete_service(obj.pk)


class LedgerInline(ReadOnlyAdminMixin, TabularInline):
    model = PointsLedger
    fields = ["created_at", "kind", "delta", "balance_after", "reason", "idempotency_key"]
    readonly_fields = fields
    extra = 0
    ordering = ["-id"]
    show_change_link = True


@admin.register(Card)
class CardAdmin(StoreScopedAdminMixin, ModelAdmin):
    list_display = ["number", "contact", "tier", "points_balance", "lifetime_points", "created_at"]
    list_filter = ["tier"]
    search_fields = ["number", "contact__name", "contact__external_userid"]
    list_select_related = ["contact", "tier"]
    raw_id_fields = ["contact"]
    # Balances and tier follow the ledger: changed only through services (adjust via the API).
    readonly_fields = ["number", "contact", "tier", "points_balance", "lifetime_points", "created_at", "updated_at"]
    inlines = [LedgerInline]
    actions = ["reevaluate_tier"]

    def has_add_permission(self, request) -> bool:
        return False  # cards are made on first use of the card link

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

    @admin.action(description=_("Re-evaluate tier of selected cards"), permissions=["change"])
    def reevaluate_tier(self, request, queryset):
        changed = sum(1 for card_id in queryset.values_list("pk", flat=True) if tier_evaluate(card_id))
        self.message_user(request, _("%(n)d card(s) changed tier.") % {"n": changed}, messages.SUCCESS)


@admin.register(PointsLedger)
class PointsLedgerAdmin(StoreScopedAdminMixin, ReadOnlyAdminMixin, ModelAdmin):
    list_display = ["created_at", "card", "kind", "delta", "balance_after", "reason"]
    list_filter = ["kind"]
    search_fields = ["card__number", "idempotency_key", "reason", "purchase__receipt_id"]
    list_select_related = ["card"]
    date_hierarchy = "created_at"


class StoreForm(ServiceForm):
    class Meta:
        model = Store
        fields = ["code", "name", "city", "is_active", "members"]

    def service_validate(self, data: dict) -> None:
        members = data.get("members") if "members" in self.fields else None
        store_validate(
            code=data.get("code", ""),
            name=data.get("name", ""),
            city=data.get("city", ""),
            store_id=self.instance.pk,
            member_ids=None if members is None else [u.pk for u in members],
        )


@admin.register(Store)
class StoreAdmin(StoreScopedAdminMixin, ServiceModelAdmin):
    """Stores and who works there, written through loyalty.services.stores (a code the tills send is kept once
    receipts carry it)."""

    form = StoreForm
    list_display = ["code", "name", "city", "is_active"]
    list_filter = ["is_active", "city"]
    search_fields = ["code", "name", "city"]
    filter_horizontal = ["members"]  # the store managers and cashiers bound to the store

    def save_model(self, request, obj, form, change) -> None:
        data = form.cleaned_data
        members = data.get("members") if "members" in form.fields else None
        adopt(
            obj,
            store_save(
                code=data["code"],
                name=data["name"],
                city=data.get("city", ""),
                is_active=data.get("is_active", False),
                store_id=obj.pk if change else None,
                member_ids=None if members is None else [u.pk for u in members],
            ),
        )

    def save_related(self, request, form, formsets, change) -> None:
        """The service bound the members."""


class PurchaseLineInline(ReadOnlyAdminMixin, TabularInline):
    model = PurchaseLine
    fields = ["sku", "name", "qty", "amount_fen"]
    readonly_fields = fields
    extra = 0


@admin.register(Purchase)
class PurchaseAdmin(StoreScopedAdminMixin, ReadOnlyAdminMixin, ModelAdmin):
    list_display = ["scanned_at", "store", "receipt_id", "card", "amount_fen", "points", "cashier"]
    list_filter = ["store"]
    search_fields = ["receipt_id", "card__number", "card__contact__name", "lines__sku"]
    list_select_related = ["store", "card", "cashier"]
    date_hierarchy = "scanned_at"
    inlines = [PurchaseLineInline]


@admin.register(PurchaseLine)
class PurchaseLineAdmin(StoreScopedAdminMixin, ReadOnlyAdminMixin, ModelAdmin):
    list_display = ["purchase", "sku", "name", "qty", "amount_fen"]
    search_fields = ["sku", "name", "purchase__receipt_id"]
    list_select_related = ["purchase"]


class ProductForm(ServiceForm):
    class Meta:
        model = Product
        fields = ["sku", "name", "category"]

    def service_validate(self, data: dict) -> None:
        product_validate(
            sku=data.get("sku", ""),
            name=data.get("name", ""),
            category=data.get("category", ""),
            product_id=self.instance.pk,
        )


@admin.register(Product)
class ProductAdmin(ServiceDeleteMixin, ServiceModelAdmin):
    """The catalogue of SKUs and categories, written through loyalty.services.products."""

    form = ProductForm
    list_display = ["sku", "name", "category"]
    list_filter = ["category"]
    search_fields = ["sku", "name", "category"]
    delete_service = staticmethod(product_delete)

    def save_model(self, request, obj, form, change) -> None:
        data = form.cleaned_data
        adopt(
            obj,
            product_save(
                sku=data["sku"],
                name=data.get("name", ""),
                category=data.get("category", ""),
                product_id=obj.pk if change else None,
            ),
        )


class RewardForm(ServiceForm):
    class Meta:
        model = Reward
        fields = ["name", "points_cost", "stock", "is_active"]

    def service_validate(self, data: dict) -> None:
        reward_validate(name=data.get("name", ""), points_cost=data.get("points_cost"), stock=data.get("stock"))


@admin.register(Reward)
class RewardAdmin(ServiceDeleteMixin, ServiceModelAdmin):
    """The catalogue, written through loyalty.services.rewards; a reward once redeemed is switched off, not
    deleted."""

    form = RewardForm
    list_display = ["name", "points_cost", "stock", "is_active"]
    list_filter = ["is_active"]
    search_fields = ["name"]
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
            ),
        )


@admin.register(Redemption)
class RedemptionAdmin(StoreScopedAdminMixin, ReadOnlyAdminMixin, ModelAdmin):
    list_display = ["created_at", "card", "reward", "points", "store", "created_by"]
    search_fields = ["card__number", "reward__name", "idempotency_key"]
    list_select_related = ["card", "reward", "store", "created_by"]


# Issue 12's areas register their console screens in their own modules.
# The tier ladder, tier rules and tier changes: loyalty.admin_tiers.
from loyalty import admin_coupons, admin_earning, admin_lots, admin_tiers, admin_till  # noqa: E402,F401
