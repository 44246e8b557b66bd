"""The pool list's approval filter: the console's approvals queue is the pool list filtered to "awaiting"."""

from __future__ import annotations

from django.conf import settings
from django.contrib import admin
from django.utils.translation import gettext_lazy as _

from crm.models import RedPacketPool


class PoolApprovalFilter(admin.SimpleListFilter):
    title = _("approval")
    parameter_name = "approval"

    def lookups(self, request, model_admin):
        return [("awaiting", _("Awaiting a second admin")), ("approved", _("Approved")),
                ("not_needed", _("Not needed (under the threshold)"))]  # fmt: skip

    def queryset(self, request, queryset):
        # The same rule as redpacket_pool_needs_approval, as a query; only drafts wait (a live pool was approved).
        over = {"budget_fen__gt": settings.REDPACKET_APPROVAL_THRESHOLD_FEN}
        if self.value() == "awaiting":
            return queryset.filter(**over, approved_by__isnull=True, status=RedPacketPool.Status.DRAFT)
        if self.value() == "approved":
            return queryset.filter(approved_by__isnull=False)
        if self.value() == "not_needed":
            return queryset.filter(budget_fen__lte=settings.REDPACKET_APPROVAL_THRESHOLD_FEN)
        return queryset
