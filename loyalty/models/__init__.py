"""Loyalty models: tiers, cards, the append-only points ledger, stores, purchases (till scans) and rewards."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils.translation import gettext_lazy as _


class Tier(models.Model):
    """A membership level reached at `min_points` lifetime points; VIP tiers earn an invitation to the VIP group."""

    name = models.CharField(max_length=64, unique=True)
    min_points = models.PositiveIntegerField(unique=True)
    # The threshold when the tier rules' basis is spend (fen in the window); rising with rank, checked by the service.
    min_spend_fen = models.PositiveBigIntegerField(
        _("spend threshold (fen)"), default=0, blank=True, help_text=_("Used when the tier rules' basis is spend.")
    )
    is_vip = models.BooleanField(default=False)
    rank = models.PositiveSmallIntegerField(unique=True, help_text="Order of tiers, lowest first.")

    class Meta:
        ordering = ["rank"]

    def __str__(self) -> str:
        return self.name


class Card(models.Model):
    """The loyalty card of one company-owned contact, made on first use."""

    contact = models.OneToOneField("crm.Contact", on_delete=models.PROTECT, related_name="loyalty_card")
    number = models.CharField(max_length=16, unique=True, help_text="Printed card number (digits, Luhn check).")
    # No index of its own: on PostgreSQL card_tier_contact (loyalty 0004) leads with tier_id (0015 says why).
    tier = models.ForeignKey(
        Tier, null=True, blank=True, on_delete=models.PROTECT, related_name="cards", db_index=False
    )
    # Both are caches of the ledger, written only by loyalty.services.points under a row lock on the card.
    points_balance = models.IntegerField(default=0)
    lifetime_points = models.IntegerField(default=0, help_text="Earned + adjusted points.")
    # Since when a scheduled evaluation has found the card below its tier's threshold (None: not below); the
    # card keeps its tier until this + the grace period.
    tier_below_since = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-id"]
        # No balance >= 0 check: a return may leave a debt when LOYALTY_RETURN_NEGATIVE_BALANCE (loyalty 0006).

    def __str__(self) -> str:
        return self.number


class AppendOnlyQuerySet(models.QuerySet):
    """Refuses bulk update and delete: ledger rows are facts, corrected only by new rows."""

    def update(self, **kwargs):
        raise TypeError(f"{self.model.__name__} is append-only: add a correcting entry instead")

    def delete(self):
        raise TypeError(f"{self.model.__name__} is append-only: add a correcting entry instead")


class PointsLedger(models.Model):
    """One points movement (append-only). A card's balance is the sum of its rows."""

    class Kind(models.TextChoices):
        EARN = "earn", "Earn"
        REDEEM = "redeem", "Redeem"
        ADJUST = "adjust", "Adjust"
        EXPIRE = "expire", "Expire"
        RETURN = "return", "Return"

    card = models.ForeignKey(Card, on_delete=models.PROTECT, related_name="ledger")
    delta = models.IntegerField()
    kind = models.CharField(max_length=8, choices=Kind.choices)
    reason = models.CharField(max_length=255, blank=True)
    # Every credit carries a key; the unique constraint makes a retried credit a no-op.
    idempotency_key = models.CharField(max_length=200, unique=True)
    purchase = models.ForeignKey(
        "loyalty.Purchase", null=True, blank=True, on_delete=models.PROTECT, related_name="ledger_entries"
    )
    redemption = models.ForeignKey(
        "loyalty.Redemption", null=True, blank=True, on_delete=models.PROTECT, related_name="ledger_entries"
    )
    balance_after = models.IntegerField()
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    objects = AppendOnlyQuerySet.as_manager()

    class Meta:
        ordering = ["-id"]
        verbose_name = "points ledger entry"
        verbose_name_plural = "points ledger"
        constraints = [models.CheckConstraint(condition=~models.Q(delta=0), name="ledger_delta_nonzero")]

    def __str__(self) -> str:
        return f"{self.card_id} {self.delta:+d} {self.kind}"

    def save(self, *args, **kwargs) -> None:
        if not self._state.adding:
            raise TypeError("PointsLedger is append-only: add a correcting entry instead")
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise TypeError("PointsLedger is append-only: add a correcting entry instead")


