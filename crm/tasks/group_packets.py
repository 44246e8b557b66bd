"""Celery tasks for group lucky packets: thin wrappers that take ids and call a service."""

from __future__ import annotations

from celery import shared_task

from crm.services.group_packets import group_packet_post_send


@shared_task(acks_late=True)
def post_group_packet(pool_id: int) -> str:
    """Post the packet's link in its group, once (GroupPacketPost is the idempotency key)."""
    return group_packet_post_send(pool_id)
