"""Console (admin) registrations for the loyalty till area: the review queue of flagged scans.

A reviewer approves a flagged scan or reverses its points; both go through loyalty.services.velocity. A store
manager sees only their stores' scans (loyalty.scoping)."""

from __future__ import annotations

from django.contrib import admin, messages
from django.utils.html import format_html_join
from django.utils.translation import gettext_lazy as _
from unfold.admin import ModelAdmin

from crm.errors import ApplicationError
from loyalty.admin import ReadOnlyAdminMixin
from loyalty.models import ScanReview
from loyalty.scoping import sees_all_stores
from loyalty.services.velocity import scan_review_approve, scan_review_reverse

RULE_LABELS = {
    "card_burst": _("Many scans of this card in a short time"),
    "amount_over_max": _("Amount over the configured maximum"),
    "amount_over_store_p99": _("Amount over the store's usual range (p99)"),
}


@admin.register(ScanReview)
class ScanReviewAdmin(ReadOnlyAdminMixin, ModelAdmin):
    list_display = ["created_at", "store", "receipt", "card", "amount_yuan", "points", "rules", "status"]
    list_filter = ["status"]
    search_fields = ["purchase__receipt_id", "purchase__card__number", "purchase__store__code"]
    list_select_related = ["purchase__store", "purchase__card"]
    # Django's list actions: a POST with the CSRF token, each review decided by its service.
    actions = ["approve_selected", "reverse_selected"]

    def get_queryset(self, request):
        qs = super().get_queryset(request)
        if sees_all_stores(request.user):
            return qs
        return qs.filter(purchase__store__members=request.user)

    def has_review_permission(self, request, obj=None) -> bool:
        return request.user.has_perm("loyalty.change_scanreview")

    @admin.display(description=_("store"))
    def store(self, obj):
        return obj.purchase.store.code

    @admin.display(description=_("receipt"))
    def receipt(self, obj):
        return obj.purchase.receipt_id

    @admin.display(description=_("card"))
    def card(self, obj):
        return obj.purchase.card.number

    @admin.display(description=_("amount (yuan)"))
    def amount_yuan(self, obj):
        return f"{obj.purchase.amount_fen / 100:,.2f}"

    @admin.display(description=_("points"))
    def points(self, obj):
        return obj.purchase.points

    @admin.display(description=_("why flagged"))
    def rules(self, obj):
        return format_html_join(
            "", "<div>{}</div>", ((RULE_LABELS.get(r.get("rule"), r.get("rule")),) for r in obj.reasons)
        )

    def _decide(self, request, ids, service, done) -> None:
        ok = 0
        for review_id in ids:
            try:
                service(review_id=review_id, user=request.user)
                ok += 1
            except ApplicationError as exc:
                self.message_user(request, f"#{review_id}: {exc.message}", messages.ERROR)
        if ok:
            self.message_user(request, done % {"n": ok}, messages.SUCCESS)

    @admin.action(description=_("Approve selected scans"), permissions=["review"])
    def approve_selected(self, request, queryset):
        self._decide(
            request, list(queryset.values_list("pk", flat=True)), scan_review_approve, _("%(n)d scan(s) approved.")
        )

    @admin.action(description=_("Reverse the points of selected scans"), permissions=["review"])
    def reverse_selected(self, request, queryset):
        self._decide(
            request, list(queryset.values_list("pk", flat=True)), scan_review_reverse, _("%(n)d scan(s) reversed.")
        )
