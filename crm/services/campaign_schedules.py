"""Campaign schedules: the django-celery-beat row of each campaign, the occurrences it fires, pause and resume.

- One-off: a ClockedSchedule at `scheduled_at` and a one-off PeriodicTask.
- Recurring: a CrontabSchedule in Asia/Shanghai (no daylight saving there, so 20:00 is always 12:00 UTC):
  weekly on `recur_weekday` (0 Monday .. 6 Sunday), or monthly on `recur_day`, at `recur_time`.
  A day past the month's end (29, 30, 31) runs on the month's last day: the crontab fires on days 28-31 and the
  task plans a run only when the day is the occurrence's (February with recur_day 31 runs on the 28th/29th).
- Beat calls `crm.tasks.campaigns.run_campaign_occurrence(campaign_id)`; the task computes the scheduled moment
  from the schedule (to the minute), not from when it happened to run, so beat firing twice, a retried task or a
  late worker plan one run: CampaignRun is UNIQUE (campaign, occurrence).
- An occurrence more than OCCURRENCE_GRACE late is skipped (Friday 20:00's message is not sent on Saturday), and
  so is one before `schedule_from` (set when the schedule is made and on resume: a resumed campaign does not
  catch up on what it missed while paused).
- `recur_until` is the PeriodicTask's `expires`; the campaign is done once it has passed and no run is open.
"""

from __future__ import annotations

import calendar
import json
import logging
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _
from django_celery_beat.models import ClockedSchedule, CrontabSchedule, PeriodicTask

from crm.errors import Conflict, NotFound
from crm.models import Campaign, CampaignRun

logger = logging.getLogger(__name__)

TZ_NAME = "Asia/Shanghai"
TZ = ZoneInfo(TZ_NAME)
TASK = "crm.tasks.campaigns.run_campaign_occurrence"
# Beat and the worker may disagree on the clock by a little: a task that runs up to this early still counts.
EARLY = timedelta(minutes=2)
OCCURRENCE_GRACE = timedelta(hours=6)
OPEN_RUNS = (CampaignRun.Status.PLANNING, CampaignRun.Status.SENDING, CampaignRun.Status.PAUSED)
RUNNABLE = (Campaign.Status.SCHEDULED, Campaign.Status.RUNNING)


def task_name(campaign_id: int) -> str:
    return f"campaign-{campaign_id}"


def is_recurring(campaign: Campaign) -> bool:
    return campaign.recurrence != Campaign.Recurrence.ONCE


# --- occurrences ----------------------------------------------------------------------------------------------


def _at(day: date, at: time) -> datetime:
    return datetime.combine(day, at.replace(second=0, microsecond=0, tzinfo=None), tzinfo=TZ)


def _month_occurrence(year: int, month: int, day: int, at: time) -> datetime:
    last = calendar.monthrange(year, month)[1]
    return _at(date(year, month, min(day, last)), at)


def _prev_month(year: int, month: int) -> tuple[int, int]:
    return (year - 1, 12) if month == 1 else (year, month - 1)


def _next_month(year: int, month: int) -> tuple[int, int]:
    return (year + 1, 1) if month == 12 else (year, month + 1)


def occurrence_at(campaign: Campaign, moment: datetime) -> datetime | None:
    """The scheduled moment (UTC, to the minute) a firing at `moment` is for: the latest one at or before it."""
    if not is_recurring(campaign):
        return campaign.scheduled_at
    local = (moment + EARLY).astimezone(TZ)
    if campaign.recurrence == Campaign.Recurrence.WEEKLY:
        day = local.date() - timedelta(days=(local.weekday() - campaign.recur_weekday) % 7)
        found = _at(day, campaign.recur_time)
        if found > local:
            found = _at(day - timedelta(days=7), campaign.recur_time)
    else:
        found = _month_occurrence(local.year, local.month, campaign.recur_day, campaign.recur_time)
        if found > local:
            found = _month_occurrence(*_prev_month(local.year, local.month), campaign.recur_day, campaign.recur_time)
    return found.astimezone(UTC)


def next_occurrence(campaign: Campaign, after: datetime) -> datetime | None:
    """The first scheduled moment strictly after `after` (UTC), or None (a one-off already past)."""
    if not is_recurring(campaign):
        return campaign.scheduled_at if campaign.scheduled_at and campaign.scheduled_at > after else None
    local = after.astimezone(TZ)
    if campaign.recurrence == Campaign.Recurrence.WEEKLY:
        day = local.date() + timedelta(days=(campaign.recur_weekday - local.weekday()) % 7)
        found = _at(day, campaign.recur_time)
        if found <= local:
            found = _at(day + timedelta(days=7), campaign.recur_time)
    else:
        found = _month_occurrence(local.year, local.month, campaign.recur_day, campaign.recur_time)
        if found <= local:
            found = _month_occurrence(*_next_month(local.year, local.month), campaign.recur_day, campaign.recur_time)
    return found.astimezone(UTC)


