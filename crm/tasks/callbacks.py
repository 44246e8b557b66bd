"""Celery tasks for WeCom callbacks (queue `callbacks`): thin wrappers that take ids and call a service."""

from __future__ import annotations

import time

from celery import shared_task

from crm.models import CallbackEvent
from crm.services.callbacks import (
    callback_due_for_sweep,
    callback_ids_to_drain,
    callback_process,
    drain_started,
    max_attempts,
)

DRAIN_BATCH = 100
DRAIN_MAX_SECONDS = 20.0  # then hand over to a fresh task, so a long burst never pins one worker thread


def _retry_later(event: CallbackEvent | None) -> None:
    if event is not None and event.status == CallbackEvent.Status.FAILED and event.attempts < max_attempts():
        process_callback.apply_async((event.pk,), countdown=min(60, 2 ** min(event.attempts, 6)))


@shared_task(acks_late=True, autoretry_for=(Exception,), retry_backoff=True, max_retries=5)
def drain_callbacks() -> int:
    """Apply every received event in arrival order (requested by the receiver, see services.callbacks).

    Several drains may run at once (a burst asks again once a drain has started): each skips the events
    another one holds, so the work spreads and every event is applied once in effect."""
    drain_started()
    deadline = time.monotonic() + DRAIN_MAX_SECONDS
    done, after = 0, 0
    while ids := callback_ids_to_drain(DRAIN_BATCH, after_id=after):
        for event_id in ids:
            event = callback_process(event_id=event_id, skip_locked=True)
            done += event is not None
            _retry_later(event)
        after = ids[-1]
        if time.monotonic() > deadline:
            drain_callbacks.delay()
            break
    return done


@shared_task(bind=True, acks_late=True, max_retries=None)
def process_callback(self, event_id: int) -> str:
    """Apply one stored callback event; idempotent. A failed attempt is retried with backoff, a bounded number
    of times (counted on the row, so sweeps and redeliveries share the budget)."""
    try:
        event = callback_process(event_id=event_id)
    except CallbackEvent.DoesNotExist:
        return "missing"
    if event.status == CallbackEvent.Status.FAILED and event.attempts < max_attempts():
        raise self.retry(countdown=min(60, 2 ** min(event.attempts, 6)))
    return event.status


@shared_task(acks_late=True)
def sweep_unprocessed(older_than: float | None = None) -> int:
    """Beat (every 60 s): queue again events left received/failed too long (lost drain, dead worker)."""
    ids = callback_due_for_sweep(older_than=older_than)
    for event_id in ids:
        process_callback.delay(event_id)
    return len(ids)
