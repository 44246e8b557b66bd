"""The contact timeline: every state change of a contact writes one ContactEvent row through here."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from django.utils import timezone

from crm.models.contacts import Contact, ContactEvent
from crm.models.staff import Staff


def from_wecom_ts(value: Any) -> datetime | None:
    """A WeCom Unix timestamp (int or str, seconds) as an aware UTC datetime; None when absent or 0."""
    try:
        seconds = int(value)
    except (TypeError, ValueError):
        return None
    return datetime.fromtimestamp(seconds, tz=UTC) if seconds > 0 else None


def timeline_add(
    contact: Contact,
    kind: str,
    *,
    staff: Staff | None = None,
    data: dict | None = None,
    occurred_at: datetime | None = None,
) -> ContactEvent:
    """Append one row to the contact's timeline."""
    return ContactEvent.objects.create(
        contact=contact,
        kind=kind,
        staff=staff,
        data=data or {},
        occurred_at=occurred_at or timezone.now(),
    )


def timeline_add_many(contact_ids: list[int], kind: str, *, data: dict | None = None,
                      occurred_at: datetime | None = None, batch_size: int = 1000) -> int:
    """The same row on many contacts' timelines in bulk INSERTs (a campaign excluding thousands at once)."""
    moment = occurred_at or timezone.now()
    rows = (ContactEvent(contact_id=cid, kind=kind, data=data or {}, occurred_at=moment) for cid in contact_ids)
    return len(ContactEvent.objects.bulk_create(rows, batch_size=batch_size))