def upcoming(campaign: Campaign, count: int = 5, after: datetime | None = None) -> list[datetime]:
    """The next `count` occurrences (what the console lists), within recur_until."""
    found: list[datetime] = []
    moment = after or timezone.now()
    while len(found) < count:
        nxt = next_occurrence(campaign, moment)
        if nxt is None or (campaign.recur_until and nxt > campaign.recur_until):
            break
        found.append(nxt)
        moment = nxt
    return found


def crontab_fields(campaign: Campaign) -> dict:
    """The CrontabSchedule of a recurring campaign (celery's day_of_week: 0 = Sunday)."""
    at = campaign.recur_time
    fields = {"minute": str(at.minute), "hour": str(at.hour), "month_of_year": "*", "timezone": TZ_NAME}
    if campaign.recurrence == Campaign.Recurrence.WEEKLY:
        return {**fields, "day_of_week": str((campaign.recur_weekday + 1) % 7), "day_of_month": "*"}
    day = campaign.recur_day
    # 29..31 may be past the month's end: fire on every possible last day, the task picks the right one.
    return {**fields, "day_of_week": "*", "day_of_month": str(day) if day <= 28 else "28-31"}


# --- the beat row ---------------------------------------------------------------------------------------------


def _wanted(campaign: Campaign) -> tuple[str, bool] | None:
    """(schedule kind, enabled) the campaign needs, or None for no beat row."""
    if campaign.status == Campaign.Status.DRAFT:
        return None
    if is_recurring(campaign):
        return "crontab", campaign.status in RUNNABLE
    if campaign.scheduled_at is None:
        return None
    return "clocked", campaign.status == Campaign.Status.SCHEDULED


def _current_task(campaign: Campaign) -> PeriodicTask | None:
    if campaign.periodic_task_id:
        task = PeriodicTask.objects.filter(id=campaign.periodic_task_id).first()
        if task is not None:
            return task
    return PeriodicTask.objects.filter(name=task_name(campaign.id)).first()


def _crontab(fields: dict) -> CrontabSchedule:
    found = CrontabSchedule.objects.filter(**fields).order_by("id").first()
    return found or CrontabSchedule.objects.create(**fields)


def _drop_unused_clocked(clocked_id: int | None) -> None:
    if clocked_id and not PeriodicTask.objects.filter(clocked_id=clocked_id).exists():
        ClockedSchedule.objects.filter(id=clocked_id).delete()


def schedule_sync(campaign: Campaign) -> PeriodicTask | None:
    """Make the campaign's PeriodicTask equal to the campaign: created, changed, enabled or disabled (paused,
    cancelled, done), or deleted (a draft without a schedule). Call it in the transaction that changed it."""
    wanted = _wanted(campaign)
    task = _current_task(campaign)
    if wanted is None:
        if task is not None:
            clocked_id = task.clocked_id
            task.delete()
            _drop_unused_clocked(clocked_id)
        if campaign.periodic_task_id:
            Campaign.objects.filter(pk=campaign.pk).update(periodic_task=None)
            campaign.periodic_task = None
        return None
    kind, enabled = wanted
    if task is None:
        task = PeriodicTask(name=task_name(campaign.id), task=TASK)
    old_clocked = task.clocked_id
    task.task = TASK
    task.args = json.dumps([campaign.id])
    task.kwargs = "{}"
    task.description = campaign.name
    task.interval = task.solar = None
    if kind == "clocked":
        clocked = ClockedSchedule.objects.filter(clocked_time=campaign.scheduled_at).first() or \
            ClockedSchedule.objects.create(clocked_time=campaign.scheduled_at)
        task.clocked, task.crontab, task.one_off, task.expires = clocked, None, True, None
        if enabled and (not task.enabled or old_clocked != clocked.id):
            task.total_run_count = 0  # a one-off disables itself after its first run; a new time runs again
    else:
        task.clocked, task.crontab, task.one_off = None, _crontab(crontab_fields(campaign)), False
        task.expires = campaign.recur_until
    task.enabled = enabled
    task.save()  # save(), not update(): it tells beat the schedule changed
    if old_clocked and old_clocked != task.clocked_id:
        _drop_unused_clocked(old_clocked)
    if campaign.periodic_task_id != task.id:
        Campaign.objects.filter(pk=campaign.pk).update(periodic_task=task)
        campaign.periodic_task = task
    return task


def schedule_delete(campaign: Campaign) -> None:
    """Remove the campaign's beat row (the campaign is being deleted)."""
    task = _current_task(campaign)
    if task is not None:
        clocked_id = task.clocked_id
        task.delete()
        _drop_unused_clocked(clocked_id)


