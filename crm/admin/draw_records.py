"""Read-only console lists of what draws and group packets wrote: prizes, entries, group announcements and posts.
They are made by the services (crm.services.draws, crm.services.group_packets), never edited here."""

from __future__ import annotations

from django.contrib import admin
from unfold.admin import ModelAdmin

from crm.models import GroupDrawAnnouncement, GroupDrawEntry, GroupDrawPrize, GroupPacketPost


class _ReadOnly(ModelAdmin):
    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


@admin.register(GroupDrawPrize)
class GroupDrawPrizeAdmin(_ReadOnly):
    list_display = ["id", "draw", "kind"]
    search_fields = ["draw__name", "kind"]


@admin.register(GroupDrawEntry)
class GroupDrawEntryAdmin(_ReadOnly):
    list_display = ["id", "draw", "contact", "external_userid"]
    search_fields = ["external_userid", "contact__name", "draw__name"]
    raw_id_fields = ["draw", "contact"]


@admin.register(GroupDrawAnnouncement)
class GroupDrawAnnouncementAdmin(_ReadOnly):
    list_display = ["id", "draw", "kind", "status"]
    search_fields = ["draw__name", "kind"]
    list_filter = ["kind", "status"]


@admin.register(GroupPacketPost)
class GroupPacketPostAdmin(_ReadOnly):
    list_display = ["id", "pool", "sender", "status", "msgid"]
    search_fields = ["msgid", "sender"]
    list_filter = ["status"]
