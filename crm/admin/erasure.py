"""Read-only console list of erasures (crm.services.erasure): who erased whom, when, why, what was kept and deleted,
and whether a new add superseded the tombstone. Written by the service only; the admin role alone sees it."""

from __future__ import annotations

from django.contrib import admin

from crm.admin.base import ReadOnlyModelAdmin
from crm.models import ErasureTombstone


@admin.register(ErasureTombstone)
class ErasureTombstoneAdmin(ReadOnlyModelAdmin):
    list_display = ["id", "contact", "erased_at", "erased_by_name", "reason", "superseded_at"]
    list_filter = ["erased_at", "superseded_at"]
    search_fields = ["erased_by_name", "reason", "contact__id"]
    readonly_fields = ["contact", "erased_at", "erased_by", "erased_by_name", "reason", "summary", "superseded_at",
                       "superseded_by"]
    exclude = ["external_userid_hash", "phone_hash"]
    raw_id_fields = ["contact", "superseded_by", "erased_by"]
