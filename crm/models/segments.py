"""Saved segments: a named definition in the one filter language (crm.services.segments) that the contacts
list, the API and campaigns share."""

from django.conf import settings
from django.db import models

__all__ = ["Segment"]


class Segment(models.Model):
    name = models.CharField(max_length=128, unique=True)
    description = models.CharField(max_length=512, blank=True)
    # {"all": [...]} / {"any": [...]} / {"not": {...}} / {"field": ..., "op": ..., "value": ...}
    definition = models.JSONField(default=dict)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    last_count = models.PositiveIntegerField(null=True, blank=True)
    counted_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name
