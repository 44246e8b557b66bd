"""Celery tasks of the coupons area: thin, take ids, call a service."""

from __future__ import annotations

from celery import shared_task

from loyalty.services.campaign_coupons import campaign_coupons_grant


@shared_task(acks_late=True)
def grant_campaign_coupons(run_id: int) -> dict:
    """A page of the run's deliveries was stored: grant the campaign's coupon to those not granted yet."""
    return campaign_coupons_grant(run_id)
