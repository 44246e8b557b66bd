"""Pause, resume and cancel a run: pending messages of a paused run are not sent, resume sends them, cancel also
cancels the tasks WeCom already holds; the run API shows progress and refuses what cannot be done."""

from __future__ import annotations

import pytest

from crm.models import Campaign, CampaignRecipient, CampaignRun, MassMessage
from crm.selectors.runs import run_progress
from crm.services import campaign_runs, run_control
from crm.services import campaigns as svc
from crm.services.pushes import mass_message_send, mass_messages_to_resend
from tests.conftest import wait_for
from tests.crm.sending.conftest import add_calls, mass_deliveries, world

pytestmark = [pytest.mark.django_db(transaction=True)]


def _two_sender_run(sim, text: str) -> tuple[CampaignRun, dict[str, MassMessage], list[str]]:
    _staff, eids = world(["una", "vic"], 3)
    campaign = svc.campaign_create(name=text, text=text)
    campaign_runs.campaign_launch(campaign.id, enqueue=False)
    run = CampaignRun.objects.get(campaign=campaign)
    return run, {m.sender.userid: m for m in MassMessage.objects.filter(run=run).select_related("sender")}, eids


def test_a_paused_run_sends_nothing_until_resumed(sim):
    sim.call("PATCH", "corp", confirm_delay_seconds=0)
    run, messages, eids = _two_sender_run(sim, "Paused sale")
    assert mass_message_send(messages["una"].id) == "created"
    run_control.run_pause(run.id)
    before = add_calls(sim)
    assert mass_message_send(messages["vic"].id) == "paused"
    assert add_calls(sim) == before and MassMessage.objects.get(id=messages["vic"].id).status == "pending"
    MassMessage.objects.filter(run=run).update(created_at=run.started_at.replace(year=2020))
    assert mass_messages_to_resend() == []  # beat's re-queue leaves a paused run alone
    progress = run_progress(CampaignRun.objects.get(id=run.id))
    assert progress["status"] == "paused" and progress["paused_at"] is not None
    assert progress["messages"] == {"created": 1, "pending": 1}

    run = run_control.run_resume(run.id, enqueue=False)
    assert run.status == "sending" and run.paused_at is None
    assert mass_message_send(messages["vic"].id) == "created"
    assert add_calls(sim) == before + 1
    for m in MassMessage.objects.filter(run=run):
        from crm.services.pushes import mass_message_poll

        wait_for(lambda m=m: mass_message_poll(m.id) is not None and MassMessage.objects.get(id=m.id).status == "done",
                 message="delivered")
    assert set(mass_deliveries(sim, eids, "Paused sale").values()) == {1}
    assert CampaignRun.objects.get(id=run.id).status == "done"


def test_pause_during_planning_and_resume_carries_on_planning(sim, settings, monkeypatch):
    settings.CAMPAIGN_PLAN_CHUNK = 2
    _staff, _eids = world(["wes"], 5)
    campaign = svc.campaign_create(name="chunks", text="Chunks")
    # Plan one chunk only, as a worker would before the pause lands.
    monkeypatch.setattr(campaign_runs, "run_plan", lambda run_id, enqueue=True: campaign_runs.run_plan_chunk(
        run_id, enqueue=False))
    run = campaign_runs.run_start(campaign.id, enqueue=False)
    assert run.status == "planning" and CampaignRecipient.objects.filter(run=run).count() == 2
    run_control.run_pause(run.id)
    assert campaign_runs.run_plan_chunk(run.id, enqueue=False) is False  # planning stops between chunks
    assert CampaignRecipient.objects.filter(run=run).count() == 2
    run = run_control.run_resume(run.id, enqueue=False)
    assert run.status == "planning"
    monkeypatch.undo()
    run = campaign_runs.run_plan(run.id, enqueue=False)
    assert run.status == "sending" and CampaignRecipient.objects.filter(run=run, status="pending").count() == 5


def test_cancel_a_run_cancels_its_tasks_in_wecom(sim):
    sim.call("PATCH", "corp", confirm_delay_seconds=None)
    run, messages, eids = _two_sender_run(sim, "Cancelled sale")
    assert mass_message_send(messages["una"].id) == "created"
    run = run_control.run_cancel(run.id)
    assert run.status == "cancelled" and run.cancelled_at is not None
    una, vic = (MassMessage.objects.get(id=messages[u].id) for u in ("una", "vic"))
    assert una.status == "cancelled" and vic.status == "cancelled"
    assert set(CampaignRecipient.objects.filter(run=run).values_list("status", flat=True)) == {"cancelled"}
    assert mass_message_send(vic.id) == "cancelled"  # a late, redelivered send does nothing
    assert sim.call("POST", f"groupmsg/{una.msgid}/confirm")["confirmed"] == 0  # cancelled at WeCom
    assert set(mass_deliveries(sim, eids, "Cancelled sale").values()) == {0}
    assert run_progress(run)["recipients"] == {"cancelled": 6}
    with pytest.raises(Exception) as err:
        run_control.run_cancel(run.id)
    assert getattr(err.value, "status_code", None) == 409
    assert Campaign.objects.get(id=run.campaign_id).status != "running"


def test_run_api(sim, admin_client, celery_worker, client):
    sim.call("PATCH", "corp", confirm_delay_seconds=None)
    run, _messages, _eids = _two_sender_run(sim, "Through the API")
    listed = admin_client.get(f"/api/campaigns/{run.campaign_id}/runs")
    assert listed.status_code == 200
    [row] = listed.json()
    assert row["run_id"] == run.id and row["total"] == 6 and row["recipients"] == {"pending": 6}
    assert row["messages"] == {"pending": 2}

    paused = admin_client.post(f"/api/runs/{run.id}/pause")
    assert paused.status_code == 200 and paused.json()["status"] == "paused"
    assert admin_client.post(f"/api/runs/{run.id}/resume").json()["status"] == "sending"
    # The real worker sends the queued messages.
    wait_for(lambda: MassMessage.objects.filter(run=run, status="created").count() == 2, timeout=30,
             message="both sent after resume")
    assert admin_client.get(f"/api/runs/{run.id}/").json()["messages"] == {"created": 2}
    resumed_again = admin_client.post(f"/api/runs/{run.id}/resume")
    assert resumed_again.status_code == 409 and resumed_again.json()["error"]["field"] == "status"
    assert admin_client.post(f"/api/runs/{run.id}/cancel").json()["status"] == "cancelled"
    assert admin_client.post("/api/runs/999999/pause").status_code == 404
    assert admin_client.get("/api/campaigns/999999/runs").status_code == 404
    client.logout()
    assert client.get(f"/api/campaigns/{run.campaign_id}/runs").status_code in (401, 403)
