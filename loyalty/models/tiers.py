"""Tier rules (basis, rolling window, grace) and the once-only effects of a tier change (VIP untag, notify)."""

from __future__ import annotations

from django.db import models
from django.utils.translation import gettext_lazy as _

__all__ = ["TierEffect", "TierPolicy"]


class TierPolicy(models.Model):
    """The tier set's rules, one row (pk=1): what a threshold counts, over how many days, and how long a card
    below its tier keeps it before a scheduled evaluation moves it down."""

    class Basis(models.TextChoices):
        POINTS = "points", _("Points earned")
        SPEND = "spend", _("Spend")

    basis = models.CharField(_("basis"), max_length=8, choices=Basis.choices, default=Basis.POINTS)
    window_days = models.PositiveIntegerField(
        _("window (days)"), default=365, help_text=_("Rolling window the thresholds count; 0 counts all history.")
    )
    grace_days = models.PositiveIntegerField(
        _("grace (days)"), default=30, help_text=_("How long a card below its tier keeps it before a downgrade.")
    )
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = _("tier rules")
        verbose_name_plural = _("tier rules")
        constraints = [models.CheckConstraint(condition=models.Q(pk=1), name="tierpolicy_singleton")]

    def __str__(self) -> str:
        return str(_("Tier rules"))


class TierEffect(models.Model):
    """An external effect of one tier change (untag, notify on leaving VIP): the unique (change, kind) is the
    idempotency key, claimed before WeCom is called, so a redelivered task never acts twice."""

    class Kind(models.TextChoices):
        UNTAG = "untag", _("Untagged VIP")
        NOTIFY = "notify", _("Notified")

    class Status(models.TextChoices):
        SENDING = "sending", _("Sending")
        DONE = "done", _("Done")
        SKIPPED = "skipped", _("Skipped")
        FAILED = "failed", _("Failed")

    change = models.ForeignKey("loyalty.TierChange", on_delete=models.PROTECT, related_name="effects")
    kind = models.CharField(max_length=8, choices=Kind.choices)
    status = models.CharField(max_length=8, choices=Status.choices, default=Status.SENDING)
    detail = models.CharField(max_length=255, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-id"]
        constraints = [models.UniqueConstraint(fields=["change", "kind"], name="uniq_tiereffect_change_kind")]

    def __str__(self) -> str:
        return f"{self.change_id} {self.kind} {self.status}"
