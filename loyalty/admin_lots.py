"""Console (admin) of the lots area: points lots, returns (with their lines) and a card's ledger screen (entries,
lots with what is left and their expiry). All read-only: lots and returns are written by services only."""

from __future__ import annotations

from django.contrib import admin
from django.db.models import Exists, OuterRef
from django.shortcuts import get_object_or_404
from django.urls import path, reverse
from django.utils.html import format_html
from django.utils.translation import gettext_lazy as _
from unfold.admin import ModelAdmin, TabularInline

from crm.console.render import console_render, permission_required
from loyalty.admin import ReadOnlyAdminMixin
from loyalty.models import Card, PointsLedger, PointsLot, Purchase, PurchaseReturn, ReturnLine
from loyalty.scoping import scope_to_user_stores, sees_all_stores
from loyalty.services.lots import points_expiring_next


def _scoped_by_card(qs, user, card_ref: str = "card_id"):
    """Lots of the cards the user's stores have seen (loyalty.scoping's rule for cards)."""
    if sees_all_stores(user):
        return qs
    return qs.filter(Exists(Purchase.objects.filter(card_id=OuterRef(card_ref), store__members=user)))


@admin.register(PointsLot)
class PointsLotAdmin(ReadOnlyAdminMixin, ModelAdmin):
    list_display = ["card_link", "points", "remaining", "expires_on", "created_at"]
    list_filter = ["expires_on"]
    search_fields = ["card__number"]
    list_select_related = ["card"]
    date_hierarchy = "expires_at"

    def get_queryset(self, request):
        return _scoped_by_card(super().get_queryset(request), request.user)

    @admin.display(description=_("card"), ordering="card__number")
    def card_link(self, obj: PointsLot):
        url = reverse("admin:loyalty_pointslot_card", args=[obj.card_id])
        return format_html('<a href="{}">{}</a>', url, obj.card.number)

    def get_urls(self):
        view = self.admin_site.admin_view(permission_required("loyalty.view_card")(card_ledger_page))
        return [path("card/<int:card_id>/", view, name="loyalty_pointslot_card"), *super().get_urls()]


def card_ledger_page(request, card_id: int):
    """A card's ledger screen: every entry with its running balance, the lots (remaining, expiry) and the check
    balance == sum(ledger) == sum(open lots)."""
    card = get_object_or_404(
        scope_to_user_stores(Card.objects.select_related("contact", "tier"), request.user), pk=card_id
    )
    entries = list(PointsLedger.objects.filter(card=card).select_related("purchase__store").order_by("-id")[:500])
    lots = list(PointsLot.objects.filter(card=card).order_by("expires_at", "id"))
    ledger_sum = sum(PointsLedger.objects.filter(card=card).values_list("delta", flat=True))
    open_sum = sum(lot.remaining for lot in lots)
    returns = list(
        PurchaseReturn.objects.filter(purchase__card=card).select_related("store", "purchase").order_by("-id")[:100]
    )
    return console_render(
        request,
        "loyalty/lots/card_ledger.html",
        {
            "card": card,
            "entries": entries,
            "lots": lots,
            "returns": returns,
            "ledger_sum": ledger_sum,
            "open_sum": open_sum,
            "balanced": card.points_balance == ledger_sum and open_sum == max(card.points_balance, 0),
            "expiring": points_expiring_next(card.pk),
        },
        title=_("Card %(number)s: points ledger") % {"number": card.number},
    )


class ReturnLineInline(ReadOnlyAdminMixin, TabularInline):
    model = ReturnLine
    fields = ["sku", "qty", "amount_fen", "points"]
    readonly_fields = fields
    extra = 0


