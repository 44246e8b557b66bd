"""Read-side queries for contacts: filtered lists (API, CSV export, segments) and the timeline."""

from __future__ import annotations

from django.db.models import Exists, OuterRef, Q, QuerySet

from crm.models.contacts import Contact, ContactEvent, FollowRelation
from crm.services import segments


def contact_list(
    *,
    definition: dict | None = None,
    search: str | None = None,
    phone_hash: str | None = None,
) -> QuerySet[Contact]:
    """Contacts a (validated) definition in the filter language selects (crm.services.segments: the same language
    as saved segments and campaigns), newest first, narrowed by a free-text search or a phone's keyed hash."""
    qs = segments.resolve(definition or {}).select_related("channel").order_by("-id")
    if search:
        remark_match = FollowRelation.objects.filter(contact=OuterRef("pk"), remark__icontains=search)
        qs = qs.filter(Q(name__icontains=search) | Q(external_userid=search) | Exists(remark_match))
    if phone_hash:
        qs = qs.filter(phone_hash=phone_hash)
    return qs


def contact_get(contact_id: int) -> Contact | None:
    return (
        Contact.objects.select_related("channel")
        .prefetch_related("follows__staff", "contact_tags__tag__group")
        .filter(pk=contact_id)
        .first()
    )


def contact_timeline(contact: Contact, limit: int = 200) -> QuerySet[ContactEvent]:
    return contact.events.select_related("staff").order_by("-occurred_at", "-id")[:limit]
