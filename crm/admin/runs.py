"""Campaign runs and their group recipients in the admin: the database view, read-only. Runs are started,
paused, resumed and cancelled from the campaign's console page, through crm.services.run_control."""

from __future__ import annotations

from django.contrib import admin

from crm.admin.base import ReadOnlyModelAdmin
from crm.models import CampaignGroupRecipient, CampaignRun


@admin.register(CampaignRun)
class CampaignRunAdmin(ReadOnlyModelAdmin):
    list_display = ["id", "campaign", "occurrence", "status", "planned", "audience", "finished_at"]
    list_filter = ["status"]
    search_fields = ["campaign__name"]
    raw_id_fields = ["campaign"]
    date_hierarchy = "occurrence"


@admin.register(CampaignGroupRecipient)
class CampaignGroupRecipientAdmin(ReadOnlyModelAdmin):
    list_display = ["id", "campaign", "run", "chat_id", "sender", "status", "reason", "sent_at"]
    list_filter = ["status"]
    search_fields = ["chat_id", "group__name", "campaign__name"]
    raw_id_fields = ["campaign", "run", "group", "sender", "mass_message"]
