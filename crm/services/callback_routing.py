"""Routes a decrypted WeCom callback event to the domain service that handles it.

Events are hints: every handler re-reads WeCom and is idempotent, so duplicates and reordering are harmless.

`handle_event` runs inside the receiver's transaction, which holds the event row's lock (and, on SQLite, the
database write lock). Re-reading WeCom there would hold that lock across HTTP calls — on SQLite the simulator
answering them cannot write and both sides time out. So it only says whether a handler takes the event; the
callback state machine (crm.services.callbacks) marks it routed and runs `apply_event` after commit, outside
any transaction (its writes in short transactions of their own), and records the outcome: applied or failed."""

from __future__ import annotations

import logging

from crm.services import contact_events, groups, handover, tags
from crm.services.timeline import from_wecom_ts

logger = logging.getLogger(__name__)


def _contact_event(payload: dict) -> str:
    change = payload.get("ChangeType") or ""
    userid = payload.get("UserID") or ""
    eid = payload.get("ExternalUserID") or ""
    when = from_wecom_ts(payload.get("CreateTime"))
    if not eid:
        return f"{change}: no ExternalUserID"
    if change in ("add_external_contact", "add_half_external_contact"):
        return contact_events.contact_add_from_callback(
            userid=userid,
            external_userid=eid,
            state=payload.get("State") or "",
            welcome_code=payload.get("WelcomeCode") or "",
            event_time=when,
            half=change == "add_half_external_contact",
        )
    if change == "edit_external_contact":
        return contact_events.contact_edit_from_callback(external_userid=eid)
    if change == "del_external_contact":
        return contact_events.contact_deleted_by_staff_from_callback(
            userid=userid, external_userid=eid, source=payload.get("Source") or "", event_time=when
        )
    if change == "del_follow_user":
        return contact_events.contact_deleted_by_customer_from_callback(
            userid=userid, external_userid=eid, event_time=when
        )
    if change == "transfer_fail":
        return handover.handover_on_transfer_fail(
            takeover_userid=userid, external_userid=eid, reason=payload.get("FailReason") or ""
        )
    return f"{change}: ignored"


def _chat_event(payload: dict) -> str:
    chat_id = payload.get("ChatId") or ""
    if not chat_id:
        return "no ChatId"
    when = from_wecom_ts(payload.get("CreateTime"))
    if payload.get("ChangeType") == "dismiss":
        return groups.group_dismiss(chat_id, occurred_at=when)
    quit_scene = payload.get("QuitScene")
    return groups.group_sync(
        chat_id,
        quit_scene=int(quit_scene) if str(quit_scene or "").isdigit() else None,
        occurred_at=when,
    )


HANDLED_EVENTS = frozenset({"change_external_contact", "change_external_chat", "change_external_tag"})
IGNORED = "ignored"  # no handler takes the event: nothing to apply


def handle_event(payload: dict) -> str:
    """Route one decrypted event (the XML's fields as a dict): IGNORED when no handler takes it, else the route
    (the caller then applies it with `apply_event`, after its transaction commits)."""
    event = payload.get("Event") or ""
    if event not in HANDLED_EVENTS:
        logger.info("callback event has no handler", extra={"event": event, "change": payload.get("ChangeType")})
        return IGNORED
    return f"routed {event}/{payload.get('ChangeType') or ''}"


def apply_event(payload: dict) -> str:
    """Apply one event: re-read WeCom and write what changed. Returns what was done."""
    event = payload.get("Event") or ""
    if event == "change_external_contact":
        return _contact_event(payload)
    if event == "change_external_chat":
        return _chat_event(payload)
    if event == "change_external_tag":
        counts = tags.tags_sync_from_wecom()
        return f"tags synced: {counts}"
    logger.info("callback event has no handler", extra={"event": event, "change": payload.get("ChangeType")})
    return "ignored"
