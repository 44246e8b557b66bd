"""The durable outbox of callbacks to the CRM."""

from __future__ import annotations

from django.db import models


class SimCallback(models.Model):
    """One event to deliver; pending -> sending -> delivered | failed | dropped."""

    corpid = models.CharField(max_length=64)
    event = models.CharField(max_length=64)
    change_type = models.CharField(max_length=64, blank=True)
    xml = models.TextField()
    status = models.CharField(max_length=16, default="pending", db_index=True)
    attempts = models.IntegerField(default=0)
    next_attempt_at = models.DateTimeField()
    claimed_at = models.DateTimeField(null=True, blank=True)
    last_status = models.IntegerField(null=True, blank=True)
    last_error = models.CharField(max_length=500, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    delivered_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"#{self.pk} {self.event}/{self.change_type} {self.status}"
