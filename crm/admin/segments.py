"""Saved segments in the console: the list is this changelist (name, description, last count, when it was counted,
how many campaigns use it); adding and editing open the segment builder (crm/console/segment.py), which saves
through crm.services.saved_segments; deleting is the builder's too (the service refuses while a campaign uses it).

`SavedSegmentFilter` filters the contacts list by a saved segment through the filter language's own resolve, so
the console, the API and campaigns select the same contacts."""

from __future__ import annotations

from zoneinfo import ZoneInfo

from django.contrib import admin
from django.db.models import Count, QuerySet
from django.http import HttpRequest, HttpResponseRedirect
from django.urls import reverse
from django.utils import formats, timezone
from django.utils.translation import gettext_lazy as _

from crm.admin.base import ServiceModelAdmin
from crm.models import Segment

SHANGHAI = ZoneInfo("Asia/Shanghai")
VIEW_SEGMENT = "crm.view_segment"


@admin.register(Segment)
class SegmentAdmin(ServiceModelAdmin):
    list_display = ["name", "description", "last_count", "counted_at_shanghai", "used_by"]
    search_fields = ["name", "description"]
    ordering = ["name"]

    def get_queryset(self, request: HttpRequest) -> QuerySet:
        return super().get_queryset(request).annotate(used_by_count=Count("campaigns"))

    def get_actions(self, request: HttpRequest) -> dict:
        actions = super().get_actions(request)
        actions.pop("delete_selected", None)  # one at a time, through segment_delete (refused while used)
        return actions

    @admin.display(description=_("Counted at (Asia/Shanghai)"), ordering="counted_at")
    def counted_at_shanghai(self, obj: Segment) -> str:
        if obj.counted_at is None:
            return "—"
        return formats.date_format(timezone.localtime(obj.counted_at, SHANGHAI), "Y-m-d H:i")

    @admin.display(description=_("Used by campaigns"), ordering="used_by_count")
    def used_by(self, obj: Segment) -> int:
        return obj.used_by_count

    # Adding, editing and deleting happen in the builder, whose views check the same model permissions.
    def add_view(self, request, form_url="", extra_context=None):
        return HttpResponseRedirect(reverse("console:segment-new"))

    def change_view(self, request, object_id, form_url="", extra_context=None):
        return HttpResponseRedirect(reverse("console:segment-edit", args=[object_id]))

    def delete_view(self, request, object_id, extra_context=None):
        return HttpResponseRedirect(reverse("console:segment-edit", args=[object_id]))


class SavedSegmentFilter(admin.SimpleListFilter):
    """The contacts list filtered by a saved segment (?segment=<id>), resolved by crm.services.segments."""

    title = _("saved segment")
    parameter_name = "segment"

    def lookups(self, request: HttpRequest, model_admin) -> list[tuple[int, str]]:
        if not request.user.has_perm(VIEW_SEGMENT):  # no segments to offer: the filter is not shown
            return []
        return list(Segment.objects.order_by("name").values_list("id", "name")[:500])

    def has_output(self) -> bool:
        # A ?segment= given by someone not offered any segment still filters (to nothing), not silently dropped.
        return super().has_output() or bool(self.value())

    def queryset(self, request: HttpRequest, queryset: QuerySet) -> QuerySet:
        value = self.value()
        if not value:
            return queryset
        if not request.user.has_perm(VIEW_SEGMENT):
            return queryset.none()
        from crm.services.saved_segments import segment_definition
        from crm.services.segments import resolve

        segment = Segment.objects.filter(pk=int(value)).first() if value.isdigit() else None
        if segment is None:
            return queryset.none()
        members = resolve(segment_definition(segment))  # normalised by the service, as campaigns resolve it
        return queryset.filter(pk__in=members.order_by().values("pk"))
