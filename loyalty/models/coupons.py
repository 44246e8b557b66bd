"""Coupons: the single-use code a redemption (points) or a grant (campaign, journey; no points) issues.

The code is the secret shown as a QR on the card page and scanned once at the till: random (secrets), unique
by constraint. `idempotency_key` (unique) makes a retried redemption or grant issue one coupon only."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils.translation import gettext_lazy as _

from loyalty.models import Card, Redemption, Reward, Store

__all__ = ["Coupon"]


class Coupon(models.Model):
    class Source(models.TextChoices):
        POINTS = "points", _("Points")
        CAMPAIGN = "campaign", _("Campaign")
        JOURNEY = "journey", _("Journey")
        CONSOLE = "console", _("Console")

    reward = models.ForeignKey(Reward, on_delete=models.PROTECT, related_name="coupons")
    card = models.ForeignKey(Card, on_delete=models.PROTECT, related_name="coupons")
    redemption = models.OneToOneField(
        Redemption, null=True, blank=True, on_delete=models.PROTECT, related_name="coupon"
    )
    code = models.CharField(max_length=32, unique=True)
    source = models.CharField(max_length=16, choices=Source.choices)
    idempotency_key = models.CharField(max_length=160, unique=True)
    issued_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField(null=True, blank=True)
    redeemed_at = models.DateTimeField(null=True, blank=True)
    redeemed_store = models.ForeignKey(
        Store, null=True, blank=True, on_delete=models.PROTECT, related_name="coupons_redeemed"
    )
    redeemed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ["-id"]
        indexes = [models.Index(fields=["card", "reward"], name="coupon_card_reward")]

    def __str__(self) -> str:
        return f"{self.reward_id}:{self.card_id}"
