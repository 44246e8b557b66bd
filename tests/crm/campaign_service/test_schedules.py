"""Schedules through django-celery-beat: the PeriodicTask rows (crontab and time zone), occurrences computed from
the schedule in Asia/Shanghai (month ends, no daylight saving), firing twice plans one run, pause and resume,
recur_until."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from django.utils import timezone
from django_celery_beat.models import ClockedSchedule, PeriodicTask

from crm.errors import Conflict
from crm.models import Campaign, CampaignRun
from crm.services import campaign_schedules as schedules
from crm.services.campaigns import campaign_create, campaign_delete, campaign_update
from tests.crm.campaign_service.conftest import make_contact, make_staff

pytestmark = pytest.mark.django_db
SH = ZoneInfo("Asia/Shanghai")


def sh(*args) -> datetime:
    return datetime(*args, tzinfo=SH)


def weekly(**kw) -> Campaign:
    return campaign_create(name="Friday", text="Weekend picks", recurrence="weekly", recur_weekday=4,
                           recur_time=time(20, 0), **kw)


def monthly(day: int, **kw) -> Campaign:
    return campaign_create(name=f"Day {day}", text="Member day", recurrence="monthly", recur_day=day,
                           recur_time=time(10, 30), **kw)


def test_weekly_and_monthly_periodic_tasks(db):
    friday = weekly()
    task = PeriodicTask.objects.get(name=f"campaign-{friday.id}")
    assert friday.status == "scheduled" and Campaign.objects.get(id=friday.id).periodic_task_id == task.id
    assert task.task == "crm.tasks.campaigns.run_campaign_occurrence" and task.args == f"[{friday.id}]"
    assert task.enabled and not task.one_off and task.clocked is None
    cron = task.crontab
    assert (cron.minute, cron.hour, cron.day_of_week, cron.day_of_month, cron.month_of_year) == (
        "0", "20", "5", "*", "*")  # celery counts Sunday as 0: Friday is 5
    assert str(cron.timezone) == "Asia/Shanghai"

    eleventh = PeriodicTask.objects.get(name=f"campaign-{monthly(11).id}").crontab
    assert (eleventh.minute, eleventh.hour, eleventh.day_of_week, eleventh.day_of_month) == ("30", "10", "*", "11")
    last = PeriodicTask.objects.get(name=f"campaign-{monthly(31).id}").crontab
    assert last.day_of_month == "28-31"  # the 31st runs on a short month's last day

    # Celery's own reading of the crontab fires at the moment we call the next occurrence.
    now = timezone.now()
    fire = now + cron.schedule.remaining_estimate(now)
    assert abs((fire - schedules.next_occurrence(friday, now)).total_seconds()) < 2
    assert schedules.next_occurrence(friday, now).astimezone(SH).strftime("%a %H:%M") == "Fri 20:00"


def test_one_off_is_a_clocked_one_off_task_and_follows_edits(db):
    at = timezone.now() + timedelta(hours=3)
    campaign = campaign_create(name="once", text="hi", scheduled_at=at)
    task = PeriodicTask.objects.get(name=f"campaign-{campaign.id}")
    assert task.one_off and task.clocked.clocked_time == at and task.crontab is None and task.enabled
    later = at + timedelta(hours=1)
    campaign_update(campaign.id, scheduled_at=later)
    task.refresh_from_db()
    assert task.clocked.clocked_time == later and ClockedSchedule.objects.count() == 1  # the old one is gone
    campaign_update(campaign.id, scheduled_at=None)  # back to a draft: no beat row
    assert Campaign.objects.get(id=campaign.id).status == "draft"
    assert not PeriodicTask.objects.filter(name=f"campaign-{campaign.id}").exists()
    # To a recurring schedule, then deleted with the campaign.
    campaign_update(campaign.id, recurrence="monthly", recur_day=11, recur_time=time(9, 0))
    assert PeriodicTask.objects.get(name=f"campaign-{campaign.id}").crontab.day_of_month == "11"
    Campaign.objects.filter(id=campaign.id).update(status="draft")
    campaign_delete(campaign.id)
    assert not PeriodicTask.objects.filter(name=f"campaign-{campaign.id}").exists()


def test_occurrences_weekly_in_shanghai_without_daylight_saving(db):
    friday = weekly()
    # 2026-12-04 and 2026-07-03 are Fridays: 20:00 in Shanghai is 12:00 UTC all year round.
    for day in (sh(2026, 12, 4, 20, 0, 7), sh(2026, 7, 3, 20, 0, 59)):
        assert schedules.occurrence_at(friday, day) == day.replace(second=0).astimezone(UTC)
        assert schedules.occurrence_at(friday, day).hour == 12
    assert schedules.occurrence_at(friday, sh(2026, 12, 4, 19, 59)) == sh(2026, 12, 4, 20, 0)  # a clock a bit behind
    assert schedules.occurrence_at(friday, sh(2026, 12, 4, 19, 0)) == sh(2026, 11, 27, 20, 0)
    assert schedules.occurrence_at(friday, sh(2026, 12, 6, 9, 0)) == sh(2026, 12, 4, 20, 0)
    # Friday 20:00 Shanghai is Friday 12:00 UTC; Saturday 02:00 Shanghai is still Friday 18:00 UTC.
    assert schedules.next_occurrence(friday, sh(2026, 12, 4, 20, 0)) == sh(2026, 12, 11, 20, 0)


def test_occurrences_monthly_at_month_ends(db):
    thirty_first = monthly(31)
    at = schedules.occurrence_at
    assert at(thirty_first, sh(2026, 11, 30, 10, 30)) == sh(2026, 11, 30, 10, 30)  # 30-day month: its last day
    assert at(thirty_first, sh(2026, 11, 28, 10, 30)) == sh(2026, 10, 31, 10, 30)
    assert at(thirty_first, sh(2027, 2, 28, 11, 0)) == sh(2027, 2, 28, 10, 30)
    assert at(thirty_first, sh(2028, 2, 29, 11, 0)) == sh(2028, 2, 29, 10, 30)  # leap year
    assert at(thirty_first, sh(2027, 1, 1, 0, 0)) == sh(2026, 12, 31, 10, 30)  # across the year
    upcoming = schedules.upcoming(thirty_first, 5, after=sh(2027, 1, 1))
    assert [d.astimezone(SH).date().isoformat() for d in upcoming] == [
        "2027-01-31", "2027-02-28", "2027-03-31", "2027-04-30", "2027-05-31"]
    eleventh = monthly(11)
    assert at(eleventh, sh(2026, 12, 11, 10, 30)) == sh(2026, 12, 11, 10, 30)
    assert at(eleventh, sh(2026, 12, 1)) == sh(2026, 11, 11, 10, 30)


def _recurring_with_audience(**kw) -> Campaign:
    make_contact(make_staff())
    return weekly(**kw)


def _fire(campaign: Campaign, moment: datetime):
    return schedules.run_occurrence(campaign.id, fired_at=moment, enqueue=False)


def test_firing_twice_plans_one_run_for_the_scheduled_moment(db):
    campaign = _recurring_with_audience()
    Campaign.objects.filter(id=campaign.id).update(schedule_from=sh(2026, 11, 1))
    first = _fire(campaign, sh(2026, 12, 4, 20, 0, 1))
    again = _fire(campaign, sh(2026, 12, 4, 20, 3, 30))  # beat again, a retried task, a late worker
    assert first is not None and again.id == first.id
    assert CampaignRun.objects.filter(campaign=campaign).count() == 1
    assert first.occurrence == sh(2026, 12, 4, 20, 0)
    assert first.recipients.count() == 1
    assert _fire(campaign, sh(2026, 12, 11, 20, 0, 2)).occurrence == sh(2026, 12, 11, 20, 0)
    assert CampaignRun.objects.filter(campaign=campaign).count() == 2
    # Far too late (the next morning), or before the schedule existed: nothing.
    assert _fire(campaign, sh(2026, 12, 19, 9, 0)) is None
    assert CampaignRun.objects.filter(campaign=campaign).count() == 2


def test_day_31_runs_once_on_the_last_day_only(db):
    make_contact(make_staff())
    campaign = monthly(31)
    Campaign.objects.filter(id=campaign.id).update(schedule_from=sh(2026, 10, 1))
    # The crontab fires on 28, 29, 30 (November has 30 days): only the 30th is the occurrence.
    for day in (28, 29):
        assert _fire(campaign, sh(2026, 11, day, 10, 30)) is None
    run = _fire(campaign, sh(2026, 11, 30, 10, 30))
    assert run.occurrence == sh(2026, 11, 30, 10, 30)
    assert CampaignRun.objects.filter(campaign=campaign).count() == 1


def test_pause_disables_and_resume_skips_what_was_missed(db):
    campaign = _recurring_with_audience()
    task = PeriodicTask.objects.get(name=f"campaign-{campaign.id}")
    paused = schedules.campaign_pause(campaign.id)
    task.refresh_from_db()
    assert paused.status == "paused" and paused.paused_at and not task.enabled
    assert _fire(campaign, timezone.now()) is None
    with pytest.raises(Conflict):
        schedules.campaign_pause(campaign.id)
    resumed = schedules.campaign_resume(campaign.id)
    task.refresh_from_db()
    assert resumed.status == "scheduled" and resumed.paused_at is None and task.enabled
    # The occurrence that fell while paused (before the resume) is not caught up.
    missed = schedules.occurrence_at(campaign, timezone.now())
    assert _fire(campaign, missed + timedelta(seconds=5)) is None
    with pytest.raises(Conflict):
        schedules.campaign_resume(campaign.id)
    once = campaign_create(name="once", text="hi", scheduled_at=timezone.now() + timedelta(hours=1))
    with pytest.raises(Conflict) as refused:
        schedules.campaign_pause(once.id)
    assert refused.value.field == "recurrence"


def test_recur_until_ends_the_campaign(db):
    until = timezone.now() + timedelta(days=20)
    campaign = _recurring_with_audience(recur_until=until)
    task = PeriodicTask.objects.get(name=f"campaign-{campaign.id}")
    assert task.expires == until  # beat stops firing it then
    after = schedules.next_occurrence(campaign, until)
    assert _fire(campaign, after) is None
    campaign.refresh_from_db()
    task.refresh_from_db()
    assert campaign.status == "done" and campaign.finished_at and not task.enabled
    assert not CampaignRun.objects.filter(campaign=campaign).exists()


def test_sweep_finishes_recurring_campaigns_past_recur_until(db):
    campaign = _recurring_with_audience(recur_until=timezone.now() + timedelta(days=8))
    assert schedules.schedules_finish_expired() == []
    assert schedules.schedules_finish_expired(now=timezone.now() + timedelta(days=9)) == [campaign.id]
    assert Campaign.objects.get(id=campaign.id).status == "done"


def test_task_runs_the_occurrence_and_skips_cancelled(db):
    from crm.tasks.campaigns import run_campaign_occurrence

    campaign = _recurring_with_audience()
    Campaign.objects.filter(id=campaign.id).update(status="cancelled")
    assert run_campaign_occurrence(campaign.id) is None
    assert run_campaign_occurrence(999999) is None


def test_api_pause_resume_and_schedule_fields_in_shanghai(admin_client):
    make_contact(make_staff())
    body = {"name": "Fri", "text": "hi", "recurrence": "weekly", "recur_weekday": 4, "recur_time": "20:00",
            "recur_until": "2099-01-01T00:00:00Z"}
    response = admin_client.post("/api/campaigns/", body, content_type="application/json")
    assert response.status_code == 201, response.content
    data = response.json()
    assert data["recur_time"] == "20:00:00" and data["recur_until"] == "2099-01-01T08:00:00+08:00"
    assert data["next_occurrence"].endswith("T20:00:00+08:00")
    assert datetime.fromisoformat(data["next_occurrence"]).weekday() == 4
    cid = data["id"]
    response = admin_client.post(f"/api/campaigns/{cid}/pause/")
    assert response.status_code == 200 and response.json()["status"] == "paused"
    assert response.json()["paused_at"].endswith("+08:00")
    assert admin_client.post(f"/api/campaigns/{cid}/pause/").status_code == 409
    response = admin_client.post(f"/api/campaigns/{cid}/resume/")
    assert response.status_code == 200 and response.json()["status"] == "scheduled"
    once = admin_client.post("/api/campaigns/", {"name": "o", "text": "hi"}, content_type="application/json").json()
    response = admin_client.post(f"/api/campaigns/{once['id']}/pause/")
    assert response.status_code == 409 and response.json()["error"]["field"] == "recurrence"


def test_openapi_schema_of_the_campaign_endpoints():
    from drf_spectacular.generators import SchemaGenerator

    from crm.api import campaigns

    schema = SchemaGenerator(patterns=campaigns.urlpatterns).get_schema(request=None, public=True)
    paths = schema["paths"]
    one = "/api/campaigns/{campaign_id}/"
    for path, verb in [(f"{one}image/", "post"), ("/api/campaigns/audience/", "post"), (f"{one}audience/", "get"),
                       (f"{one}preview/", "get"), (f"{one}pause/", "post"), (f"{one}resume/", "post")]:
        assert verb in paths[path], path
    assert "multipart/form-data" in paths["/api/campaigns/{campaign_id}/image/"]["post"]["requestBody"]["content"]
    created = schema["components"]["schemas"]["CampaignCreateInput"]["properties"]
    assert {"target", "group_chat_ids", "attachment", "recurrence", "recur_time", "recur_until"} <= set(created)


def test_beats_database_scheduler_reads_the_rows(db):
    """django-celery-beat's own scheduler entry for the campaign: due once an occurrence has passed since its last
    run, not before; disabled while paused; the message names the task and the campaign."""
    from django_celery_beat.schedulers import ModelEntry

    from crm.celery import app

    campaign = _recurring_with_audience()
    task = PeriodicTask.objects.get(name=f"campaign-{campaign.id}")
    task.last_run_at = timezone.now() - timedelta(days=8)  # a Friday 20:00 has passed since
    entry = ModelEntry(task, app=app)
    assert entry.is_due().is_due
    assert (entry.task, entry.args) == ("crm.tasks.campaigns.run_campaign_occurrence", [campaign.id])
    task.last_run_at = timezone.now()
    assert not ModelEntry(task, app=app).is_due().is_due
    schedules.campaign_pause(campaign.id)
    task.refresh_from_db()
    assert not ModelEntry(task, app=app).is_due().is_due


def test_one_off_fired_by_its_clocked_task_and_the_sweeper_is_one_run(db):
    from crm.services import campaign_runs

    make_contact(make_staff())
    campaign = campaign_create(name="once", text="hi", scheduled_at=timezone.now() + timedelta(minutes=5))
    due = timezone.now() - timedelta(seconds=30)
    Campaign.objects.filter(id=campaign.id).update(scheduled_at=due)  # its moment has come
    run = _fire(campaign, timezone.now())
    assert run is not None and run.occurrence == due
    assert campaign_runs.campaign_launch_due() == []  # already running: the sweeper starts nothing new
    assert _fire(campaign, timezone.now()).id == run.id
    assert CampaignRun.objects.filter(campaign=campaign).count() == 1
