"""The segment builder: a saved segment's name and definition, edited as a tree of AND / OR groups with NOT, each
condition a field of the filter language's catalogue (crm.services.segments.segment_fields), with a live count and a
sample of members (the builder's JS posts the definition to the API's preview, debounced, with the session).

Writes go through crm.services.saved_segments; a refusal is shown where it belongs: the name on the name field, a
bad condition inline at the condition the service's path names (e.g. `segment.all[1].value`), a segment still used
by campaigns as a message naming them. The list of segments is the admin's changelist (crm/admin/segments.py)."""

from __future__ import annotations

import json

from django import forms
from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.urls import NoReverseMatch, reverse
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy, ngettext
from django.views.decorators.http import require_POST
from unfold.widgets import UnfoldAdminTextareaWidget, UnfoldAdminTextInputWidget

from crm.console.render import admin_url, console_render, permission_required
from crm.errors import ApplicationError, Conflict
from crm.models import Segment

VIEW_PERMISSION = "crm.view_segment"
ADD_PERMISSION = "crm.add_segment"
CHANGE_PERMISSION = "crm.change_segment"
DELETE_PERMISSION = "crm.delete_segment"
# The API's routes (crm/api/segments.py): the builder uses the same preview as API clients, so one language.
PREVIEW_PATH = "/api/segments/preview/"
FIELDS_PATH = "/api/segments/fields/"
# Fields of the form itself; any other field a service names is a part of the definition.
FORM_FIELDS = ("name", "description")


class SegmentForm(forms.Form):
    name = forms.CharField(label=gettext_lazy("Name"), max_length=128, widget=UnfoldAdminTextInputWidget)
    description = forms.CharField(label=gettext_lazy("Description"), max_length=512, required=False,
                                  widget=UnfoldAdminTextareaWidget(attrs={"rows": 2}))
    # The tree editor keeps the definition here as JSON; without JS it is the one thing posted.
    definition = forms.CharField(required=False, widget=forms.HiddenInput)

    def clean_definition(self) -> dict:
        raw = (self.cleaned_data.get("definition") or "").strip() or "{}"
        try:
            value = json.loads(raw)
        except ValueError:
            raise forms.ValidationError(_("The definition is not valid JSON.")) from None
        if not isinstance(value, dict):
            raise forms.ValidationError(_("The definition must be an object."))
        return value


def _segment_or_404(segment_id: int) -> Segment:
    from crm.selectors.segments import segment_get

    segment = segment_get(segment_id)
    if segment is None:
        raise Http404(_("No such segment."))
    return segment


def _route(name: str, fallback: str) -> str:
    try:
        return reverse(name)
    except NoReverseMatch:
        return fallback


def _catalogue() -> list[dict]:
    from crm.services.segments import segment_fields

    return segment_fields()


def _strings() -> dict:
    """The builder's words, translated here so the JS holds none of its own."""
    return {
        "all": _("All of these (AND)"),
        "any": _("Any of these (OR)"),
        "not": _("NOT"),
        "not_title": _("Select the contacts that do not match this"),
        "add_condition": _("Add condition"),
        "add_group": _("Add group"),
        "remove": _("Remove"),
        "empty_group": _("No condition yet: this group matches every contact."),
        "field": _("Field"),
        "operator": _("Operator"),
        "value": _("Value"),
        "choose": _("Choose…"),
        "from": _("from"),
        "to": _("to"),
        "yuan": _("yuan"),
        "days_before": _("in the last"),
        "days_after": _("days"),
        "skus": _("SKUs (comma-separated)"),
        "categories": _("Categories"),
        "yes": _("yes"),
        "multi_hint": _("Ctrl-click (⌘-click on a Mac) to choose several."),
        "counting": _("Counting…"),
        "matches": _("contacts match"),
        "no_sample": _("No contact matches."),
        "count_failed": _("The count could not be made. Try again in a moment."),
        "fix_condition": _("Fix the condition marked in red to see the count."),
        "unknown_field": _("This condition's field is not in the catalogue; it is kept as it is."),
        "ops": {
            "any": _("has any of"), "all": _("has all of"), "none": _("has none of"),
            "in": _("is one of"), "not_in": _("is none of"), "is": _("is"),
            "gte": _("at least"), "lte": _("at most"), "between": _("between"),
            "before": _("before"), "after": _("after"),
            "granted": _("granted"), "withdrawn": _("withdrawn"),
        },
    }


def _error_for(form: SegmentForm, exc: ApplicationError) -> dict | None:
    """Put a service's refusal on the form field it names; a part of the definition comes back as {path, message}
    for the builder to show at that condition."""
    field = exc.field or ""
    if field in FORM_FIELDS:
        form.add_error(field, exc.message)
        return None
    return {"path": field, "message": exc.message}


