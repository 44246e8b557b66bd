"""Reads for the console's contact page: profile, follow relations, tags, consent with history, timeline."""

from __future__ import annotations

from dataclasses import dataclass

from django.db.models import QuerySet

from crm.models.consent import ConsentRecord
from crm.models.contacts import Contact, ContactEvent, FollowRelation
from crm.models.tags import ContactTag, Tag


def contact_page_contact(contact_id: int) -> Contact | None:
    return Contact.objects.select_related("channel").filter(pk=contact_id).first()


def contact_page_follows(contact: Contact) -> list[FollowRelation]:
    """Every relation, active ones first, then by when the customer added that staff member."""
    follows = FollowRelation.objects.select_related("staff").filter(contact=contact).order_by("-added_at", "-id")
    return sorted(follows, key=lambda f: not f.is_active)


def contact_page_tags(contact: Contact) -> QuerySet[ContactTag]:
    return (
        ContactTag.objects.select_related("tag__group", "staff")
        .filter(contact=contact)
        .order_by("tag__group__name", "tag__name")
    )


def contact_page_tags_addable(contact: Contact) -> QuerySet[Tag]:
    """Live tags the contact does not carry yet, by group (the choices of the add form)."""
    return (
        Tag.objects.select_related("group")
        .filter(deleted_at__isnull=True, group__deleted_at__isnull=True)
        .exclude(contact_tags__contact=contact)
        .order_by("group__name", "name")
    )


@dataclass(frozen=True)
class PurposeConsent:
    """One purpose: the version in force (None: never decided, so not given) and every version, newest first."""

    purpose: str
    label: str
    current: ConsentRecord | None
    history: list[ConsentRecord]

    @property
    def granted(self) -> bool:
        return bool(self.current and self.current.granted)


def contact_page_consents(contact: Contact) -> list[PurposeConsent]:
    rows = list(ConsentRecord.objects.filter(contact=contact).order_by("purpose", "-version"))
    out = []
    for purpose, label in ConsentRecord._meta.get_field("purpose").choices:  # the translatable labels
        history = [r for r in rows if r.purpose == purpose]
        out.append(PurposeConsent(purpose, label, history[0] if history else None, history))
    return out


def contact_page_timeline(contact: Contact) -> QuerySet[ContactEvent]:
    """Newest first; served by the (contact, -occurred_at) index."""
    return ContactEvent.objects.select_related("staff").filter(contact=contact).order_by("-occurred_at", "-id")
