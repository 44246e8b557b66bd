"""Celery tasks for WeCom callbacks (queue `callbacks`): thin wrappers that take ids and call a service."""

from __future__ import annotations

from celery import shared_task

from crm.models import CallbackEvent
from crm.services.callbacks import callback_due_for_sweep, callback_process, max_attempts


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
    """Beat (every 60 s): queue again events left received/failed too long (lost task, dead worker)."""
    ids = callback_due_for_sweep(older_than=older_than)
    for event_id in ids:
        process_callback.delay(event_id)
    return len(ids)