def _builder(request: HttpRequest, form: SegmentForm, segment: Segment | None, *, error: dict | None = None,
             status: int = 200) -> HttpResponse:
    can_change = request.user.has_perm(CHANGE_PERMISSION if segment else ADD_PERMISSION)
    campaigns = [{"name": name, "url": reverse("console:campaign-detail", args=[pk])}
                 for pk, name in segment.campaigns.order_by("name").values_list("id", "name")[:6]] if segment else []
    context = {
        "form": form,
        "segment": segment,
        "fields": _catalogue(),
        "strings": _strings(),
        "error": error,
        "can_change": can_change,
        "can_delete": bool(segment) and request.user.has_perm(DELETE_PERMISSION),
        "campaigns": campaigns,
        "campaign_count": segment.campaigns.count() if segment else 0,
        "preview_url": _route("segment-preview", PREVIEW_PATH),
        "fields_url": _route("segment-fields", FIELDS_PATH),
        "contact_url": reverse("console:contact", args=[0]).replace("/0/", "/{id}/"),
        "list_url": admin_url("admin:crm_segment_changelist"),
        "contacts_url": (f"{admin_url('admin:crm_contact_changelist')}?segment={segment.pk}"
                         if segment and admin_url("admin:crm_contact_changelist") else None),
        "input_class": UnfoldAdminTextInputWidget().attrs["class"],
    }
    title = segment.name if segment else _("New segment")
    response = console_render(request, "console/segment_builder.html", context, title=title)
    response.status_code = status
    return response


@permission_required(ADD_PERMISSION)
def segment_new(request: HttpRequest) -> HttpResponse:
    if request.method != "POST":
        return _builder(request, SegmentForm(initial={"definition": json.dumps({"all": []})}), None)
    from crm.services.saved_segments import segment_create

    form = SegmentForm(request.POST)
    error = None
    if form.is_valid():
        data = form.cleaned_data
        try:
            segment = segment_create(name=data["name"], description=data["description"],
                                     definition=data["definition"], actor=request.user)
        except ApplicationError as exc:
            error = _error_for(form, exc)
        else:
            messages.success(request, _("Segment “%(name)s” saved.") % {"name": segment.name})
            return redirect("console:segment-edit", segment.pk)
    return _builder(request, form, None, error=error, status=400)


@permission_required(VIEW_PERMISSION)
def segment_edit(request: HttpRequest, segment_id: int) -> HttpResponse:
    segment = _segment_or_404(segment_id)
    if request.method != "POST":
        from crm.services.saved_segments import segment_definition

        initial = {"name": segment.name, "description": segment.description,
                   "definition": json.dumps(segment_definition(segment))}
        return _builder(request, SegmentForm(initial=initial), segment)
    if not request.user.has_perm(CHANGE_PERMISSION):
        raise PermissionDenied
    from crm.services.saved_segments import segment_update

    form = SegmentForm(request.POST)
    error = None
    if form.is_valid():
        data = form.cleaned_data
        try:
            segment = segment_update(segment.pk, name=data["name"], description=data["description"],
                                     definition=data["definition"])
        except ApplicationError as exc:
            error = _error_for(form, exc)
        else:
            messages.success(request, _("Segment “%(name)s” saved.") % {"name": segment.name})
            return redirect("console:segment-edit", segment.pk)
    return _builder(request, form, segment, error=error, status=400)


@require_POST
@permission_required(DELETE_PERMISSION)
def segment_delete_view(request: HttpRequest, segment_id: int) -> HttpResponse:
    from crm.services.saved_segments import segment_delete

    segment = _segment_or_404(segment_id)
    try:
        segment_delete(segment.pk)
    except Conflict as exc:
        names = list(segment.campaigns.order_by("name").values_list("name", flat=True))
        if not names:  # another saved segment refers to it: the service says which
            messages.error(request, _("Segment “%(name)s” is not deleted: %(reason)s")
                           % {"name": segment.name, "reason": exc.message})
            return redirect("console:segment-edit", segment.pk)
        messages.error(request, ngettext(
            "Segment “%(name)s” is not deleted: %(count)d campaign uses it (%(campaigns)s). Change that campaign's "
            "audience first.",
            "Segment “%(name)s” is not deleted: %(count)d campaigns use it (%(campaigns)s). Change those campaigns' "
            "audience first.",
            len(names),
        ) % {"name": segment.name, "count": len(names), "campaigns": ", ".join(names[:5])
             + ("…" if len(names) > 5 else "")})
        return redirect("console:segment-edit", segment.pk)
    except ApplicationError as exc:
        messages.error(request, exc.message)
        return redirect("console:segment-edit", segment.pk)
    messages.success(request, _("Segment “%(name)s” deleted.") % {"name": segment.name})
    return redirect(admin_url("admin:crm_segment_changelist") or "admin:index")
