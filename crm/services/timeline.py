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
