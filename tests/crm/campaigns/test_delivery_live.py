"""Against the simulator over HTTP, with a real worker: tasks created per sender, confirmed by staff, and each
recipient tracked to delivered / not a friend / limit reached; relaunches and redelivered tasks send nothing twice."""

from __future__ import annotations

import time
from datetime import timedelta

import pytest
from django.utils import timezone

from crm.models import Campaign, CampaignRecipient, MassMessage
from crm.services import campaign_runs, run_control
from crm.services import campaigns as svc
from crm.services.pushes import mass_message_poll
from crm.tasks.campaigns import poll_mass_message_results, send_mass_message
from crm.wecom.client import get_client
from tests.conftest import wait_for
from tests.crm.campaigns.conftest import befriend, make_staff

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.worker]


def _statuses(campaign) -> dict[str, str]:
    return dict(CampaignRecipient.objects.filter(campaign=campaign).values_list("external_userid", "status"))


def test_delivery_is_tracked_to_each_wecom_status(sim, celery_worker):
    # Staff confirm only when told to, and each customer may receive one mass message per day.
    sim.call("PATCH", "corp", confirm_delay_seconds=None, receive_quota="day1")
    sim.member("alice")
    sim.member("bob")
    alice, bob = make_staff("alice"), make_staff("bob")
    happy = befriend(sim, alice, "Happy")
    gone = befriend(sim, alice, "Gone")  # deletes alice in WeChat once the task exists: status 2
    busy = befriend(sim, bob, "Busy")  # already got a mass message today: status 3
    earlier = get_client().add_msg_template(chat_type="single", external_userid=[busy.external_userid],
                                            sender="bob", text={"content": "earlier today"})
    sim.call("POST", f"groupmsg/{earlier['msgid']}/confirm")

    campaign = svc.campaign_create(name="11.11", text="Our 11.11 sale starts at 20:00")
    campaign_runs.campaign_launch(campaign.id)
    wait_for(lambda: MassMessage.objects.filter(campaign=campaign, status="created").count() == 2,
             message="both senders' tasks created")
    messages = list(MassMessage.objects.filter(campaign=campaign).select_related("sender"))
    assert {m.sender.userid for m in messages} == {"alice", "bob"}
    # Deleted after the send (before it, the send would exclude them: contact_deleted): WeCom answers status 2.
    sim.call("POST", f"shoppers/{gone.external_userid}/delete_staff", userid="alice")

    # Nobody confirmed yet: polling leaves everyone pending.
    for m in messages:
        mass_message_poll(m.id)
    assert set(_statuses(campaign).values()) == {"pending"}

    for m in messages:
        sim.call("POST", f"groupmsg/{m.msgid}/confirm")

    def tracked():
        poll_mass_message_results.delay()
        return "pending" not in _statuses(campaign).values()

    wait_for(tracked, timeout=30, interval=0.5, message="every recipient tracked")
    assert _statuses(campaign) == {
        happy.external_userid: "delivered",
        gone.external_userid: "not_friend",
        busy.external_userid: "limit_reached",
    }
    assert CampaignRecipient.objects.get(campaign=campaign, contact=happy).sent_at is not None
    wait_for(lambda: Campaign.objects.get(id=campaign.id).status == "done", message="campaign done")

    inbox = sim.call("GET", f"shoppers/{happy.external_userid}/inbox")["messages"]
    assert [m["text"] for m in inbox if m["kind"] == "mass"] == ["Our 11.11 sale starts at 20:00"]

    stats = campaign_runs.campaign_launch(campaign.id)  # a finished campaign launches nothing
    assert stats == []


def test_relaunch_and_redelivered_tasks_send_each_customer_once(sim, celery_worker):
    sim.call("PATCH", "corp", confirm_delay_seconds=0)
    sim.member("carol")
    carol = make_staff("carol")
    contacts = [befriend(sim, carol, f"Shopper {i}") for i in range(3)]
    campaign = svc.campaign_create(name="once", text="Only once, please")
    campaign_runs.campaign_launch(campaign.id)
    campaign_runs.campaign_launch(campaign.id)  # beat and an admin click at the same time
    wait_for(lambda: MassMessage.objects.filter(campaign=campaign, status="created").exists(),
             message="task created")
    message = MassMessage.objects.get(campaign=campaign)
    # The same task message delivered again (acks_late after a lost ack) and a relaunch: nothing new is created.
    send_mass_message.delay(message.id)
    campaign_runs.campaign_launch(campaign.id)

    def all_delivered():
        poll_mass_message_results.delay()
        return set(_statuses(campaign).values()) == {"delivered"}

    wait_for(all_delivered, timeout=30, interval=0.5, message="all delivered")
    assert MassMessage.objects.filter(campaign=campaign).count() == 1
    assert MassMessage.objects.get(campaign=campaign).attempts == 1
    for contact in contacts:
        inbox = sim.call("GET", f"shoppers/{contact.external_userid}/inbox")["messages"]
        assert [m["text"] for m in inbox if m["kind"] == "mass"] == ["Only once, please"]


