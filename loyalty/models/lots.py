"""Points lots (each positive credit, with an expiry) and till returns (issue 12, items 2 and 3)."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils.translation import gettext_lazy as _

__all__ = ["PointsLot", "PurchaseReturn", "ReturnLine"]


class PointsLot(models.Model):
    """What one positive credit left to spend, until it expires. Spending takes the oldest lots first.

    Invariant (kept by loyalty.services.points.points_credit under the card lock):
    sum(remaining of the card's lots) == max(card.points_balance, 0)."""

    card = models.ForeignKey("loyalty.Card", on_delete=models.PROTECT, related_name="lots")
    # The credit that opened it (null only for the opening lot of a balance that predates lots).
    entry = models.OneToOneField(
        "loyalty.PointsLedger", null=True, blank=True, on_delete=models.PROTECT, related_name="lot"
    )
    points = models.PositiveIntegerField(_("points"))
    remaining = models.PositiveIntegerField(_("remaining"))
    # The last day the points can be used (Asia/Shanghai) and the UTC instant they lapse (the next local midnight).
    expires_on = models.DateField(_("expires on"))
    expires_at = models.DateTimeField(_("expires at"), db_index=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["expires_at", "id"]
        verbose_name = _("points lot")
        verbose_name_plural = _("points lots")
        indexes = [
            models.Index(
                fields=["card", "expires_at", "id"], condition=models.Q(remaining__gt=0), name="lot_open_by_card"
            )
        ]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(remaining__lte=models.F("points")), name="lot_remaining_lte_points"
            )
        ]

    def __str__(self) -> str:
        return f"{self.remaining}/{self.points} until {self.expires_on}"


class PurchaseReturn(models.Model):
    """A till's return of some lines of one receipt; `return_id` is the till's idempotency key (unique per store)."""

    store = models.ForeignKey("loyalty.Store", on_delete=models.PROTECT, related_name="returns")
    return_id = models.CharField(_("return id"), max_length=64)
    purchase = models.ForeignKey("loyalty.Purchase", on_delete=models.PROTECT, related_name="returns")
    # What the returned lines cost (net spend for tiers reads this: loyalty.services.tiers.RETURN_MODELS).
    amount_fen = models.PositiveBigIntegerField(_("amount (fen)"), default=0)
    points_reversed = models.PositiveIntegerField(_("points reversed"), default=0)
    # Points the lines earned but the balance no longer held (LOYALTY_RETURN_NEGATIVE_BALANCE=False).
    shortfall = models.PositiveIntegerField(_("shortfall"), default=0)
    entry = models.OneToOneField(
        "loyalty.PointsLedger", null=True, blank=True, on_delete=models.PROTECT, related_name="purchase_return"
    )
    cashier = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(_("created at"), auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name = _("return")
        verbose_name_plural = _("returns")
        constraints = [models.UniqueConstraint(fields=["store", "return_id"], name="uniq_return_store_return_id")]

    def __str__(self) -> str:
        return f"{self.return_id} ({self.purchase_id})"


class ReturnLine(models.Model):
    """Returned qty of one purchase line; once per (return, line), and never more than was bought in total."""

    purchase_return = models.ForeignKey(PurchaseReturn, on_delete=models.CASCADE, related_name="lines")
    line = models.ForeignKey("loyalty.PurchaseLine", on_delete=models.PROTECT, related_name="returned")
    sku = models.CharField(max_length=64)
    qty = models.PositiveIntegerField()
    amount_fen = models.PositiveBigIntegerField(default=0)
    points = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["id"]
        constraints = [
            models.UniqueConstraint(fields=["purchase_return", "line"], name="uniq_return_line"),
            models.CheckConstraint(condition=models.Q(qty__gt=0), name="return_line_qty_gt_0"),
        ]

    def __str__(self) -> str:
        return f"{self.sku} x{self.qty}"
