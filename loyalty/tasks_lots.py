"""Celery tasks of the lots area: thin, call a service."""

from __future__ import annotations

from celery import shared_task

from loyalty.services.lots import expire_due_lots


@shared_task(acks_late=True)
def expire_lots() -> int:
    """Beat (hourly): one `expire` entry per lapsed lot for what is left (idempotent per lot; safe to overlap)."""
    return expire_due_lots()
