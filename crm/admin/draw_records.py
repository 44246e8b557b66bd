"""Read-only console lists of what draws and group packets wrote: prizes, entries, group announcements and posts.
They are made by the services (crm.services.draws, crm.services.group_packets), never edited here; a failed
announcement or post is sent again by an action, through the service (audited)."""

from __future__ import annotations

from django.contrib import admin, messages
from django.utils.translation import gettext_lazy as _
from unfold.admin import ModelAdmin

from crm.errors import ApplicationError
from crm.models import GroupDrawAnnouncement, GroupDrawEntry, GroupDrawPrize, GroupPacketPost
from crm.services import draws, group_packets


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
    list_display = ["id", "draw", "kind", "status", "last_error"]
    search_fields = ["draw__name", "kind"]
    list_filter = ["kind", "status"]
    actions = ["retry_announcement"]

    def has_retry_permission(self, request) -> bool:
        return request.user.has_perm("crm.change_groupdraw")

    @admin.action(description=_("Send the failed announcements again"), permissions=["retry"])
    def retry_announcement(self, request, queryset):
        for row in queryset.filter(status=GroupDrawAnnouncement.Status.FAILED):
            try:
                outcome = draws.announcement_retry(row.pk, user=request.user)
            except ApplicationError as exc:
                outcome = exc.code
            level = messages.SUCCESS if outcome == "sent" else messages.ERROR
            self.message_user(request, _("%(key)s: %(outcome)s") % {"key": row.idempotency_key, "outcome": outcome},
                              level)  # fmt: skip


@admin.register(GroupPacketPost)
class GroupPacketPostAdmin(_ReadOnly):
    list_display = ["id", "pool", "sender", "status", "msgid", "errmsg"]
    search_fields = ["msgid", "sender"]
    list_filter = ["status"]
    actions = ["repost"]

    def has_repost_permission(self, request) -> bool:
        return request.user.has_perm("crm.change_grouppacket")

    @admin.action(description=_("Post the failed group packets again"), permissions=["repost"])
    def repost(self, request, queryset):
        for post in queryset.filter(status=GroupPacketPost.Status.FAILED):
            repost_message(self, request, post.pool_id)


def repost_message(model_admin, request, pool_id: int) -> None:
    """Re-post one group packet's failed post and say how it went (the packet's page and the posts' list)."""
    try:
        outcome = group_packets.group_packet_post_retry(pool_id, user=request.user)
    except ApplicationError as exc:
        model_admin.message_user(request, _("Pool %(id)s: %(error)s") % {"id": pool_id, "error": exc.message},
                                 messages.ERROR)  # fmt: skip
        return
    level = messages.SUCCESS if outcome.startswith("sent") else messages.ERROR
    model_admin.message_user(request, _("Pool %(id)s: %(error)s") % {"id": pool_id, "error": outcome}, level)
