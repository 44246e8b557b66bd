"""Rollups the console dashboard reads instead of scanning millions of rows; kept by a beat task
(crm.tasks.rollups) through crm.services.rollups. Each row can be recomputed from its source at any time."""

from django.db import models

__all__ = ["CampaignFunnelStat", "DailyContactStat", "DashboardSnapshot"]


class DailyContactStat(models.Model):
    """Follow relations added and lost on one Asia/Shanghai day through one contact-way state ("" = none)."""

    day = models.DateField()
    state = models.CharField(max_length=64, blank=True, help_text="Contact-way state of the relations.")
    adds = models.PositiveIntegerField(default=0)
    deletes = models.PositiveIntegerField(default=0)
    refreshed_at = models.DateTimeField()

    class Meta:
        ordering = ["day", "state"]
        constraints = [models.UniqueConstraint(fields=["day", "state"], name="uniq_daily_contact_stat")]

    def __str__(self) -> str:
        return f"{self.day} {self.state or '-'}: +{self.adds} -{self.deletes}"


class CampaignFunnelStat(models.Model):
    """One campaign's funnel as last counted: planned -> sent -> delivered -> claimed."""

    campaign = models.OneToOneField("crm.Campaign", on_delete=models.CASCADE, related_name="funnel_stat")
    planned = models.PositiveIntegerField(default=0)
    sent = models.PositiveIntegerField(default=0)
    delivered = models.PositiveIntegerField(default=0)
    claimed = models.PositiveIntegerField(default=0)
    refreshed_at = models.DateTimeField()

    def __str__(self) -> str:
        return f"funnel of {self.campaign_id}: {self.planned}/{self.sent}/{self.delivered}/{self.claimed}"


class DashboardSnapshot(models.Model):
    """A named figure the dashboard shows, counted by a beat task and kept as JSON: for figures of a part crm
    may not import (loyalty writes its tiers and points here through crm.services.rollups.snapshot_put)."""

    key = models.CharField(max_length=64, unique=True)
    data = models.JSONField(default=dict)
    refreshed_at = models.DateTimeField()

    def __str__(self) -> str:
        return f"{self.key} @ {self.refreshed_at:%Y-%m-%d %H:%M}"
