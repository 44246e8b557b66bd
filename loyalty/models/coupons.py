"""Coupons: the single-use code a redemption (points) or a grant (campaign, journey; no points) issues.

The code is the secret shown as a QR on the card page and scanned once at the till: random (secrets), unique
by constraint. `idempotency_key` (unique) makes a retried redemption or grant issue one coupon only."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils.translation import gettext_lazy as _

from loyalty.models import Card, Redemption, Reward, Store

__all__ = ["CampaignCoupon", "CampaignCouponGrant", "Coupon", "JourneyGrant", "JourneyStep"]


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


class CampaignCoupon(models.Model):
    """A campaign's coupon: each customer its message is delivered to gets one, without points (loyalty owns this
    row because crm never imports loyalty; crm only tells loyalty when deliveries are stored, push_hooks)."""

    campaign = models.OneToOneField("crm.Campaign", on_delete=models.CASCADE, related_name="coupon_reward")
    reward = models.ForeignKey(Reward, on_delete=models.PROTECT, related_name="campaign_coupons")
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"{self.campaign_id}: {self.reward_id}"


class CampaignCouponGrant(models.Model):
    """What a campaign run gave one recipient: the coupon, or why not (out of stock, outside validity). One per
    (run, contact) by constraint, with the coupon's own idempotency key `campaign:<run>:<contact>`."""

    class Status(models.TextChoices):
        GRANTED = "granted", _("Granted")
        REFUSED = "refused", _("Not granted")

    campaign_coupon = models.ForeignKey(CampaignCoupon, on_delete=models.CASCADE, related_name="grants")
    run = models.ForeignKey("crm.CampaignRun", on_delete=models.CASCADE, related_name="+")
    contact = models.ForeignKey("crm.Contact", on_delete=models.CASCADE, related_name="+")
    coupon = models.OneToOneField(Coupon, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    status = models.CharField(max_length=16, choices=Status.choices)
    reason = models.CharField(max_length=32, blank=True, help_text="Why not granted: e.g. out_of_stock.")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]
        constraints = [models.UniqueConstraint(fields=["run", "contact"], name="uniq_campaign_coupon_run_contact")]

    def __str__(self) -> str:
        return f"{self.run_id}:{self.contact_id} {self.status}"


class JourneyStep(models.Model):
    """A step of the customer journey: when a card reaches a moment (joins, first purchase, enters a tier), grant a
    coupon without points, once per customer (loyalty.services.journeys)."""

    class Trigger(models.TextChoices):
        CARD_JOINED = "card_joined", _("Joins the loyalty programme (card made)")
        FIRST_PURCHASE = "first_purchase", _("First purchase")
        TIER_ENTERED = "tier_entered", _("Enters a tier")

    class Action(models.TextChoices):
        GRANT_COUPON = "grant_coupon", _("Grant a coupon")

    name = models.CharField(max_length=128)
    trigger = models.CharField(max_length=32, choices=Trigger.choices)
    tier = models.ForeignKey(
        "loyalty.Tier", null=True, blank=True, on_delete=models.PROTECT, related_name="+",
        help_text="The tier entered (only for 'Enters a tier').",
    )  # fmt: skip
    action = models.CharField(max_length=32, choices=Action.choices, default=Action.GRANT_COUPON)
    reward = models.ForeignKey(Reward, on_delete=models.PROTECT, related_name="journey_steps")
    is_active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return self.name


class JourneyGrant(models.Model):
    """What a journey step gave one customer: the coupon, or why not. One per (step, contact) by constraint, with
    the coupon's own idempotency key `journey:<step>:<contact>`."""

    class Status(models.TextChoices):
        GRANTED = "granted", _("Granted")
        REFUSED = "refused", _("Not granted")

    step = models.ForeignKey(JourneyStep, on_delete=models.PROTECT, related_name="grants")  # switch it off instead
    contact = models.ForeignKey("crm.Contact", on_delete=models.CASCADE, related_name="+")
    coupon = models.OneToOneField(Coupon, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    status = models.CharField(max_length=16, choices=Status.choices)
    reason = models.CharField(max_length=32, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]
        constraints = [models.UniqueConstraint(fields=["step", "contact"], name="uniq_journey_grant_step_contact")]

    def __str__(self) -> str:
        return f"{self.step_id}:{self.contact_id} {self.status}"
