"""Earning tasks: Tmall/JD orders earn points when LOYALTY_ORDERS_EARN_POINTS (a beat entry runs it)."""

from __future__ import annotations

from celery import shared_task

from loyalty.services.earning import orders_earn


@shared_task(acks_late=True)
def orders_earn_task(limit: int = 500) -> int:
    return orders_earn(limit=limit)
