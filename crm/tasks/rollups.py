"""Celery tasks for the dashboard's rollups (queue `default`): thin, idempotent, run by beat."""

from __future__ import annotations

from celery import shared_task

from crm.services.rollups import dashboard_rollups_refresh


@shared_task(acks_late=True)
def refresh_dashboard_rollups() -> dict:
    """Beat: recount today's and yesterday's adds and losses, days the rollup lacks, and live campaigns' funnels."""
    return dashboard_rollups_refresh()
