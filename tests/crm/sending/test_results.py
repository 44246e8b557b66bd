"""Results and deadlines: get_groupmsg_send_result read page by page and stored in bulk (one UPDATE per page and
status), resumable from the stored cursor; group messages too; unconfirmed tasks expire at their deadline."""

from __future__ import annotations

import logging
from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from crm.models import CampaignGroupRecipient, CampaignRecipient, CustomerGroup, MassMessage
from crm.selectors.runs import run_progress
from crm.services import campaign_runs
from crm.services import campaigns as svc
from crm.services.pushes import mass_message_poll, mass_message_send, mass_messages_expire
from crm.wecom.client import get_client
from tests.crm.sending.conftest import make_staff, world

pytestmark = [pytest.mark.django_db(transaction=True)]
RESULTS = "externalcontact/get_groupmsg_send_result"


def _result_calls(sim) -> int:
    return int(sim.call("GET", "stats")["calls"].get(RESULTS, 0))


def _recipient_updates(ctx) -> int:
    table = CampaignRecipient._meta.db_table
    return sum(1 for q in ctx.captured_queries if q["sql"].lstrip().upper().startswith("UPDATE")
               and table in q["sql"] and "SET" in q["sql"].upper() and "status" in q["sql"])


def test_paged_results_stored_in_bulk_and_resumed_from_the_stored_cursor(sim):
    sim.call("PATCH", "corp", confirm_delay_seconds=None)
    world(["pat"], 1500)  # more than one page (1,000) of one sender's results
    campaign = svc.campaign_create(name="pages", text="Paged")
    campaign_runs.campaign_launch(campaign.id, enqueue=False)
    message = MassMessage.objects.get(campaign=campaign)
    assert message.recipients_count == 1500
    assert mass_message_send(message.id) == "created"
    message.refresh_from_db()
    sim.call("POST", f"groupmsg/{message.msgid}/confirm")

    # A poll that died after its first page left this cursor stored: the next poll starts there.
    first = get_client().get_groupmsg_send_result(message.msgid, "pat", limit=1000)
    assert len(first["send_list"]) == 1000 and first["next_cursor"]
    MassMessage.objects.filter(id=message.id).update(poll_cursor=first["next_cursor"])
    calls = _result_calls(sim)
    with CaptureQueriesContext(connection) as ctx:
        counts = mass_message_poll(message.id)
    assert _result_calls(sim) - calls == 1  # only the second page was read
    assert counts == {"delivered": 500}
    assert _recipient_updates(ctx) == 1  # the page stored with one UPDATE
    message.refresh_from_db()
    assert message.poll_cursor == "" and message.status == "created"  # the pass ended; 1000 still pending

    calls = _result_calls(sim)
    with CaptureQueriesContext(connection) as ctx:
        counts = mass_message_poll(message.id)
    assert _result_calls(sim) - calls == 2 and counts == {"delivered": 1000}
    assert _recipient_updates(ctx) == 2  # one per page and status
    assert CampaignRecipient.objects.filter(mass_message=message, status="delivered").count() == 1500
    assert not CampaignRecipient.objects.filter(mass_message=message, sent_at=None).exists()
    message.refresh_from_db()
    assert message.status == "done"
    assert run_progress(message.run)["recipients"] == {"delivered": 1500}


def test_the_cursor_is_stored_after_each_page(sim, monkeypatch):
    sim.call("PATCH", "corp", confirm_delay_seconds=None)
    world(["pia"], 1200)
    campaign = svc.campaign_create(name="crash mid-poll", text="Crash")
    campaign_runs.campaign_launch(campaign.id, enqueue=False)
    message = MassMessage.objects.get(campaign=campaign)
    mass_message_send(message.id)
    message.refresh_from_db()
    sim.call("POST", f"groupmsg/{message.msgid}/confirm")
    client = get_client()
    real = client.get_groupmsg_send_result
    pages = []

    def dies_on_second_page(*args, **kwargs):
        if pages:
            raise RuntimeError("worker died")
        pages.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(type(client), "get_groupmsg_send_result", lambda self, *a, **k: dies_on_second_page(*a, **k))
    with pytest.raises(RuntimeError):
        mass_message_poll(message.id)
    message.refresh_from_db()
    assert message.poll_cursor  # page one committed with its cursor
    assert CampaignRecipient.objects.filter(mass_message=message, status="delivered").count() == 1000
    monkeypatch.undo()
    assert mass_message_poll(message.id) == {"delivered": 200}
    assert MassMessage.objects.get(id=message.id).status == "done"