def test_a_send_that_crashed_after_wecom_created_the_task_is_adopted_not_resent(sim, celery_worker):
    sim.call("PATCH", "corp", confirm_delay_seconds=None)
    sim.member("dave")
    dave = make_staff("dave")
    shopper = befriend(sim, dave, "Shopper")
    campaign = svc.campaign_create(name="crash", text="After the crash")
    campaign_runs.campaign_launch(campaign.id, enqueue=False)
    message = MassMessage.objects.get(campaign=campaign)
    # The dead worker's state: marked "sending" (committed), WeCom created the task, the msgid was never stored;
    # longer ago than the grace, so the next attempt may take the claim over (a fresher claim is left alone).
    MassMessage.objects.filter(id=message.id).update(
        status="sending", sending_at=timezone.now() - timedelta(minutes=5), attempts=1
    )
    created = get_client().add_msg_template(chat_type="single", external_userid=[shopper.external_userid],
                                            sender="dave", text={"content": "After the crash"})

    send_mass_message.delay(message.id)  # the redelivered task
    wait_for(lambda: MassMessage.objects.get(id=message.id).status == "created", message="task adopted")
    message.refresh_from_db()
    assert message.msgid == created["msgid"] and message.attempts == 2  # the take-over claimed it once
    listed = get_client().get_groupmsg_list_v2(
        chat_type="single", start_time=int(time.time()) - 600, end_time=int(time.time()) + 60
    )["group_msg_list"]
    assert len(listed) == 1  # nothing was sent a second time


def test_a_send_that_crashed_before_reaching_wecom_is_sent_after_the_grace(sim, celery_worker):
    sim.call("PATCH", "corp", confirm_delay_seconds=0)
    sim.member("erin")
    erin = make_staff("erin")
    shopper = befriend(sim, erin, "Shopper")
    campaign = svc.campaign_create(name="crash2", text="Never reached WeCom")
    campaign_runs.campaign_launch(campaign.id, enqueue=False)
    message = MassMessage.objects.get(campaign=campaign)
    MassMessage.objects.filter(id=message.id).update(
        status="sending", sending_at=timezone.now() - timedelta(minutes=5), attempts=1
    )
    send_mass_message.delay(message.id)
    wait_for(lambda: MassMessage.objects.get(id=message.id).status == "created", message="task sent")
    assert MassMessage.objects.get(id=message.id).attempts == 2

    def delivered():
        poll_mass_message_results.delay()
        return CampaignRecipient.objects.get(campaign=campaign).status == "delivered"

    wait_for(delivered, timeout=30, interval=0.5, message="delivered")
    inbox = sim.call("GET", f"shoppers/{shopper.external_userid}/inbox")["messages"]
    assert [m["text"] for m in inbox if m["kind"] == "mass"] == ["Never reached WeCom"]


def test_remind_then_cancel_through_wecom(sim, celery_worker):
    sim.call("PATCH", "corp", confirm_delay_seconds=None)
    sim.member("kim")
    kim = make_staff("kim")
    shopper = befriend(sim, kim, "Waiting")
    campaign = svc.campaign_create(name="cancel me", text="Soon cancelled")
    campaign_runs.campaign_launch(campaign.id)
    wait_for(lambda: MassMessage.objects.filter(campaign=campaign, status="created").exists(), message="created")

    # WeCom allows 3 reminders per task per 24 h; the fourth is refused (41094) and counted as not reminded.
    assert [run_control.campaign_remind(campaign.id) for _ in range(4)] == [1, 1, 1, 0]
    assert MassMessage.objects.get(campaign=campaign).reminders == 3

    run_control.campaign_cancel(campaign.id)
    assert Campaign.objects.get(id=campaign.id).status == "cancelled"
    assert MassMessage.objects.get(campaign=campaign).status == "cancelled"
    assert CampaignRecipient.objects.get(campaign=campaign).status == "cancelled"
    # The task is cancelled at WeCom too: staff confirming now sends nothing.
    sim.call("PATCH", "corp", confirm_delay_seconds=0)
    time.sleep(0.5)
    inbox = sim.call("GET", f"shoppers/{shopper.external_userid}/inbox")["messages"]
    assert [m for m in inbox if m["kind"] == "mass"] == []
