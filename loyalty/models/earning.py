"""Earning rules (issue 12.1): what a receipt earns, edited in the console; bonus grants, once per contact."""

from __future__ import annotations

from django.db import models
from django.utils.translation import gettext_lazy as _

__all__ = ["EarningBonusGrant", "EarningRule"]


class EarningRule(models.Model):
    """One earning rule. `kind` says which fields matter (the service validates them):

    - base: `fen_per_point` (the rate; without an active one, settings.LOYALTY_FEN_PER_POINT);
    - multiplier: `multiplier_pct` (200 = double points) where every condition set matches: `tier`, `store`,
      `starts_on`..`ends_on` (Asia/Shanghai dates, inclusive), `category` or `sku` (those two per line);
    - min_spend: `min_spend_fen`, below which a receipt earns nothing;
    - exclude_sku: `sku`, lines that earn nothing;
    - cap_receipt / cap_day: `cap_points` per receipt / per card per Asia/Shanghai day;
    - bonus: `bonus_points` once per contact on `event` (birthday: once per contact and birthday's year, on a
      receipt in the birthday week);
    - birthday_week: `multiplier_pct` on a receipt whose Asia/Shanghai date is within 3 days of the contact's
      birthday (optionally only for a `tier` or `store`)."""

    class Kind(models.TextChoices):
        BASE = "base", _("Base rate")
        MULTIPLIER = "multiplier", _("Multiplier")
        MIN_SPEND = "min_spend", _("Minimum spend")
        EXCLUDE_SKU = "exclude_sku", _("Excluded SKU")
        CAP_RECEIPT = "cap_receipt", _("Cap per receipt")
        CAP_DAY = "cap_day", _("Cap per day")
        BONUS = "bonus", _("Bonus for an event")
        BIRTHDAY_WEEK = "birthday_week", _("Birthday-week multiplier")

    class Event(models.TextChoices):
        FIRST_PURCHASE = "first_purchase", _("First purchase")
        PROFILE_COMPLETE = "profile_complete", _("Profile complete")
        BIRTHDAY = "birthday", _("Birthday (once a year, in the birthday week)")

    name = models.CharField(_("name"), max_length=128)
    kind = models.CharField(_("kind"), max_length=16, choices=Kind.choices)
    is_active = models.BooleanField(_("active"), default=True)
    fen_per_point = models.PositiveIntegerField(_("fen per point"), null=True, blank=True)
    multiplier_pct = models.PositiveIntegerField(
        _("multiplier (%)"), null=True, blank=True, help_text=_("200 doubles the points.")
    )
    tier = models.ForeignKey(
        "loyalty.Tier", verbose_name=_("tier"), null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    store = models.ForeignKey(
        "loyalty.Store", verbose_name=_("store"), null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    starts_on = models.DateField(_("starts on"), null=True, blank=True)
    ends_on = models.DateField(_("ends on"), null=True, blank=True)
    category = models.CharField(_("product category"), max_length=64, blank=True)
    sku = models.CharField(_("SKU"), max_length=64, blank=True)
    min_spend_fen = models.PositiveBigIntegerField(_("minimum spend (fen)"), null=True, blank=True)
    cap_points = models.PositiveIntegerField(_("cap (points)"), null=True, blank=True)
    event = models.CharField(_("event"), max_length=32, choices=Event.choices, blank=True)
    bonus_points = models.PositiveIntegerField(_("bonus points"), null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["kind", "id"]
        verbose_name = _("earning rule")
        verbose_name_plural = _("earning rules")
        permissions = [("preview_earning", "Can preview what a receipt would earn")]

    def __str__(self) -> str:
        return self.name


class EarningBonusGrant(models.Model):
    """A bonus event paid to a contact: unique per (contact, event, period), so each bonus is paid at most once
    (period "" for once-ever events; the birthday's year for the birthday bonus: once a year)."""

    contact = models.ForeignKey("crm.Contact", on_delete=models.PROTECT, related_name="+")
    event = models.CharField(max_length=32, choices=EarningRule.Event.choices)
    period = models.CharField(max_length=8, blank=True, default="")
    rule = models.ForeignKey(EarningRule, null=True, on_delete=models.SET_NULL, related_name="grants")
    points = models.PositiveIntegerField()
    purchase = models.ForeignKey("loyalty.Purchase", null=True, on_delete=models.PROTECT, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["contact", "event", "period"], name="uniq_earning_bonus_period")]

    def __str__(self) -> str:
        return f"{self.contact_id} {self.event}"
