"""Consent per purpose (append-only versions) and data rights: export everything held about one person, erase it.
Every change writes a timeline row (the audit).

Consent is only what the customer gave: adding a staff member in WeCom is not consent to marketing or to
behavioural collection, so nothing is granted at add time. The customer decides on the card page
(source "card_page"), per purpose, against the policy version shown there; campaigns and open-source
ingestion read the latest version for their purpose."""

from __future__ import annotations

import logging
from datetime import datetime

from django.conf import settings
from django.db import transaction
from django.db.models import Exists, OuterRef, QuerySet
from django.utils import timezone
from django.utils.translation import gettext

from crm import redisconn
from crm.audit import audit_scrub_contact
from crm.errors import ApplicationError, NotFound
from crm.models.consent import ConsentRecord, SourceEvent, SourceOrderLine
from crm.models.contacts import Contact, ContactEvent, FollowRelation
from crm.services.timeline import timeline_add

logger = logging.getLogger(__name__)

# The version of the consent text customers agree to on the card page; bump it (CONSENT_POLICY_VERSION) when the
# text changes, so each grant says which wording it was given against.
DEFAULT_POLICY_VERSION = "2026-01"
# The purposes a customer decides on the card page (profiling stays a staff-recorded decision for now).
CARD_PAGE_PURPOSES = (ConsentRecord.Purpose.MARKETING, ConsentRecord.Purpose.BEHAVIOUR)


def consent_policy_version() -> str:
    return str(getattr(settings, "CONSENT_POLICY_VERSION", DEFAULT_POLICY_VERSION))


def _contact_locked(contact_id: int) -> Contact:
    contact = Contact.objects.select_for_update().filter(pk=contact_id).first()
    if contact is None:
        raise NotFound(f"Contact {contact_id} does not exist.", field="contact_id")
    return contact


def consent_record(
    *,
    contact_id: int,
    purpose: str,
    granted: bool,
    source: str,
    policy_version: str = "",
    recorded_at: datetime | None = None,
) -> ConsentRecord:
    """Record a grant or withdrawal as the next version for this purpose (a repeat of the current state is a no-op)."""
    if purpose not in ConsentRecord.Purpose.values:
        raise ApplicationError(f"purpose must be one of {ConsentRecord.Purpose.values}", field="purpose")
    if not source:
        raise ApplicationError("Say where the consent was given.", field="source")
    with transaction.atomic():
        contact = _contact_locked(contact_id)  # serialises versions per contact
        current = ConsentRecord.objects.filter(contact=contact, purpose=purpose).order_by("-version").first()
        if current is not None and current.granted == granted and current.policy_version == policy_version:
            return current
        record = ConsentRecord.objects.create(
            contact=contact,
            purpose=purpose,
            version=(current.version + 1) if current else 1,
            granted=granted,
            source=source[:64],
            policy_version=policy_version[:32],
            recorded_at=recorded_at or timezone.now(),
        )
        timeline_add(contact, ContactEvent.Kind.CONSENT, data={"purpose": purpose, "granted": granted,
                                                               "version": record.version, "source": source})
    return record


def consent_current(contact_id: int, purpose: str) -> bool:
    """Whether the latest version for this purpose is a grant (no record = no consent)."""
    latest = ConsentRecord.objects.filter(contact_id=contact_id, purpose=purpose).order_by("-version").first()
    return bool(latest and latest.granted)


def consent_state(contact_id: int, purposes: tuple[str, ...] = CARD_PAGE_PURPOSES) -> dict[str, dict]:
    """The version in force per purpose: {purpose: {granted, version, policy_version, source, recorded_at}}."""
    state = {p: {"granted": False, "version": 0, "policy_version": "", "source": "", "recorded_at": None}
             for p in purposes}
    rows = ConsentRecord.objects.filter(contact_id=contact_id, purpose__in=purposes).order_by("purpose", "-version")
    for row in rows:
        if state[row.purpose]["version"]:
            continue  # an older version
        state[row.purpose] = {"granted": row.granted, "version": row.version, "policy_version": row.policy_version,
                              "source": row.source, "recorded_at": row.recorded_at}
    return state


