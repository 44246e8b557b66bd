"""Celery tasks for contacts, groups, VIP invites, sync and handover: thin wrappers that take ids and call a service."""

from __future__ import annotations

from celery import shared_task

from crm.wecom.errors import WeComError

# Callback work and the welcome (its code lives 20 s) go to the callbacks queue, never behind a sync or a campaign.
WELCOME_QUEUE = "callbacks"


@shared_task(
    bind=True, acks_late=True, max_retries=5, default_retry_delay=1, queue=WELCOME_QUEUE,
    name="crm.tasks.contacts.send_welcome",
)
def send_welcome(self, welcome_id: int) -> str:
    from crm.services.welcome import welcome_send

    try:
        return welcome_send(welcome_id)
    except WeComError as exc:
        if exc.retryable:
            raise self.retry(exc=exc, countdown=1)
        raise


@shared_task(
    bind=True, acks_late=True, max_retries=8, queue=WELCOME_QUEUE, name="crm.tasks.contacts.apply_callback_event"
)
def apply_callback_event(self, payload: dict) -> str:
    """Re-read WeCom for one callback event and apply it (idempotent, so a retry or a duplicate is harmless)."""
    from crm.services.callback_routing import apply_event

    try:
        return apply_event(payload)
    except WeComError as exc:
        if exc.retryable:
            raise self.retry(exc=exc, countdown=min(60, 2 ** self.request.retries))
        raise


@shared_task(bind=True, acks_late=True, max_retries=5, name="crm.tasks.contacts.send_vip_invite")
def send_vip_invite(self, invite_id: int) -> str:
    from crm.services.vip import vip_invite_send

    try:
        return vip_invite_send(invite_id)
    except WeComError as exc:
        if exc.retryable:
            raise self.retry(exc=exc, countdown=5)
        raise


@shared_task(acks_late=True, name="crm.tasks.contacts.staff_sync")
def staff_sync() -> dict:
    from crm.services.staff import staff_sync as run

    return run()


@shared_task(acks_late=True, name="crm.tasks.contacts.nightly_reconcile")
def nightly_reconcile() -> dict:
    """Beat, 03:30 Shanghai: staff, tags, a full contact pass that repairs drift, groups; reports changes."""
    from crm.services.sync import reconcile

    return reconcile()


@shared_task(acks_late=True, name="crm.tasks.contacts.handover_run")
def handover_run(handover_id: int) -> dict:
    from crm.services.handover import handover_run as run

    return run(handover_id)


@shared_task(acks_late=True, name="crm.tasks.contacts.poll_handovers")
def poll_handovers() -> dict:
    from crm.services.handover import handovers_poll_open

    return handovers_poll_open()


@shared_task(acks_late=True, name="crm.tasks.contacts.sync_contacts")
def sync_contacts(run_id: int) -> dict:
    """Run or resume one full sync from its checkpoint."""
    from crm.services.sync import sync_run

    return sync_run(run_id)


@shared_task(acks_late=True, name="crm.tasks.contacts.resume_stalled")
def resume_stalled() -> dict:
    """Beat (every few minutes): resume handovers and syncs whose worker died half way."""
    from crm.services.handover import handovers_resume_stalled
    from crm.services.sync import syncs_resume_stalled

    return {"handovers": handovers_resume_stalled(), "syncs": syncs_resume_stalled()}


@shared_task(bind=True, acks_late=True, max_retries=5, name="crm.tasks.contacts.push_contact_tags")
def push_contact_tags(self, contact_id: int) -> dict:
    """Mirror the company's tags for one contact onto its WeCom relations (mark_tag)."""
    from crm.services.tags import contact_tags_push

    try:
        return contact_tags_push(contact_id)
    except WeComError as exc:
        if exc.retryable:
            raise self.retry(exc=exc, countdown=min(60, 2 ** self.request.retries))
        raise


@shared_task(acks_late=True, name="crm.tasks.contacts.register_channel")
def register_channel(channel_id: int) -> str:
    """Create the WeCom contact way of a channel added in the admin."""
    from crm.services.channels import channel_register

    return channel_register(channel_id).config_id
