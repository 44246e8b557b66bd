"""WeCom callback events: stored raw before they are acknowledged, then processed by a worker."""

from django.db import models
from django.utils import timezone

__all__ = ["CallbackEvent"]


class CallbackEvent(models.Model):
    """One WeCom callback as received (raw, decrypted and parsed); processed at most once in effect."""

    class Status(models.TextChoices):
        RECEIVED = "received", "Received"
        PROCESSED = "processed", "Processed"
        FAILED = "failed", "Failed"

    # sha256 of the event's identity (FromUserName + CreateTime, plus Event/ChangeType/ids): WeCom redelivers
    # an event it thinks we missed, and this unique key makes the second copy a no-op.
    dedupe_key = models.CharField(max_length=64, unique=True)
    msg_signature = models.CharField(max_length=64, blank=True)
    timestamp = models.BigIntegerField(null=True, blank=True, help_text="The signed query timestamp.")
    nonce = models.CharField(max_length=64, blank=True)
    raw_body = models.TextField(help_text="The encrypted envelope as POSTed.")
    decrypted_xml = models.TextField()
    payload = models.JSONField(default=dict, help_text="The event XML's child tags, exactly as named.")
    event = models.CharField(max_length=64, blank=True, db_index=True)
    change_type = models.CharField(max_length=64, blank=True)
    event_time = models.DateTimeField(null=True, blank=True, help_text="CreateTime: WeCom may deliver out of order.")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.RECEIVED)
    attempts = models.PositiveIntegerField(default=0)
    error = models.TextField(blank=True)
    result = models.TextField(blank=True)
    received_at = models.DateTimeField(default=timezone.now)
    last_attempt_at = models.DateTimeField(null=True, blank=True)
    processed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-id"]
        indexes = [models.Index(fields=["status", "received_at"], name="crm_callback_status_recv")]

    def __str__(self) -> str:
        return f"{self.event}/{self.change_type} #{self.pk} ({self.status})"
