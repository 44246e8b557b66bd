"""Controlling a campaign once it runs: pause, resume and cancel one run; cancel or remind a whole campaign.

Pause stops what has not been handed to WeCom: planning stops between chunks, pending messages are skipped by
`mass_message_send` (it checks the run) and beat's resend sweep leaves them alone. Tasks WeCom already created
cannot be held back (the sender may confirm them any time): they keep being polled. Resume queues the planning
or the pending messages again. Cancel also cancels the created tasks in WeCom (cancel_groupmsg_send), after a last
poll, so staff confirming later send nothing.
"""

from __future__ import annotations

import logging

from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from crm.errors import Conflict, NotFound
from crm.models import Campaign, CampaignGroupRecipient, CampaignRecipient, CampaignRun, MassMessage, RedPacketPool
from crm.services.campaigns import _get

logger = logging.getLogger(__name__)

M = MassMessage.Status
OPEN = (CampaignRun.Status.PLANNING, CampaignRun.Status.SENDING, CampaignRun.Status.PAUSED)


def _run(run_id: int, *, lock: bool = False) -> CampaignRun:
    qs = CampaignRun.objects.select_for_update() if lock else CampaignRun.objects
    run = qs.filter(id=run_id).first()
    if run is None:
        raise NotFound(_("Run %(id)s does not exist.") % {"id": run_id}, field="run_id")
    return run


def run_pause(run_id: int) -> CampaignRun:
    """Hold a planning or sending run: nothing more is planned or handed to WeCom until it is resumed."""
    with transaction.atomic():
        run = _run(run_id, lock=True)
        if run.status == CampaignRun.Status.PAUSED:
            return run
        if run.status not in (CampaignRun.Status.PLANNING, CampaignRun.Status.SENDING):
            raise Conflict(_("A %(status)s run cannot be paused.") % {"status": run.status}, field="status")
        run.status = CampaignRun.Status.PAUSED
        run.paused_at = timezone.now()
        run.save(update_fields=["status", "paused_at"])
    logger.info("campaign run paused", extra={"run_id": run.id, "campaign_id": run.campaign_id})
    return run


def run_resume(run_id: int, *, enqueue: bool = True) -> CampaignRun:
    """Carry on where the run was paused: planning (if it had not finished) or sending its pending messages."""
    with transaction.atomic():
        run = _run(run_id, lock=True)
        if run.status != CampaignRun.Status.PAUSED:
            raise Conflict(_("Only a paused run can be resumed."), field="status")
        campaign = Campaign.objects.get(id=run.campaign_id)
        if campaign.status in (Campaign.Status.CANCELLED, Campaign.Status.DONE):
            raise Conflict(_("The campaign is %(status)s.") % {"status": campaign.status}, field="status")
        planning = run.planned_at is None
        run.status = CampaignRun.Status.PLANNING if planning else CampaignRun.Status.SENDING
        run.paused_at = None
        run.save(update_fields=["status", "paused_at"])
        pending = [] if planning else list(
            MassMessage.objects.filter(run=run, status=M.PENDING).order_by("id").values_list("id", flat=True))
        if enqueue:
            if planning:
                from crm.tasks.planning import plan_run

                transaction.on_commit(lambda: plan_run.delay(run.id))
            else:
                from crm.tasks.campaigns import send_mass_message

                transaction.on_commit(lambda: [send_mass_message.delay(mid) for mid in pending])
    logger.info("campaign run resumed", extra={"run_id": run.id, "messages": len(pending), "planning": planning})
    if not planning and not pending:
        from crm.services.campaign_runs import run_finish_if_complete

        run_finish_if_complete(run.id)  # everything was sent before the pause: nothing left to wait for
    run.refresh_from_db()
    return run


def _cancel_unsent(run_filter: dict) -> None:
    """(in a transaction) Pending messages cancelled, and every recipient still pending in them."""
    MassMessage.objects.filter(status=M.PENDING, **run_filter).update(status=M.CANCELLED)
    now = timezone.now()
    for table in (CampaignRecipient, CampaignGroupRecipient):
        table.objects.filter(status=CampaignRecipient.Status.PENDING, mass_message__status=M.CANCELLED,
                             **run_filter).update(status=CampaignRecipient.Status.CANCELLED, updated_at=now)
        # Planned but never batched (planning stopped mid-run): nothing will ever send them.
        table.objects.filter(status=CampaignRecipient.Status.PENDING, mass_message__isnull=True,
                             **run_filter).update(status=CampaignRecipient.Status.CANCELLED, updated_at=now)


