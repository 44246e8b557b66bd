"""Campaign runs and their group recipients in the admin: the database view, read-only. Runs are started,
paused, resumed and cancelled from the campaign's console page, through crm.services.run_control."""

from __future__ import annotations

from django.contrib import admin
from unfold.admin import ModelAdmin

from crm.models import CampaignGroupRecipient, CampaignRun


class _ReadOnly:
    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


@admin.register(CampaignRun)
class CampaignRunAdmin(_ReadOnly, ModelAdmin):
    list_display = ["id", "campaign", "occurrence", "status", "planned", "audience", "finished_at"]
    list_filter = ["status"]
    search_fields = ["campaign__name"]
    raw_id_fields = ["campaign"]
    date_hierarchy = "occurrence"


@admin.register(CampaignGroupRecipient)
class CampaignGroupRecipientAdmin(_ReadOnly, ModelAdmin):
    list_display = ["id", "campaign", "run", "chat_id", "sender", "status", "reason", "sent_at"]
    list_filter = ["status"]
    search_fields = ["chat_id", "group__name", "campaign__name"]
    raw_id_fields = ["campaign", "run", "group", "sender", "mass_message"]