# --- pause, resume, end ---------------------------------------------------------------------------------------


def _locked(campaign_id: int) -> Campaign:
    campaign = Campaign.objects.select_for_update().filter(id=campaign_id).first()
    if campaign is None:
        raise NotFound(_("No such campaign."), field="campaign")
    return campaign


@transaction.atomic
def campaign_pause(campaign_id: int) -> Campaign:
    """Stop a recurring campaign's future occurrences (a run in progress is paused with run_pause)."""
    campaign = _locked(campaign_id)
    if not is_recurring(campaign):
        raise Conflict(_("Only a recurring campaign is paused; pause a one-off campaign's run."), field="recurrence")
    if campaign.status not in RUNNABLE:
        raise Conflict(_("A %(status)s campaign cannot be paused.") % {"status": campaign.status}, field="status")
    campaign.status = Campaign.Status.PAUSED
    campaign.paused_at = timezone.now()
    campaign.save(update_fields=["status", "paused_at", "updated_at"])
    schedule_sync(campaign)
    return campaign


@transaction.atomic
def campaign_resume(campaign_id: int) -> Campaign:
    """Run a paused recurring campaign's occurrences again, from the next one (missed ones are not caught up)."""
    campaign = _locked(campaign_id)
    if not is_recurring(campaign):
        raise Conflict(_("Only a recurring campaign is resumed; resume a one-off campaign's run."),
                       field="recurrence")
    if campaign.status != Campaign.Status.PAUSED:
        raise Conflict(_("A %(status)s campaign cannot be resumed.") % {"status": campaign.status}, field="status")
    now = timezone.now()
    campaign.status = Campaign.Status.SCHEDULED
    campaign.paused_at = None
    campaign.schedule_from = now
    if campaign.recur_until and campaign.recur_until <= now:
        campaign.status, campaign.finished_at = Campaign.Status.DONE, now
    campaign.save(update_fields=["status", "paused_at", "schedule_from", "finished_at", "updated_at"])
    schedule_sync(campaign)
    return campaign


def _finish(campaign: Campaign, now: datetime) -> bool:
    """Done after recur_until, once no run of it is open (a caller holds the row lock)."""
    if campaign.runs.filter(status__in=OPEN_RUNS).exists():
        return False
    campaign.status, campaign.finished_at = Campaign.Status.DONE, now
    campaign.save(update_fields=["status", "finished_at", "updated_at"])
    schedule_sync(campaign)
    return True


def schedules_finish_expired(now: datetime | None = None) -> list[int]:
    """Recurring campaigns past recur_until with no open run become done (beat's sweep); their ids."""
    now = now or timezone.now()
    done = []
    due = Campaign.objects.filter(status__in=RUNNABLE, recur_until__lt=now).exclude(
        recurrence=Campaign.Recurrence.ONCE).values_list("id", flat=True)
    for campaign_id in list(due):
        with transaction.atomic():
            campaign = _locked(campaign_id)
            if campaign.status in RUNNABLE and campaign.recur_until and campaign.recur_until < now \
                    and _finish(campaign, now):
                done.append(campaign_id)
    return done


# --- the occurrence -------------------------------------------------------------------------------------------


def run_occurrence(campaign_id: int, *, fired_at: datetime | None = None, enqueue: bool = True) -> CampaignRun | None:
    """What beat's task does: the run of the occurrence this firing is for (planned by campaign_runs.run_start),
    or None when there is nothing to run (paused, cancelled, done, deleted, not its day, too late, past
    recur_until)."""
    from crm.services import campaign_runs  # the planner's module imports this one's neighbours

    moment = fired_at or timezone.now()
    campaign = Campaign.objects.filter(id=campaign_id).first()
    if campaign is None or campaign.status not in RUNNABLE:
        logger.info("campaign occurrence skipped", extra={"campaign": campaign_id, "reason": "status"})
        return None
    occurrence = occurrence_at(campaign, moment)
    if occurrence is None or occurrence > moment + EARLY:
        logger.info("campaign occurrence skipped", extra={"campaign": campaign_id, "reason": "not due"})
        return None
    if is_recurring(campaign):
        if campaign.recur_until and occurrence > campaign.recur_until:
            with transaction.atomic():
                _finish(_locked(campaign_id), moment)
            return None
        if moment - occurrence > OCCURRENCE_GRACE or (
            campaign.schedule_from and occurrence < campaign.schedule_from
        ):
            # Not its day (the 28th for "the 31st"), far too late, or before the schedule began or resumed.
            logger.info("campaign occurrence skipped", extra={"campaign": campaign_id, "reason": "not this one",
                                                             "occurrence": occurrence.isoformat()})
            return None
    return campaign_runs.run_start(campaign_id, occurrence=occurrence, enqueue=enqueue)
