"""Celery tasks for WeCom callbacks (queue `callbacks`): thin wrappers that take ids and call a service.

received -> routed (drain_callbacks / process_callback) -> applied | failed (apply_callback). A failure at either
step is retried with backoff by its own task while the row's attempts last (CALLBACK_MAX_ATTEMPTS); the row
records when (next_attempt_at), so the beat sweep retries it too if that task is lost."""

from __future__ import annotations

import time

from celery import shared_task

from crm.models import CallbackEvent
from crm.services.callbacks import (
    callback_apply,
    callback_due_for_sweep,
    callback_ids_to_drain,
    callback_process,
    callback_run,
    drain_started,
    retry_due,
)

DRAIN_BATCH = 100
DRAIN_MAX_SECONDS = 20.0  # then hand over to a fresh task, so a long burst never pins one worker thread


def _retry_later(event: CallbackEvent | None) -> None:
    countdown = retry_due(event)
    if countdown is not None:
        process_callback.apply_async((event.pk,), countdown=countdown)


@shared_task(acks_late=True, autoretry_for=(Exception,), retry_backoff=True, max_retries=5)
def drain_callbacks() -> int:
    """Route every received event in arrival order (requested by the receiver, see services.callbacks).

    Several drains may run at once (a burst asks again once a drain has started): each skips the events
    another one holds, so the work spreads and every event is routed once."""
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
    """Take one stored event one step on (route it, or apply it when it is routed already); idempotent. A
    failure is retried with backoff, a bounded number of times (counted on the row, so sweeps, replays and
    redeliveries share the budget)."""
    try:
        event = callback_run(event_id)
    except CallbackEvent.DoesNotExist:
        return "missing"
    countdown = retry_due(event)
    if countdown is not None:
        raise self.retry(countdown=countdown)
    return event.status


@shared_task(bind=True, acks_late=True, max_retries=None)
def apply_callback(self, event_id: int) -> str:
    """Apply a routed event's effect (queued when it is routed); a failure is retried with backoff."""
    try:
        event = callback_apply(event_id=event_id)
    except CallbackEvent.DoesNotExist:
        return "missing"
    countdown = retry_due(event)
    if countdown is not None:
        raise self.retry(countdown=countdown)
    return event.status


@shared_task(acks_late=True)
def sweep_unprocessed(older_than: float | None = None) -> int:
    """Beat (every 60 s): queue again events left received, routed or failed too long (lost drain or apply task,
    dead worker, a retry whose task was lost)."""
    ids = callback_due_for_sweep(older_than=older_than)
    for event_id in ids:
        process_callback.delay(event_id)
    return len(ids)
