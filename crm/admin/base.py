"""What every console admin shares: writes go through services, and a service's refusal (ApplicationError) reaches
the user as a form error or a message, never a 500.

- Forms validate with the services' own checks (`campaign_validate`, `redpacket_pool_validate`, ...) and put the
  refusal on the field it names: `add_service_error(form, exc, {"service_field": "form_field"})`.
- `save_model` / `save_formset` / actions call the service; `adopt(obj, saved)` copies what the service saved onto
  the object the admin goes on with (its pk for the redirect and the history row).
- `ServiceModelAdmin` catches a refusal raised past validation (the state moved on between the form and the save):
  the admin's transaction rolls back, so nothing is half-written, and the page says why.
"""

from __future__ import annotations

from django import forms
from django.contrib import messages
from django.db import models
from django.http import HttpResponseRedirect
from django.urls import reverse
from unfold.admin import ModelAdmin
from unfold.decorators import action as unfold_action

from crm.errors import ApplicationError
from crm.wecom.errors import WeComError


def add_service_error(form: forms.BaseForm, exc: ApplicationError, field_map: dict[str, str] | None = None) -> None:
    """Show a service's refusal on the form field it names (a non-field error when that field is not on the form)."""
    field = (field_map or {}).get(exc.field or "", exc.field)
    if field and "." in field and field not in form.fields:  # "segment.tags" -> "segment", "red_packet.x" -> "x"
        head, tail = field.split(".", 1)[0], field.rsplit(".", 1)[-1]
        field = head if head in form.fields else tail
    form.add_error(field if field in form.fields else None, exc.message)


def adopt(obj: models.Model, saved: models.Model) -> models.Model:
    """Make the admin's unsaved object the row the service saved."""
    for field in saved._meta.concrete_fields:
        setattr(obj, field.attname, getattr(saved, field.attname))
    obj._state.adding = False
    obj._state.db = saved._state.db
    return obj


class ReadOnlyModelAdmin(ModelAdmin):
    """A database view nobody edits here: rows are derived, or written by services elsewhere."""

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


class ServiceModelAdmin(ModelAdmin):
    """An unfold ModelAdmin whose add, change, delete and action views turn a late refusal into a message."""

    def _refused(self, request, exc: Exception):
        message = exc.message if isinstance(exc, ApplicationError) else str(exc)
        self.message_user(request, message, messages.ERROR)
        return HttpResponseRedirect(request.get_full_path())

    def changeform_view(self, request, object_id=None, form_url="", extra_context=None):
        try:
            return super().changeform_view(request, object_id, form_url, extra_context)
        except (ApplicationError, WeComError) as exc:
            return self._refused(request, exc)

    def delete_view(self, request, object_id, extra_context=None):
        try:
            return super().delete_view(request, object_id, extra_context)
        except (ApplicationError, WeComError) as exc:
            return self._refused(request, exc)

    def changelist_view(self, request, extra_context=None):
        try:
            return super().changelist_view(request, extra_context)
        except (ApplicationError, WeComError) as exc:
            return self._refused(request, exc)


def console_page_action(url_name: str, description, *, icon: str = "open_in_new", perms: tuple[str, ...] = ("view",),
                        args=lambda object_id: [object_id], query=None):
    """An unfold detail/row action (for `actions_detail` / `actions_row`) that opens the object's console page
    (`console:<url_name>`): the admin's list and form stay the database view, the page is the product view.

    `perms` are unfold's permission names: "view" calls the admin's has_view_permission, "x" its
    has_x_permission (avoid dotted "app.codename": unfold's system check looks those up in the database, which fails
    before the first migrate); `args(object_id)` gives the page's URL arguments, `query(object_id)` a query string."""

    @unfold_action(description=description, icon=icon, url_path=f"console-{url_name}", permissions=list(perms))
    def open_page(self, request, object_id):
        url = reverse(f"console:{url_name}", args=args(object_id))
        return HttpResponseRedirect(f"{url}?{query(object_id)}" if query else url)

    return open_page


def console_list_action(url_name: str, description, *, icon: str = "open_in_new", perms: tuple[str, ...] = ()):
    """An unfold list action (for `actions_list`): a button above the list that opens a console page."""

    @unfold_action(description=description, icon=icon, url_path=f"console-{url_name}", permissions=list(perms))
    def open_page(self, request):
        return HttpResponseRedirect(reverse(f"console:{url_name}"))

    return open_page


class OutsideTransactionFormMixin:
    """For admins whose add or change form calls a service that speaks WeCom (channel_create, channel_update,
    staff_add): Django runs the form view inside one transaction, and holding it across an HTTP call would keep the
    database locked meanwhile (on SQLite, the simulator answering that call writes to the same file and would wait
    for it). The service calls WeCom first and then writes in its own transaction, so nothing is half-written; a
    refusal is a message on the form."""

    def changeform_view(self, request, object_id=None, form_url="", extra_context=None):
        if request.method != "POST":
            return super().changeform_view(request, object_id, form_url, extra_context)
        from django.contrib.admin import helpers
        from unfold.forms import AdminForm, Fieldline

        helpers.AdminForm, helpers.Fieldline = AdminForm, Fieldline  # as unfold's changeform_view does
        try:
            return self._changeform_view(request, object_id, form_url, extra_context)
        except (ApplicationError, WeComError) as exc:
            return self._refused(request, exc)
