"""Admin: WeCom callback events (read-only log). Failed ones show their payload and error and can be replayed
(crm.services.callbacks.callback_replay: audited, queued); the sidebar's "Failed callbacks" is this list filtered."""

from __future__ import annotations

import json

from django.contrib import admin, messages
from django.http import HttpResponseRedirect
from django.urls import reverse
from django.utils.html import format_html
from django.utils.translation import gettext_lazy as _
from unfold.admin import ModelAdmin
from unfold.decorators import action as unfold_action

from crm.models import CallbackEvent
from crm.services.callbacks import REPLAYABLE, callback_replay

REPLAY_PERM = "crm.replay_callbackevent"


@admin.register(CallbackEvent)
class CallbackEventAdmin(ModelAdmin):
    list_display = ("id", "event", "change_type", "status", "attempts", "error_short", "next_attempt_at",
                    "received_at", "applied_at")  # fmt: skip
    list_filter = ("status", "event", "change_type")
    search_fields = ("dedupe_key", "decrypted_xml", "result", "error")
    date_hierarchy = "received_at"
    fields = ("status", "failed_step_shown", "error", "attempts", "next_attempt_at", "payload_shown", "result",
              "event", "change_type", "event_time", "received_at", "last_attempt_at", "routed_at", "applied_at",
              "dedupe_key", "decrypted_xml")  # fmt: skip
    readonly_fields = fields
    actions = ["replay"]
    actions_detail = ["replay_one"]

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_replay_permission(self, request, object_id=None) -> bool:
        """The permission; on an event's page (unfold passes its id), only while the event is failed."""
        if not request.user.has_perm(REPLAY_PERM):
            return False
        if object_id is None:
            return True
        return CallbackEvent.objects.filter(pk=object_id, status__in=REPLAYABLE).exists()

    @admin.display(description=_("Error"))
    def error_short(self, obj: CallbackEvent) -> str:
        return obj.error[:80]

    @admin.display(description=_("Failed at"))
    def failed_step_shown(self, obj: CallbackEvent) -> str:
        return {"route": _("Routing"), "apply": _("Applying the effect")}.get(obj.failed_step, "—")

    @admin.display(description=_("Payload"))
    def payload_shown(self, obj: CallbackEvent) -> str:
        return format_html('<pre data-testid="callback-payload" class="whitespace-pre-wrap">{}</pre>',
                           json.dumps(obj.payload, ensure_ascii=False, indent=2, sort_keys=True))

    def _replay(self, request, ids: list[int]) -> int:
        queued = callback_replay(event_ids=ids, actor=request.user)
        self.message_user(
            request,
            _("Replay queued: %(n)d failed event(s).") % {"n": len(queued)},
            messages.SUCCESS if queued else messages.WARNING,
        )
        return len(queued)

    @admin.action(description=_("Replay (failed events only)"), permissions=["replay"])
    def replay(self, request, queryset) -> None:
        self._replay(request, list(queryset.values_list("id", flat=True)))

    @unfold_action(description=_("Replay"), url_path="replay", permissions=["replay"])
    def replay_one(self, request, object_id):
        self._replay(request, [int(object_id)])
        return HttpResponseRedirect(reverse("admin:crm_callbackevent_change", args=[object_id]))
