"""Temporary media (素材): what media/upload stored, valid 3 days from its upload."""

from __future__ import annotations

from django.db import models

from wecom_sim.models.world import SimCorp


class SimMedia(models.Model):
    corp = models.ForeignKey(SimCorp, on_delete=models.CASCADE, related_name="media")
    media_id = models.CharField(max_length=64, unique=True)
    type = models.CharField(max_length=8)  # image | voice | video | file
    filename = models.CharField(max_length=255)
    size = models.PositiveIntegerField()
    sha256 = models.CharField(max_length=64)
    content_type = models.CharField(max_length=128, blank=True)
    created_at = models.DateTimeField()  # simulated time of the upload

    def __str__(self) -> str:
        return f"{self.type} {self.media_id}"
