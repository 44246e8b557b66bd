"""Console sign-in lockouts (django-axes), in the console's theme: who is locked out, and every sign-in. Deleting a
lockout unlocks that username and address (as `manage.py axes_reset_username` does)."""

from __future__ import annotations

from axes.models import AccessAttempt, AccessLog
from django.contrib import admin
from django.utils.translation import gettext_lazy as _
from unfold.admin import ModelAdmin


@admin.register(AccessAttempt)
class AccessAttemptAdmin(ModelAdmin):
    list_display = ["username", "ip_address", "failures_since_start", "attempt_time"]
    search_fields = ["username", "ip_address"]
    date_hierarchy = "attempt_time"
    readonly_fields = ["username", "ip_address", "user_agent", "path_info", "failures_since_start", "attempt_time",
                       "get_data", "post_data"]  # fmt: skip
    actions = ["delete_selected"]

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False


@admin.register(AccessLog)
class AccessLogAdmin(ModelAdmin):
    list_display = ["username", "ip_address", "attempt_time", "logout_time"]
    search_fields = ["username", "ip_address"]
    date_hierarchy = "attempt_time"
    readonly_fields = ["username", "ip_address", "user_agent", "path_info", "attempt_time", "logout_time"]

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False


AccessAttemptAdmin.delete_selected = admin.actions.delete_selected
AccessAttemptAdmin.delete_selected.short_description = _("Unlock (delete the failed attempts)")
