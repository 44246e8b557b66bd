"""Loyalty admin: every model registered and searchable; the ledger and purchases are read-only."""

from __future__ import annotations

from django.contrib import admin, messages
from unfold.admin import ModelAdmin, TabularInline

from loyalty.models import (
    Card,
    PointsLedger,
    Purchase,
    PurchaseLine,
    Redemption,
    Reward,
    Store,
    Tier,
    TierChange,
)
from loyalty.scoping import StoreScopedAdminMixin  # store managers see their own stores' rows only
from loyalty.services import tier_evaluate


class ReadOnlyAdminMixin:
    """Facts written by services only: viewable, never added, changed or deleted here."""

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


@admin.register(Tier)
class TierAdmin(ModelAdmin):
    list_display = ["name", "rank", "min_points", "is_vip"]
    search_fields = ["name"]


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

    @admin.action(description="Re-evaluate tier of selected cards", permissions=["change"])
    def reevaluate_tier(self, request, queryset):
        changed = sum(1 for card_id in queryset.values_list("pk", flat=True) if tier_evaluate(card_id))
        self.message_user(request, f"{changed} card(s) changed tier.", messages.SUCCESS)


@admin.register(PointsLedger)
class PointsLedgerAdmin(StoreScopedAdminMixin, ReadOnlyAdminMixin, ModelAdmin):
    list_display = ["created_at", "card", "kind", "delta", "balance_after", "reason"]
    list_filter = ["kind"]
    search_fields = ["card__number", "idempotency_key", "reason", "purchase__receipt_id"]
    list_select_related = ["card"]
    date_hierarchy = "created_at"


@admin.register(Store)
class StoreAdmin(StoreScopedAdminMixin, ModelAdmin):
    list_display = ["code", "name", "city", "is_active"]
    list_filter = ["is_active", "city"]
    search_fields = ["code", "name", "city"]
    filter_horizontal = ["members"]  # the store managers and cashiers bound to the store


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


@admin.register(TierChange)
class TierChangeAdmin(StoreScopedAdminMixin, ReadOnlyAdminMixin, ModelAdmin):
    list_display = ["created_at", "card", "from_tier", "to_tier", "lifetime_points", "vip_invite_sent_at"]
    list_filter = ["to_tier"]
    search_fields = ["card__number", "card__contact__name"]
    list_select_related = ["card", "from_tier", "to_tier"]


@admin.register(Reward)
class RewardAdmin(ModelAdmin):
    list_display = ["name", "points_cost", "stock", "is_active"]
    list_filter = ["is_active"]
    search_fields = ["name"]


@admin.register(Redemption)
class RedemptionAdmin(StoreScopedAdminMixin, ReadOnlyAdminMixin, ModelAdmin):
    list_display = ["created_at", "card", "reward", "points", "store", "created_by"]
    search_fields = ["card__number", "reward__name", "idempotency_key"]
    list_select_related = ["card", "reward", "store", "created_by"]
