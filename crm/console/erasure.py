"""The contact page's data-rights actions: download everything held about the person as JSON, and erase them
(a reason and an explicit confirmation, then crm.services.erasure). Export needs crm.export_contact, erase
crm.erase_contact (the admin role only)."""

from __future__ import annotations

import json

from django import forms
from django.contrib import messages
from django.core.serializers.json import DjangoJSONEncoder
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.urls import reverse
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from crm.console.render import console_render, permission_required
from crm.errors import ApplicationError
from crm.models.contacts import Contact
from crm.services.erasure import REASON_MAX, contact_erase, contact_export
from crm.services.roles import ERASE_CONTACT, EXPORT_CONTACT


class EraseForm(forms.Form):
    reason = forms.CharField(
        label=gettext_lazy("Reason"), max_length=REASON_MAX, widget=forms.Textarea(attrs={"rows": 3}),
        help_text=gettext_lazy("Why this person is erased, e.g. their request and its reference. Kept in the audit "
                               "log."),
        error_messages={"required": gettext_lazy("Give the reason for the erasure.")},
    )
    confirm = forms.BooleanField(
        label=gettext_lazy("I understand that this cannot be undone."),
        error_messages={"required": gettext_lazy("Confirm that the erasure cannot be undone.")},
    )


def _contact_or_404(contact_id: int) -> Contact:
    contact = Contact.objects.filter(pk=contact_id).first()
    if contact is None:
        raise Http404(_("No such contact."))
    return contact


@permission_required(EXPORT_CONTACT)
def contact_export_download(request: HttpRequest, contact_id: int) -> HttpResponse:
    """The export document as a JSON file (audited by the service)."""
    contact = _contact_or_404(contact_id)
    document = contact_export(contact.pk, user=request.user, reason="downloaded from the console")
    response = HttpResponse(json.dumps(document, cls=DjangoJSONEncoder, ensure_ascii=False, indent=2),
                            content_type="application/json; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="contact-{contact.pk}-export.json"'
    return response


@permission_required(ERASE_CONTACT)
def contact_erase_view(request: HttpRequest, contact_id: int) -> HttpResponse:
    """GET: what erasure keeps and deletes, and the form; POST: erase, back to the contact page."""
    contact = _contact_or_404(contact_id)
    page_url = reverse("console:contact", args=[contact.pk])
    if contact.erased_at is not None:
        messages.warning(request, _("This contact has already been erased."))
        return HttpResponseRedirect(page_url)
    form = EraseForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            contact_erase(contact.pk, reason=form.cleaned_data["reason"], user=request.user)
        except ApplicationError as exc:
            form.add_error("reason" if exc.field == "reason" else None, exc.message)
        else:
            messages.success(request, _("The contact was erased. What money and audit need is kept, anonymised."))
            return HttpResponseRedirect(page_url)
    context = {"contact": contact, "form": form, "page_url": page_url}
    return console_render(request, "console/contact_erase.html", context,
                          title=_("Erase %(contact)s") % {"contact": contact})
