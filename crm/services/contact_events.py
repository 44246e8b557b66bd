"""change_external_contact callbacks. Events are hints (they may come twice or out of order): each handler
re-reads WeCom's current state and applies it idempotently."""

from __future__ import annotations

from datetime import datetime

from django.db import transaction

from crm.models.contacts import Contact, ContactEvent, FollowRelation
from crm.services.contacts import (
    contact_apply_wecom,
    contact_refresh,
    follow_mark_deleted_by_customer,
    follow_mark_deleted_by_staff,
    person_lock,
    wecom_read_contact,
)
from crm.services.erasure import erasure_link_successor, erasure_supersede_on_add, external_userid_erased
from crm.services.fission import fission_record_add
from crm.services.staff import staff_get_or_create
from crm.services.timeline import timeline_add
from crm.services.welcome import welcome_prepare


def contact_add_from_callback(
    *,
    userid: str,
    external_userid: str,
    state: str = "",
    welcome_code: str = "",
    event_time: datetime | None = None,
    half: bool = False,
) -> str:
    """add_external_contact / add_half_external_contact: own the contact, its relation, channel and welcome."""
    data = wecom_read_contact(external_userid)
    with transaction.atomic():
        person_lock(external_userid)  # the whole add, welcome included, one at a time per customer
        # An erased person adding us again is a new, consented relationship: it supersedes the tombstone. An add
        # from before the erasure (late or redelivered) brings nobody back (crm.services.erasure).
        superseded = False
        if external_userid_erased(external_userid):
            if not erasure_supersede_on_add(external_userid, event_time=event_time):
                return "erased: an add from before the erasure, ignored"
            superseded = True
        follow = None
        if data is not None:
            contact, follows = contact_apply_wecom(data, occurred_at=event_time, source="callback")
            pair = follows.get(userid.lower())
            if pair is not None:
                follow, _ = pair
            elif not half:
                return "relation not listed by WeCom"
        elif not half:
            return "contact gone in WeCom"
        if follow is None:
            # Before the member confirms a half add WeCom does not list the pair yet (84061 when it is the
            # customer's only relation, left out of follow_user otherwise): keep what the event says.
            contact, _ = Contact.objects.get_or_create(external_userid=external_userid)
            staff = staff_get_or_create(userid)
            follow, created = FollowRelation.objects.get_or_create(
                staff=staff, contact=contact, defaults={"state": state[:64], "added_at": event_time}
            )
            if created:
                timeline_add(contact, ContactEvent.Kind.HALF_ADDED, staff=staff, data={"state": state},
                             occurred_at=event_time)
        if superseded:
            erasure_link_successor(external_userid, contact)
        sent = welcome_prepare(follow, welcome_code, event_time=event_time)
        # A personal invite QR's state (fission): the friend counts for the customer who shared it.
        fission = fission_record_add(state=state, contact=contact)
    return f"contact {contact.pk} added to {userid}" + (", welcome queued" if sent else "") + (
        f"; {fission}" if fission else ""
    )


def contact_edit_from_callback(*, external_userid: str) -> str:
    contact = contact_refresh(external_userid, source="edit callback")
    return f"contact {contact.pk} refreshed" if contact else "contact gone in WeCom"


def _follow(userid: str, external_userid: str) -> FollowRelation | None:
    return (
        FollowRelation.objects.select_related("staff", "contact")
        .filter(staff__userid__iexact=userid, contact__external_userid=external_userid)
        .first()
    )


def _lists_pair(data: dict | None, userid: str) -> bool:
    return data is not None and any(
        (f.get("userid") or "").lower() == userid.lower() for f in data.get("follow_user") or []
    )


def contact_deleted_by_staff_from_callback(
    *, userid: str, external_userid: str, source: str = "", event_time: datetime | None = None
) -> str:
    """del_external_contact: the member deleted the customer (Source=DELETE_BY_TRANSFER after a transfer).

    WeCom is re-read first: when it lists the pair again (a re-add whose event overtook this one), its state wins
    rather than the stale deletion."""
    data = wecom_read_contact(external_userid)
    if _lists_pair(data, userid):
        contact_apply_wecom(data, occurred_at=event_time, source="delete callback")
        return "relation listed again by WeCom"
    follow = _follow(userid, external_userid)
    if follow is None:
        if data is not None:
            contact_apply_wecom(data, occurred_at=event_time, source="delete callback")
        follow = _follow(userid, external_userid)
        if follow is None:
            return "unknown relation"
    with transaction.atomic():
        reason = "transfer" if source == "DELETE_BY_TRANSFER" else "deleted by staff"
        changed = follow_mark_deleted_by_staff(follow, occurred_at=event_time, reason=reason)
    return "relation marked deleted by staff" if changed else "already marked"


def contact_deleted_by_customer_from_callback(
    *, userid: str, external_userid: str, event_time: datetime | None = None
) -> str:
    """del_follow_user: the customer deleted the member; the relation is kept, one-way."""
    follow = _follow(userid, external_userid)
    if follow is None:
        contact_refresh(external_userid, source="del_follow_user callback")
        follow = _follow(userid, external_userid)
        if follow is None:
            return "unknown relation"
    with transaction.atomic():
        changed = follow_mark_deleted_by_customer(follow, occurred_at=event_time)
    return "relation marked deleted by customer" if changed else "already marked"
