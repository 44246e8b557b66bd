"""Till safety: scans the velocity rules flagged for a person to review (loyalty.services.velocity)."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils.translation import gettext_lazy as _

__all__ = ["ScanReview"]


class ScanReview(models.Model):
    """A credited scan that looked unusual (a burst of one card's scans, an amount over the store's range).

    The scan was answered and credited; a reviewer approves it or reverses its points (one ledger row with its
    own idempotency key, `reversal`)."""

    class Status(models.TextChoices):
        PENDING = "pending", _("Pending")
        APPROVED = "approved", _("Approved")
        REVERSED = "reversed", _("Reversed")

    purchase = models.OneToOneField(
        "loyalty.Purchase", on_delete=models.PROTECT, related_name="review", verbose_name=_("purchase")
    )
    # [{"rule": "card_burst" | "amount_over_max" | "amount_over_store_p99", "detail": str, ...}]
    reasons = models.JSONField(_("reasons"), default=list)
    status = models.CharField(_("status"), max_length=8, choices=Status.choices, default=Status.PENDING)
    created_at = models.DateTimeField(_("flagged at"), auto_now_add=True)
    decided_at = models.DateTimeField(_("decided at"), null=True, blank=True)
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("decided by"),
    )
    reversal = models.ForeignKey(
        "loyalty.PointsLedger",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("reversal"),
    )

    class Meta:
        verbose_name = _("scan review")
        verbose_name_plural = _("scan reviews")
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["status", "-created_at"], name="loyalty_scanreview_queue")]

    def __str__(self) -> str:
        return f"Review of purchase {self.purchase_id} ({self.status})"
