"""Celery tasks for campaigns (queue `pushes`): thin wrappers that take ids and call a service."""

from __future__ import annotations

from celery import shared_task

from crm.services.campaign_runs import campaign_launch, campaign_launch_due
from crm.services.campaign_schedules import run_occurrence, schedules_finish_expired
from crm.services.pushes import (
    PushRetry,
    first_poll_delay,
    mass_message_poll,
    mass_message_send,
    mass_messages_expire,
    mass_messages_to_poll,
    mass_messages_to_resend,
    send_grace,
)


@shared_task(acks_late=True)
def launch_campaign(campaign_id: int) -> list[int]:
    return campaign_launch(campaign_id)


@shared_task(acks_late=True)
def run_campaign_occurrence(campaign_id: int) -> int | None:
    """Beat (the campaign's own PeriodicTask): the run of the scheduled moment this firing is for; its id."""
    run = run_occurrence(campaign_id)
    return run.id if run is not None else None


@shared_task(acks_late=True)
def launch_due_campaigns() -> list[int]:
    """Beat: launch scheduled campaigns that are due, end recurring ones past recur_until, and queue again sends
    whose task message was lost."""
    launched = campaign_launch_due()
    schedules_finish_expired()
    for message_id in mass_messages_to_resend():
        send_mass_message.delay(message_id)
    return launched


@shared_task(bind=True, acks_late=True, max_retries=20)
def send_mass_message(self, message_id: int) -> str:
    try:
        result = mass_message_send(message_id)
    except PushRetry as exc:
        # A held claim that may have created the task says when it can be taken over (after the grace).
        countdown = exc.countdown if exc.countdown is not None else min(120, 2 ** min(self.request.retries, 7))
        raise self.retry(exc=exc, countdown=countdown)
    if result == "held":
        # Another attempt holds the claim. If it dies, its claim goes stale after the grace: look again then (this
        # finds the row created, or takes it over with the recovery lookup).
        raise self.retry(countdown=send_grace().total_seconds() + 1)
    if result == "created":
        # The first poll right after WeCom's dispatch delay, not at beat's next tick (up to 20 s later).
        poll_mass_message.apply_async((message_id,), countdown=first_poll_delay())
    return result


@shared_task(acks_late=True)
def poll_mass_message(message_id: int) -> dict:
    return mass_message_poll(message_id)


@shared_task(acks_late=True)
def poll_mass_message_results() -> int:
    """Beat: poll every created task's send results (one task per message, so a slow one blocks no other). A
    message whose last pass still runs is skipped by that poll (the lease), so ticks do not pile up passes."""
    ids = mass_messages_to_poll()
    for message_id in ids:
        poll_mass_message.delay(message_id)
    return len(ids)


@shared_task(acks_late=True)
def expire_mass_messages() -> dict:
    """Beat: tasks staff did not confirm before their deadline are cancelled in WeCom and expired."""
    return mass_messages_expire()
