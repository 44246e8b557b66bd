"""Celery tasks for campaigns (queue `pushes`): thin wrappers that take ids and call a service."""

from __future__ import annotations

from celery import shared_task

from crm.services.campaign_runs import campaign_launch, campaign_launch_due
from crm.services.pushes import (
    PushRetry,
    mass_message_poll,
    mass_message_send,
    mass_messages_expire,
    mass_messages_to_poll,
    mass_messages_to_resend,
)


@shared_task(acks_late=True)
def launch_campaign(campaign_id: int) -> list[int]:
    return campaign_launch(campaign_id)


@shared_task(acks_late=True)
def launch_due_campaigns() -> list[int]:
    """Beat: launch scheduled campaigns that are due, and queue again sends whose task message was lost."""
    launched = campaign_launch_due()
    for message_id in mass_messages_to_resend():
        send_mass_message.delay(message_id)
    return launched


@shared_task(bind=True, acks_late=True, max_retries=20)
def send_mass_message(self, message_id: int) -> str:
    try:
        return mass_message_send(message_id)
    except PushRetry as exc:
        # A held claim that may have created the task says when it can be taken over (after the grace).
        countdown = exc.countdown if exc.countdown is not None else min(120, 2 ** min(self.request.retries, 7))
        raise self.retry(exc=exc, countdown=countdown)


@shared_task(acks_late=True)
def poll_mass_message(message_id: int) -> dict:
    return mass_message_poll(message_id)


@shared_task(acks_late=True)
def poll_mass_message_results() -> int:
    """Beat: poll every created task's send results (one task per message, so a slow one blocks no other)."""
    ids = mass_messages_to_poll()
    for message_id in ids:
        poll_mass_message.delay(message_id)
    return len(ids)


@shared_task(acks_late=True)
def expire_mass_messages() -> dict:
    """Beat: tasks staff did not confirm before their deadline are cancelled in WeCom and expired."""
    return mass_messages_expire()
