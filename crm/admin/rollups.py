"""Admin: the dashboard's rollups, read-only. They are derived (a beat task recomputes each row from its source),
so nobody edits them; they are listed so an operator can see what the dashboard read and when it was counted."""

from __future__ import annotations

from django.contrib import admin

from crm.admin.base import ReadOnlyModelAdmin
from crm.models import CampaignFunnelStat, DailyContactStat, DashboardSnapshot

ReadOnlyRollupAdmin = ReadOnlyModelAdmin


@admin.register(DailyContactStat)
class DailyContactStatAdmin(ReadOnlyRollupAdmin):
    list_display = ("day", "state", "adds", "deletes", "refreshed_at")
    list_filter = ("day",)
    search_fields = ("state",)


@admin.register(CampaignFunnelStat)
class CampaignFunnelStatAdmin(ReadOnlyRollupAdmin):
    list_display = ("campaign", "planned", "sent", "delivered", "claimed", "refreshed_at")
    search_fields = ("campaign__name",)


@admin.register(DashboardSnapshot)
class DashboardSnapshotAdmin(ReadOnlyRollupAdmin):
    list_display = ("key", "refreshed_at")
    search_fields = ("key",)