def test_group_messages_are_sent_by_the_owner_and_tracked(sim):
    from wecom_sim import world as sim_world
    from wecom_sim.corp import get_corp

    sim.call("PATCH", "corp", confirm_delay_seconds=None)
    corp = get_corp()
    sim_world.create_member(corp, "gus")
    gus = make_staff("gus")
    chats = [sim_world.create_groupchat(corp, "gus", f"Fans {i}").chat_id for i in range(3)]
    for chat_id in chats:
        CustomerGroup.objects.create(chat_id=chat_id, owner=gus, name=chat_id)
    campaign = svc.campaign_create(name="groups", text="Hello groups", target="groups", group_chat_ids=chats)
    campaign_runs.campaign_launch(campaign.id, enqueue=False)
    message = MassMessage.objects.get(campaign=campaign)
    assert message.chat_type == "group" and message.sender_id == gus.id
    assert mass_message_send(message.id) == "created"
    message.refresh_from_db()
    listed = get_client().get_groupmsg_list_v2(chat_type="group", start_time=int(timezone.now().timestamp()) - 600,
                                               end_time=int(timezone.now().timestamp()) + 60)["group_msg_list"]
    assert [m["msgid"] for m in listed] == [message.msgid]
    sim.call("POST", f"groupmsg/{message.msgid}/confirm")
    assert mass_message_poll(message.id) == {"delivered": 3}
    assert set(CampaignGroupRecipient.objects.filter(run=message.run).values_list("status", flat=True)) == {
        "delivered"}
    assert MassMessage.objects.get(id=message.id).status == "done"
    assert run_progress(message.run)["groups"] == {"delivered": 3}


def test_unconfirmed_tasks_expire_at_the_deadline(sim, caplog):
    sim.call("PATCH", "corp", confirm_delay_seconds=None)  # staff confirm only when told to
    world(["slow", "quick"], 2)
    campaign = svc.campaign_create(name="deadline", text="Confirm me")
    campaign_runs.campaign_launch(campaign.id, enqueue=False)
    messages = {m.sender.userid: m for m in MassMessage.objects.filter(campaign=campaign).select_related("sender")}
    for m in messages.values():
        assert mass_message_send(m.id) == "created"
        m.refresh_from_db()
        assert abs((m.deadline_at - m.created_task_at) - timedelta(hours=24)) < timedelta(seconds=1)
    # "quick" confirms in time (never polled since); "slow" never does. A day passes, in WeCom and in the CRM.
    sim.call("POST", f"groupmsg/{messages['quick'].msgid}/confirm")
    sim.call("POST", "clock/advance", seconds=25 * 3600)
    assert mass_messages_expire() == {"messages": 0, "recipients": 0}  # not yet past the deadline on the CRM side
    MassMessage.objects.filter(campaign=campaign).update(deadline_at=timezone.now() - timedelta(minutes=1))

    with caplog.at_level(logging.WARNING, logger="crm.services.pushes"):
        assert mass_messages_expire() == {"messages": 1, "recipients": 2}
    slow, quick = (MassMessage.objects.get(id=messages[u].id) for u in ("slow", "quick"))
    assert slow.status == "expired" and quick.status == "done"  # the last poll found quick's results
    assert set(slow.recipients.values_list("status", flat=True)) == {"expired"}
    assert set(quick.recipients.values_list("status", flat=True)) == {"delivered"}
    warned = [r for r in caplog.records if r.levelno == logging.WARNING and "expired" in r.getMessage()]
    assert any(getattr(r, "recipients_expired", None) == 2 for r in warned)
    assert any(getattr(r, "messages", None) == 1 for r in warned)
    # Cancelled in WeCom: "slow" confirming now sends nothing.
    assert sim.call("POST", f"groupmsg/{slow.msgid}/confirm")["confirmed"] == 0
    progress = run_progress(slow.run)
    assert progress["expired"] == 2 and progress["messages_expired"] == 1 and progress["recipients"] == {
        "expired": 2, "delivered": 2}
    assert progress["status"] == "done"
