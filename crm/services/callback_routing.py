"""Routes a decrypted WeCom callback event to the domain service that handles it."""

from __future__ import annotations

import logging

logger = logging.getLogger(__name__)


def handle_event(payload: dict) -> str:
    """Apply one decrypted event (the XML's fields as a dict). Returns what was done, for the event log."""
    logger.info("callback event has no handler", extra={"event": payload.get("Event"), "change": payload.get("ChangeType")})
    return "ignored"
