"""Helpers for planning tests: many contacts at once (bulk rows, no per-contact service calls)."""

from __future__ import annotations

import itertools

from django.utils import timezone

from crm.models import CampaignRecipient, ConsentRecord, Contact, FollowRelation, MassMessage, Staff
from tests.crm.campaigns.conftest import sim  # noqa: F401 (the simulator's admin API, for the live tests)

_seq = itertools.count(1)


def bulk_contacts(n: int, staff: list[Staff] | None = None, *, prefix: str = "wmplan", marketing: bool = True,
                  eids: list[str] | None = None) -> list[int]:
    """n contacts, the i-th followed by staff[i % len(staff)] (when given), consenting to marketing; their ids."""
    batch = next(_seq)
    now = timezone.now()
    rows = [Contact(external_userid=eids[i] if eids else f"{prefix}{batch:03d}x{i:07d}", name=f"C{i}")
            for i in range(n)]
    Contact.objects.bulk_create(rows, batch_size=2000)
    ids = list(Contact.objects.filter(external_userid__in=[r.external_userid for r in rows]).order_by("id")
               .values_list("id", flat=True))
    if staff:
        FollowRelation.objects.bulk_create(
            [FollowRelation(contact_id=cid, staff=staff[i % len(staff)], added_at=now) for i, cid in enumerate(ids)],
            batch_size=2000,
        )
    if marketing:
        ConsentRecord.objects.bulk_create(
            [ConsentRecord(contact_id=cid, purpose=ConsentRecord.Purpose.MARKETING, version=1, granted=True,
                           source="card_page", recorded_at=now) for cid in ids],
            batch_size=2000,
        )
    return ids


def plan_of(run) -> dict:
    """What a run planned, comparable across runs: recipients (contact, sender, status) and each message's
    (sender, batch_no, recipients' contacts)."""
    recipients = sorted(
        CampaignRecipient.objects.filter(run=run).values_list("contact_id", "sender_id", "status")
    )
    messages = {}
    for m in MassMessage.objects.filter(run=run).order_by("sender_id", "batch_no"):
        contacts = sorted(m.recipients.values_list("contact_id", flat=True))
        assert m.recipients_count == len(contacts), (m.idempotency_key, m.recipients_count, len(contacts))
        messages[(m.sender_id, m.batch_no)] = contacts
    return {"recipients": recipients, "messages": messages}
