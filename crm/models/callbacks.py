"""WeCom callback events: stored raw before they are acknowledged, then routed and applied by workers.

State machine: received -> routed -> applied | failed. `routed` means a handler took the event and its effect
(re-reading WeCom, writing contacts/groups/tags) is queued; only `applied` means that effect happened. A failure
at either step is `failed` with the reason in `error`; `routed_at` tells which step failed (unset: routing)."""

from django.db import models
from django.utils import timezone

__all__ = ["CallbackEvent"]


class CallbackEvent(models.Model):
    """One WeCom callback as received (raw, decrypted and parsed); applied at most once in effect."""

    class Status(models.TextChoices):
        RECEIVED = "received", "Received"
        ROUTED = "routed", "Routed"
        APPLIED = "applied", "Applied"
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
    # Attempts at routing or applying that failed or applied; a routing that succeeds is not counted, so the
    # retry budget (CALLBACK_MAX_ATTEMPTS) is spent on the effect.
    attempts = models.PositiveIntegerField(default=0)
    error = models.TextField(blank=True, help_text="Why the last attempt failed (type: message).")
    result = models.TextField(blank=True)
    received_at = models.DateTimeField(default=timezone.now)
    last_attempt_at = models.DateTimeField(null=True, blank=True)
    routed_at = models.DateTimeField(null=True, blank=True)
    applied_at = models.DateTimeField(null=True, blank=True)
    next_attempt_at = models.DateTimeField(
        null=True, blank=True, help_text="When a failed event is retried automatically; empty once out of attempts."
    )

    class Meta:
        ordering = ["-id"]
        permissions = [("replay_callbackevent", "Can replay a failed WeCom callback")]
        indexes = [models.Index(fields=["status", "received_at"], name="crm_callback_status_recv")]

    def __str__(self) -> str:
        return f"{self.event}/{self.change_type} #{self.pk} ({self.status})"

    @property
    def failed_step(self) -> str:
        """Which step a failed event failed at: "route" (no handler took it yet) or "apply"."""
        if self.status != self.Status.FAILED:
            return ""
        return "apply" if self.routed_at else "route"
