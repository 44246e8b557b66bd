"""Celery tasks of the tiers area: thin, take ids, call a service."""

from __future__ import annotations

from celery import shared_task

from loyalty.services.tiers import tier_change_notify_vip_left, tier_change_untag_vip, tiers_evaluate_all


@shared_task(acks_late=True)
def evaluate_tiers() -> dict:
    """Beat (daily, Asia/Shanghai): the only place a card moves down a tier, after its grace period."""
    return tiers_evaluate_all()


@shared_task(acks_late=True)
def vip_leave(tier_change_id: int) -> dict:
    """A card left a VIP tier: untag VIP and notify the customer's staff, each once (TierEffect rows)."""
    return {"untagged": tier_change_untag_vip(tier_change_id), "notified": tier_change_notify_vip_left(tier_change_id)}
