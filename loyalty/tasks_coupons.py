"""Celery tasks of the coupons area: thin, take ids, call a service."""

from __future__ import annotations

from celery import shared_task

from loyalty.services.campaign_coupons import campaign_coupons_grant
from loyalty.services.journeys import journey_run


@shared_task(acks_late=True)
def grant_campaign_coupons(run_id: int) -> dict:
    """A page of the run's deliveries was stored: grant the campaign's coupon to those not granted yet."""
    return campaign_coupons_grant(run_id)


@shared_task(acks_late=True)
def run_journey(trigger: str, contact_id: int, tier_id: int | None = None) -> dict:
    """A moment of the customer's journey was committed: grant what the active journey steps give for it."""
    return journey_run(trigger, contact_id, tier_id)
