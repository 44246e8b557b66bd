"""Read-side queries for contacts: filtered lists (API, CSV export, segments) and the timeline."""

from __future__ import annotations

from datetime import datetime

from django.db.models import Exists, OuterRef, Q, QuerySet

from crm.models.consent import ConsentRecord
from crm.models.contacts import Contact, ContactEvent, FollowRelation
from crm.models.tags import ContactTag


def contact_list(
    *,
    tag_ids: list[int] | None = None,
    channel_id: int | None = None,
    staff_userid: str | None = None,
    tier: str | None = None,
    consent_purpose: str | None = None,
    added_from: datetime | None = None,
    added_to: datetime | None = None,
    search: str | None = None,
    phone_hash: str | None = None,
) -> QuerySet[Contact]:
    """Contacts matching every given filter (tags: all of them; tier: a tag named so in group "Tier")."""
    qs = Contact.objects.select_related("channel").order_by("-id")
    for tag_id in tag_ids or []:
        qs = qs.filter(Exists(ContactTag.objects.filter(contact=OuterRef("pk"), tag_id=tag_id)))
    if channel_id:
        qs = qs.filter(channel_id=channel_id)
    if staff_userid:
        qs = qs.filter(
            Exists(
                FollowRelation.objects.filter(
                    contact=OuterRef("pk"), staff__userid__iexact=staff_userid, deleted_by_staff_at__isnull=True
                )
            )
        )
    if tier:
        qs = qs.filter(
            Exists(ContactTag.objects.filter(contact=OuterRef("pk"), tag__group__name="Tier", tag__name__iexact=tier))
        )
    if consent_purpose:
        latest = ConsentRecord.objects.filter(contact=OuterRef("contact"), purpose=consent_purpose).order_by(
            "-version"
        )
        granted = ConsentRecord.objects.filter(
            contact=OuterRef("pk"), purpose=consent_purpose, granted=True
        ).exclude(Exists(latest.filter(version__gt=OuterRef("version"))))
        qs = qs.filter(Exists(granted))
    if added_from:
        qs = qs.filter(first_added_at__gte=added_from)
    if added_to:
        qs = qs.filter(first_added_at__lt=added_to)
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
