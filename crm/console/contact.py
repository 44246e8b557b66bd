"""The contact page: profile, follow relations and their staff, tags (add and remove), consent per purpose with its
history, panels other apps register (loyalty's card and purchases), and the timeline, newest first."""

from __future__ import annotations

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import permission_required
from django.db import transaction
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.urls import reverse
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.http import require_POST

from crm.console.panels import contact_panels_render
from crm.console.render import admin_url, console_render, page_of
from crm.errors import ApplicationError
from crm.models.contacts import Contact
from crm.models.tags import Tag
from crm.selectors.contact_page import (
    contact_page_consents,
    contact_page_contact,
    contact_page_follows,
    contact_page_tags,
    contact_page_tags_addable,
    contact_page_timeline,
)
from crm.services.contacts import contact_set_birthday
from crm.services.tags import contact_tag_add, contact_tag_remove

TAG_SOURCE = "console"


class TagChoiceField(forms.ModelChoiceField):
    def label_from_instance(self, obj: Tag) -> str:
        return f"{obj.group.name} / {obj.name}"


class TagAddForm(forms.Form):
    tag = TagChoiceField(queryset=Tag.objects.none(), label=gettext_lazy("Tag"),
                         error_messages={"invalid_choice": gettext_lazy("Choose one of the tags offered.")})

    def __init__(self, *args, contact: Contact, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.fields["tag"].queryset = contact_page_tags_addable(contact)


def _contact_or_404(contact_id: int) -> Contact:
    contact = contact_page_contact(contact_id)
    if contact is None:
        raise Http404(_("No such contact."))
    return contact


def _page_url(contact: Contact) -> str:
    return reverse("console:contact", args=[contact.pk])


@permission_required("crm.view_contact", raise_exception=True)
def contact_page(request: HttpRequest, contact_id: int) -> HttpResponse:
    contact = _contact_or_404(contact_id)
    user = request.user
    can_add = user.has_perm("crm.add_contacttag")
    context = {
        "contact": contact,
        "follows": contact_page_follows(contact),
        "contact_tags": contact_page_tags(contact),
        "tag_form": TagAddForm(contact=contact) if can_add else None,
        "can_edit_birthday": user.has_perm("crm.change_contact"),
        "can_remove_tags": user.has_perm("crm.delete_contacttag"),
        "consents": contact_page_consents(contact) if user.has_perm("crm.view_consentrecord") else None,
        "panels": contact_panels_render(contact, request),
        "timeline": page_of(request, contact_page_timeline(contact)),
        "admin_change_url": admin_url("admin:crm_contact_change", contact.pk),
        "channel_url": reverse("console:channel", args=[contact.channel_id]) if contact.channel_id else None,
    }
    return console_render(request, "console/contact.html", context, title=str(contact))


@require_POST
@permission_required("crm.add_contacttag", raise_exception=True)
def contact_tag_add_view(request: HttpRequest, contact_id: int) -> HttpResponse:
    contact = _contact_or_404(contact_id)
    form = TagAddForm(request.POST, contact=contact)
    if not form.is_valid():
        for error in form.errors.get("tag", []):
            messages.error(request, _("Tag not added: %(reason)s") % {"reason": error})
        return HttpResponseRedirect(_page_url(contact))
    tag = form.cleaned_data["tag"]
    try:
        # The API's service: the timeline row now, the push to the contact's WeCom relations after commit.
        with transaction.atomic():
            contact_tag_add(contact, tag, source=TAG_SOURCE)
    except ApplicationError as exc:
        messages.error(request, _("Tag not added: %(reason)s") % {"reason": exc.message})
    else:
        messages.success(request, _("Tag %(tag)s added; it is being pushed to WeCom.") % {"tag": tag})
    return HttpResponseRedirect(_page_url(contact))


@require_POST
@permission_required("crm.delete_contacttag", raise_exception=True)
def contact_tag_remove_view(request: HttpRequest, contact_id: int, tag_id: int) -> HttpResponse:
    contact = _contact_or_404(contact_id)
    tag = Tag.objects.select_related("group").filter(pk=tag_id).first()
    try:
        with transaction.atomic():
            removed = tag is not None and contact_tag_remove(contact, tag, source=TAG_SOURCE)
    except ApplicationError as exc:
        messages.error(request, _("Tag not removed: %(reason)s") % {"reason": exc.message})
        return HttpResponseRedirect(_page_url(contact))
    if removed:
        messages.success(request, _("Tag %(tag)s removed; it is being removed in WeCom.") % {"tag": tag})
    else:
        messages.warning(request, _("The contact does not carry that tag (any more)."))
    return HttpResponseRedirect(_page_url(contact))


@require_POST
@permission_required("crm.change_contact", raise_exception=True)
def contact_birthday_view(request: HttpRequest, contact_id: int) -> HttpResponse:
    """Set or clear the birthday (the service validates it: a date, not in the future, not before 1900)."""
    contact = _contact_or_404(contact_id)
    try:
        with transaction.atomic():
            contact_set_birthday(contact, request.POST.get("birthday", ""), source=TAG_SOURCE)
    except ApplicationError as exc:
        messages.error(request, _("Birthday not saved: %(reason)s") % {"reason": exc.message})
    else:
        messages.success(request, _("Birthday saved.") if contact.birthday else _("Birthday cleared."))
    return HttpResponseRedirect(_page_url(contact))