@admin.register(PurchaseReturn)
class PurchaseReturnAdmin(ReadOnlyAdminMixin, ModelAdmin):
    list_display = [
        "created_at",
        "store",
        "return_id",
        "receipt",
        "card_link",
        "amount_fen",
        "points_reversed",
        "shortfall",
    ]
    list_filter = ["store"]
    search_fields = ["return_id", "purchase__receipt_id", "purchase__card__number"]
    list_select_related = ["store", "purchase__card"]
    date_hierarchy = "created_at"
    inlines = [ReturnLineInline]

    def get_queryset(self, request):
        qs = super().get_queryset(request)
        return qs if sees_all_stores(request.user) else qs.filter(store__members=request.user)

    def get_urls(self):
        view = self.admin_site.admin_view(permission_required("loyalty.use_till")(till_page))
        return [path("till/", view, name="loyalty_purchasereturn_till"), *super().get_urls()]

    @admin.display(description=_("receipt"), ordering="purchase__receipt_id")
    def receipt(self, obj: PurchaseReturn) -> str:
        return obj.purchase.receipt_id

    @admin.display(description=_("card"))
    def card_link(self, obj: PurchaseReturn):
        url = reverse("admin:loyalty_pointslot_card", args=[obj.purchase.card_id])
        return format_html('<a href="{}">{}</a>', url, obj.purchase.card.number)


@admin.register(ReturnLine)
class ReturnLineAdmin(ReadOnlyAdminMixin, ModelAdmin):
    list_display = ["purchase_return", "sku", "qty", "amount_fen", "points"]
    search_fields = ["sku", "purchase_return__return_id"]
    list_select_related = ["purchase_return"]

    def get_queryset(self, request):
        qs = super().get_queryset(request)
        return qs if sees_all_stores(request.user) else qs.filter(purchase_return__store__members=request.user)


# --- A minimal staff till (scan + return) under the console --------------------------------------------------
# The project has no till UI; this page lets a cashier (loyalty.use_till) do at the desk what a till posts to
# api/loyalty/scans and api/loyalty/returns, through the same services.


def _int(value: str | None) -> int | None:
    try:
        return int(value or "")
    except ValueError:
        return None


def till_page(request):
    from crm.errors import ApplicationError
    from loyalty.scoping import stores_for
    from loyalty.services import scan_record
    from loyalty.services.returns import return_record

    result, error = None, None
    if request.method == "POST":
        data = request.POST
        try:
            if data.get("action") == "scan":
                sku = (data.get("sku") or "").strip()
                items = None
                if sku:
                    items = [{"sku": sku, "qty": _int(data.get("qty")), "amount_fen": _int(data.get("amount_fen"))}]
                scan = scan_record(
                    qr_token=(data.get("qr_token") or "").strip(),
                    store_code=data.get("store") or "",
                    receipt_id=data.get("receipt_id") or "",
                    amount_fen=_int(data.get("amount_fen")),
                    items=items,
                    cashier=request.user,
                )
                purchase = scan.purchase
                result = {
                    "kind": "scan",
                    "receipt_id": purchase.receipt_id,
                    "points": purchase.points,
                    "balance": purchase.balance_after,
                    "duplicate": scan.duplicate,
                }
            elif data.get("action") == "return":
                ret = return_record(
                    store_code=data.get("store") or "",
                    receipt_id=data.get("receipt_id") or "",
                    return_id=data.get("return_id") or "",
                    lines=[{"sku": (data.get("sku") or "").strip(), "qty": _int(data.get("qty"))}],
                    cashier=request.user,
                )
                r = PurchaseReturn.objects.select_related("purchase__card").get(pk=ret.purchase_return.pk)
                result = {
                    "kind": "return",
                    "receipt_id": r.purchase.receipt_id,
                    "points": r.points_reversed,
                    "shortfall": r.shortfall,
                    "balance": r.purchase.card.points_balance,
                    "duplicate": ret.duplicate,
                }
        except ApplicationError as exc:
            error = {"code": exc.code, "field": exc.field, "message": exc.message}
    return console_render(
        request,
        "loyalty/lots/till.html",
        {
            "stores": stores_for(request.user).order_by("code"),
            "result": result,
            "error": error,
            "posted": request.POST if request.method == "POST" else {},
        },
        title=_("Till: scan and return"),
    )
