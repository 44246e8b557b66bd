"""Loyalty Celery tasks: thin, take ids, call a service."""

from __future__ import annotations

from celery import shared_task

from crm.wecom.errors import WeComError
from loyalty.services.dashboard import loyalty_dashboard_refresh
from loyalty.services.segment_rollups import spend_rollup_advance
from loyalty.services.tiers import tier_change_send_vip_invite


@shared_task(bind=True, acks_late=True, max_retries=8)
def vip_invite(self, tier_change_id: int) -> bool:
    """Invite a customer who just reached a VIP tier to the VIP group; retry only what a retry can fix."""
    try:
        return tier_change_send_vip_invite(tier_change_id)
    except WeComError as exc:
        if exc.permanent:
            raise
        raise self.retry(exc=exc, countdown=min(600, 15 * 2**self.request.retries))


@shared_task(acks_late=True)
def refresh_dashboard_rollups() -> dict:
    """Beat: the dashboard's tier distribution and closed days of points (loyalty.services.dashboard)."""
    return loyalty_dashboard_refresh()


@shared_task(acks_late=True)
def advance_spend_rollup() -> str | None:
    """Beat (every 5 min; work only after a Shanghai midnight): segment spend windows moved on to today."""
    day = spend_rollup_advance()
    return day.isoformat() if day else None
