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
from unfold.admin import ModelAdmin

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
