"""Channels: WeCom contact ways ("contact me" QR codes) that attribute new contacts."""

from django.db import models


class Channel(models.Model):
    """A contact way with a `state` (e.g. store-sh-001) that tells where a new contact came from."""

    name = models.CharField(max_length=128)
    state = models.CharField(max_length=30, unique=True)
    config_id = models.CharField(max_length=64, blank=True, db_index=True)
    qr_code = models.URLField(max_length=512, blank=True)
    staff = models.ManyToManyField("crm.Staff", related_name="channels", blank=True)
    welcome_text = models.TextField(blank=True)
    active_from = models.DateTimeField(null=True, blank=True)
    active_until = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return f"{self.name} ({self.state})"