class Store(models.Model):
    """A physical store whose tills scan cards; `code` is what the till sends (e.g. store-sh-001)."""

    code = models.SlugField(max_length=32, unique=True)
    name = models.CharField(max_length=128)
    city = models.CharField(max_length=64, blank=True)
    is_active = models.BooleanField(default=True)
    # Store managers and cashiers who work here: they see, and scan at, only their own stores.
    members = models.ManyToManyField(
        settings.AUTH_USER_MODEL,
        blank=True,
        related_name="loyalty_stores",
        help_text="Store managers and cashiers bound to this store.",
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["code"]
        permissions = [("all_stores", "Can see and use every store, not only the stores one is bound to")]

    def __str__(self) -> str:
        return f"{self.name} ({self.code})"


class Purchase(models.Model):
    """A receipt scanned at a till against a card; a receipt credits at most once (unique per store)."""

    # No index of its own: the unique (store, receipt_id) leads with it.
    store = models.ForeignKey(Store, on_delete=models.PROTECT, related_name="purchases", db_index=False)
    receipt_id = models.CharField(max_length=64)
    card = models.ForeignKey(Card, on_delete=models.PROTECT, related_name="purchases")
    amount_fen = models.PositiveBigIntegerField()
    points = models.IntegerField(default=0)
    balance_after = models.IntegerField(default=0, help_text="Card balance right after this receipt's credit.")
    cashier = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    qr_issued_at = models.DateTimeField(null=True, blank=True, help_text="When the scanned QR token was issued.")
    tier_before = models.ForeignKey(Tier, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    tier_after = models.ForeignKey(Tier, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    # No index of its own: on PostgreSQL purchase_scanned_contact_amount (loyalty 0004) leads with it.
    scanned_at = models.DateTimeField(auto_now_add=True)
    # The earning rules that applied and what each gave: [{"rule": id|null, "name": str, "points": int}, ...].
    earn_breakdown = models.JSONField(default=list, blank=True)

    class Meta:
        ordering = ["-id"]
        constraints = [models.UniqueConstraint(fields=["store", "receipt_id"], name="uniq_purchase_store_receipt")]
        permissions = [("use_till", "Can scan cards and redeem rewards at a till")]

    def __str__(self) -> str:
        return f"{self.store_id}/{self.receipt_id}"


class Product(models.Model):
    """The brand's catalogue: a SKU and its category (segments by category bought, earning rules by category)."""

    sku = models.CharField(max_length=64, unique=True)
    name = models.CharField(max_length=128, blank=True)
    category = models.CharField(max_length=64, blank=True, db_index=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["sku"]

    def __str__(self) -> str:
        return f"{self.sku} {self.name}".strip()


class PurchaseLine(models.Model):
    """One item on a scanned receipt: what the customer bought."""

    purchase = models.ForeignKey(Purchase, on_delete=models.CASCADE, related_name="lines")
    # No index of its own: on PostgreSQL purchaseline_sku_scanned_contact (loyalty 0004) leads with it.
    sku = models.CharField(max_length=64)
    name = models.CharField(max_length=128, blank=True)
    qty = models.PositiveIntegerField(default=1)
    amount_fen = models.PositiveBigIntegerField()
    # The points this line earned (its share after multipliers and caps): what a return of it reverses.
    points = models.IntegerField(default=0)

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return f"{self.sku} x{self.qty}"


class TierChange(models.Model):
    """The event of one tier move of a card (also on the contact's timeline); entering a VIP tier invites to the
    VIP group, leaving one untags and notifies (loyalty.services.tiers)."""

    class Reason(models.TextChoices):
        UPGRADE = "upgrade", _("Upgrade")
        DOWNGRADE = "downgrade", _("Downgrade")
        MANUAL = "manual", _("Manual")

    card = models.ForeignKey(Card, on_delete=models.PROTECT, related_name="tier_changes")
    from_tier = models.ForeignKey(Tier, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    to_tier = models.ForeignKey(Tier, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    reason = models.CharField(_("reason"), max_length=10, choices=Reason.choices, default=Reason.UPGRADE)
    # What the rules counted when the move was made: basis (points/spend), the window's value, the window.
    basis = models.CharField(max_length=8, blank=True)
    value = models.BigIntegerField(default=0)
    window_days = models.PositiveIntegerField(default=0)
    lifetime_points = models.IntegerField()
    vip_invite_sent_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-id"]

    def __str__(self) -> str:
        return f"{self.card_id}: {self.from_tier_id} -> {self.to_tier_id}"

    @property
    def entered_vip(self) -> bool:
        return bool(self.to_tier and self.to_tier.is_vip and not (self.from_tier and self.from_tier.is_vip))

    @property
    def left_vip(self) -> bool:
        return bool(self.from_tier and self.from_tier.is_vip and not (self.to_tier and self.to_tier.is_vip))


class Reward(models.Model):
    """Something a customer can redeem for points (a coupon, a gift or a discount); `stock` None means unlimited.
    Each redemption or grant issues a single-use Coupon (loyalty/models/coupons.py) the till redeems once."""

    class Kind(models.TextChoices):
        COUPON = "coupon", _("Coupon")
        GIFT = "gift", _("Gift")
        DISCOUNT = "discount", _("Discount")

    name = models.CharField(max_length=128)
    kind = models.CharField(max_length=16, choices=Kind.choices, default=Kind.GIFT)
    description = models.CharField(max_length=256, blank=True, default="")
    value_fen = models.PositiveIntegerField(null=True, blank=True, help_text="Face value of a coupon or discount.")
    points_cost = models.PositiveIntegerField()
    stock = models.PositiveIntegerField(null=True, blank=True)
    per_customer_limit = models.PositiveIntegerField(null=True, blank=True, help_text="Empty: no limit per card.")
    # When it can be redeemed (absolute, UTC) and how long an issued coupon lasts (days after issue); either or both.
    valid_from = models.DateTimeField(null=True, blank=True)
    valid_until = models.DateTimeField(null=True, blank=True)
    valid_days = models.PositiveIntegerField(null=True, blank=True, help_text="Coupon valid N days after issue.")
    eligible_tiers = models.ManyToManyField(Tier, blank=True, related_name="rewards", help_text="Empty: every tier.")
    is_active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["points_cost", "id"]
        constraints = [models.CheckConstraint(condition=models.Q(points_cost__gt=0), name="reward_cost_gt_0")]

    def __str__(self) -> str:
        return f"{self.name} ({self.points_cost} pts)"


class Redemption(models.Model):
    """A reward redeemed with points; the request key makes a retried redemption return the first one."""

    card = models.ForeignKey(Card, on_delete=models.PROTECT, related_name="redemptions")
    reward = models.ForeignKey(Reward, on_delete=models.PROTECT, related_name="redemptions")
    points = models.PositiveIntegerField()
    idempotency_key = models.CharField(max_length=128, unique=True)
    store = models.ForeignKey(Store, null=True, blank=True, on_delete=models.PROTECT, related_name="redemptions")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-id"]

    def __str__(self) -> str:
        return f"{self.card_id}: {self.reward_id}"


# Issue 12's areas each keep their models in their own module (imported here, after the core models they refer to).
from loyalty.models.coupons import *  # noqa: E402,F403
from loyalty.models.earning import *  # noqa: E402,F403
from loyalty.models.lots import *  # noqa: E402,F403
from loyalty.models.tiers import *  # noqa: E402,F403
from loyalty.models.till import *  # noqa: E402,F403
