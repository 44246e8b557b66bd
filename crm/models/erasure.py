"""Erasure tombstones: what stops an erased person from coming back through sync, callbacks or imports."""

from django.conf import settings
from django.db import models
from django.db.models import Q

__all__ = ["ErasureTombstone"]


class ErasureTombstone(models.Model):
    """One erasure: who erased whom, when and why, and the keys (keyed hashes, never the ids themselves) that full
    sync, reconciliation, callbacks and order/phone imports check before they create or fill a contact.

    A new add by the same WeChat user (a new, consented relationship) supersedes it: the keys stop blocking (the
    partial unique constraints hold one live tombstone per key) and the row stays as the record of the erasure."""

    # The anonymised row the erasure left (kept: claims, ledger rows and purchases point at it).
    contact = models.ForeignKey("crm.Contact", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    # HMAC-SHA256 (PHONE_HASH_KEY) of "eid:" + external_userid, and the contact's phone hash ("" when none).
    external_userid_hash = models.CharField(max_length=64)
    phone_hash = models.CharField(max_length=64, blank=True)
    reason = models.TextField()
    erased_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    erased_by_name = models.CharField(max_length=150, help_text="Who erased, as named when it was done.")
    erased_at = models.DateTimeField(db_index=True)
    # What the erasure kept (anonymised) and deleted, per part: the receipt of the operation.
    summary = models.JSONField(default=dict, blank=True)
    superseded_at = models.DateTimeField(null=True, blank=True)
    superseded_by = models.ForeignKey(
        "crm.Contact", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ["-erased_at", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["external_userid_hash"], condition=Q(superseded_at__isnull=True),
                                    name="uniq_tombstone_live_eid"),
            models.UniqueConstraint(fields=["phone_hash"], condition=Q(superseded_at__isnull=True) & ~Q(phone_hash=""),
                                    name="uniq_tombstone_live_phone"),
        ]

    def __str__(self) -> str:
        return f"erasure of contact #{self.contact_id} at {self.erased_at:%Y-%m-%d %H:%M}"
