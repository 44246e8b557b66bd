"""Admin: WeCom callback events (read-only log, with a "process again" action)."""

from __future__ import annotations

from django.contrib import admin, messages
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext
from unfold.admin import ModelAdmin

from crm.models import CallbackEvent


@admin.register(CallbackEvent)
class CallbackEventAdmin(ModelAdmin):
    list_display = ("id", "event", "change_type", "status", "attempts", "event_time", "received_at", "processed_at")
    list_filter = ("status", "event", "change_type")
    search_fields = ("dedupe_key", "decrypted_xml", "result", "error")
    date_hierarchy = "received_at"
    readonly_fields = [f.name for f in CallbackEvent._meta.fields]
    actions = ["process_again"]

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    @admin.action(description=_("Process again (skipped for events already processed)"))
    def process_again(self, request, queryset) -> None:
        from crm.tasks.callbacks import process_callback

        ids = list(queryset.exclude(status=CallbackEvent.Status.PROCESSED).values_list("id", flat=True))
        for event_id in ids:
            process_callback.delay(event_id)
        self.message_user(request, ngettext("Queued %(n)d event.", "Queued %(n)d events.", len(ids)) % {"n": len(ids)},
                          messages.SUCCESS)