def consent_from_customer(*, contact_id: int, purpose: str, granted: bool, policy_version: str,
                          source: str = "card_page") -> ConsentRecord:
    """The customer's own decision (card page): only purposes the page offers, and a grant only against the
    policy text in force (a stale page must be reloaded, so no grant points at wording never shown)."""
    if purpose not in CARD_PAGE_PURPOSES:
        raise ApplicationError(f"purpose must be one of {[p.value for p in CARD_PAGE_PURPOSES]}", field="purpose")
    current = consent_policy_version()
    if granted and policy_version != current:
        # Shown on the customer's card page, so in the customer's language.
        raise ApplicationError(gettext("The policy is now version %(version)s: reload the page to agree to it.")
                               % {"version": current}, field="policy_version")
    # Withdrawing is always accepted, whatever page it came from; it is recorded against the policy in force.
    return consent_record(contact_id=contact_id, purpose=purpose, granted=granted, source=source,
                          policy_version=current)


def contacts_consenting(purpose: str, qs: QuerySet[Contact] | None = None) -> QuerySet[Contact]:
    """Contacts whose latest consent for `purpose` is a grant: campaigns filter recipients through this."""
    qs = Contact.objects.all() if qs is None else qs
    newer = ConsentRecord.objects.filter(
        contact=OuterRef("contact"), purpose=purpose, version__gt=OuterRef("version")
    )
    granted = ConsentRecord.objects.filter(contact=OuterRef("pk"), purpose=purpose, granted=True).exclude(
        Exists(newer)
    )
    return qs.filter(Exists(granted))


def contact_export(contact_id: int, *, actor: str) -> dict:
    """Everything held about one person, as JSON-ready data (audited)."""
    contact = Contact.objects.select_related("channel").filter(pk=contact_id).first()
    if contact is None:
        raise NotFound(f"Contact {contact_id} does not exist.", field="contact_id")
    from crm.services.contacts import phone_decrypt

    data = {
        "contact": {
            "id": contact.id, "external_userid": contact.external_userid, "unionid": contact.unionid,
            "name": contact.name, "type": contact.type, "gender": contact.gender, "avatar": contact.avatar,
            "corp_name": contact.corp_name, "phone": phone_decrypt(contact.phone_encrypted),
            "channel": contact.channel.state if contact.channel else None,
            "first_added_at": contact.first_added_at.isoformat() if contact.first_added_at else None,
        },
        "follows": list(contact.follows.values("staff__userid", "remark", "description", "state", "add_way",
                                               "added_at", "deleted_by_staff_at", "deleted_by_customer_at")),
        "tags": [str(ct.tag) for ct in contact.contact_tags.select_related("tag__group")],
        "consents": list(contact.consents.values("purpose", "version", "granted", "source", "policy_version",
                                                 "recorded_at")),
        "groups": list(contact.group_memberships.values("group__chat_id", "group__name", "joined_at", "left_at")),
        "timeline": list(contact.events.values("kind", "staff__userid", "data", "occurred_at")),
        "source_events": list(contact.source_events.values("source__code", "kind", "properties", "occurred_at")),
        "source_orders": list(contact.source_order_lines.values("source__code", "order_id", "line_no", "sku",
                                                                "quantity", "amount_fen", "ordered_at")),
    }
    timeline_add(contact, ContactEvent.Kind.DATA_RIGHTS, data={"action": "export", "actor": actor})
    return data


def contact_erase(contact_id: int, *, actor: str) -> dict:
    """Anonymise one person across the database and Redis. The row and its relations stay (the company's
    history of a relationship), every personal field goes; the audit row says who erased and when."""
    with transaction.atomic():
        contact = _contact_locked(contact_id)
        Contact.objects.filter(pk=contact.pk).update(
            name="", unionid="", avatar="", corp_name="", phone_encrypted="", phone_hash="", updated_at=timezone.now()
        )
        FollowRelation.objects.filter(contact=contact).update(remark="", description="")
        deleted_events = SourceEvent.objects.filter(contact=contact).delete()[0]
        SourceOrderLine.objects.filter(contact=contact).update(contact=None, phone_hash="")
        contact.events.exclude(kind=ContactEvent.Kind.DATA_RIGHTS).update(data={})
        contact.group_memberships.update(name="")
        timeline_add(contact, ContactEvent.Kind.DATA_RIGHTS, data={"action": "erase", "actor": actor})
        audit_scrub_contact(contact.pk)
    client = redisconn.client(settings.REDIS_URL)
    keys = list(client.scan_iter(match=f"crm:*contact:{contact_id}:*", count=1000))
    keys += list(client.scan_iter(match=f"crm:*contact:{contact_id}", count=1000))
    if keys:
        client.delete(*keys)
    logger.info("contact erased", extra={"contact_id": contact_id, "actor": actor})
    return {"contact_id": contact_id, "source_events_deleted": deleted_events, "redis_keys_deleted": len(keys)}