def _cancel_created(message_filter: dict) -> int:
    """cancel_groupmsg_send for every task WeCom holds (or may hold: a send in flight stores its msgid, sees the
    cancelled run and cancels it itself); how many were cancelled."""
    from crm.services.pushes import mass_message_cancel

    ids = MassMessage.objects.filter(status=M.CREATED, **message_filter).values_list("id", flat=True)
    return sum(1 for message_id in list(ids) if mass_message_cancel(message_id))


def run_cancel(run_id: int) -> CampaignRun:
    """Cancel one run: nothing more is planned or sent, and its tasks in WeCom are cancelled."""
    with transaction.atomic():
        run = _run(run_id, lock=True)
        if run.status not in OPEN:
            raise Conflict(_("A %(status)s run cannot be cancelled.") % {"status": run.status}, field="status")
        run.status = CampaignRun.Status.CANCELLED
        run.cancelled_at = timezone.now()
        run.save(update_fields=["status", "cancelled_at"])
        _cancel_unsent({"run": run})
    cancelled = _cancel_created({"run": run})
    from crm.services.campaign_runs import _stats, campaign_finish_if_complete

    CampaignRun.objects.filter(id=run.id).update(stats=_stats(run))
    campaign_finish_if_complete(run.campaign_id)
    logger.info("campaign run cancelled", extra={"run_id": run.id, "tasks_cancelled": cancelled})
    run.refresh_from_db()
    return run


def _schedule_sync():
    try:  # the campaign-service part provides it (crm.services.campaign_schedules)
        from crm.services import campaign_schedules
    except ImportError:
        return None
    return getattr(campaign_schedules, "schedule_sync", None)


def campaign_cancel(campaign_id: int) -> Campaign:
    """Cancel: nothing more is sent, no further occurrence runs. Tasks WeCom already created are cancelled there."""
    with transaction.atomic():
        campaign = _get(campaign_id, lock=True)
        if campaign.status in (Campaign.Status.DONE, Campaign.Status.CANCELLED):
            raise Conflict(_("A %(status)s campaign cannot be cancelled.") % {"status": campaign.status},
                           field="status")
        campaign.status = Campaign.Status.CANCELLED
        campaign.cancelled_at = timezone.now()
        campaign.save(update_fields=["status", "cancelled_at", "updated_at"])
        CampaignRun.objects.filter(campaign=campaign, status__in=OPEN).update(
            status=CampaignRun.Status.CANCELLED, cancelled_at=campaign.cancelled_at)
        _cancel_unsent({"campaign": campaign})
        RedPacketPool.objects.filter(campaign=campaign, status=RedPacketPool.Status.DRAFT).update(
            status=RedPacketPool.Status.CANCELLED
        )
        if campaign.periodic_task_id:
            sync = _schedule_sync()
            if sync is not None:
                transaction.on_commit(lambda: sync(campaign))  # a cancelled campaign has no schedule
    _cancel_created({"campaign": campaign})
    campaign.refresh_from_db()
    return campaign


def campaign_remind(campaign_id: int) -> int:
    """Remind senders who have not confirmed yet (remind_groupmsg_send, 3 per task per 24 h); how many reminded."""
    from crm.services.pushes import mass_message_remind

    campaign = _get(campaign_id)
    if campaign.status != Campaign.Status.RUNNING:
        raise Conflict(_("Only a running campaign can be reminded."), field="status")
    single = MassMessage.objects.filter(campaign=campaign, status=M.CREATED,
                                        recipients__status=CampaignRecipient.Status.PENDING)
    group = MassMessage.objects.filter(campaign=campaign, status=M.CREATED,
                                       group_recipients__status=CampaignRecipient.Status.PENDING)
    ids = sorted(set(single.values_list("id", flat=True)) | set(group.values_list("id", flat=True)))
    return sum(1 for message_id in ids if mass_message_remind(message_id))
