"""What other apps do when a campaign's message reaches customers, without `crm` importing those apps.

`crm` never imports `loyalty` (an import-linter contract), yet a campaign may carry a coupon that loyalty grants to
each customer the message reached. So loyalty registers a hook here from its AppConfig.ready(), and the poll that
stores WeCom's send results calls every hook after the page that recorded deliveries is committed. A hook gets the
ids only and must be cheap (enqueue a task): it runs inside the poll, and a failure is logged, never raised, so a
hook can never stop results from being stored."""

from __future__ import annotations

import logging
from collections.abc import Callable

logger = logging.getLogger(__name__)

DeliveredHook = Callable[[int, int | None], None]  # (campaign_id, run_id)

_delivered_hooks: dict[str, DeliveredHook] = {}


def register_delivered_hook(key: str, hook: DeliveredHook) -> None:
    """Add (or replace, by key: ready() may run twice in tests) a hook called when recipients become delivered."""
    _delivered_hooks[key] = hook


def unregister_delivered_hook(key: str) -> None:
    _delivered_hooks.pop(key, None)


def delivered_notify(campaign_id: int, run_id: int | None) -> None:
    for key, hook in list(_delivered_hooks.items()):
        try:
            hook(campaign_id, run_id)
        except Exception:  # a hook's failure must not lose the results the poll stored
            logger.exception("delivered hook failed", extra={"hook": key, "campaign_id": campaign_id})
