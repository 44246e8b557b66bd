"""A real worker SIGKILLed in the middle of sending, some of its add_msg_template calls still in flight (WeCom
creates those tasks, the CRM never learns their msgid), then another worker started: every message is created
once and every customer receives the campaign exactly once, counted in the simulator."""

from __future__ import annotations

import time

import pytest

from crm.models import CampaignRecipient, CampaignRun, MassMessage
from crm.services import campaign_runs
from crm.services import campaigns as svc
from crm.services.pushes import mass_messages_to_resend
from crm.tasks.campaigns import poll_mass_message_results, send_mass_message
from crm.wecom.client import get_client
from tests.conftest import wait_for
from tests.crm.sending.conftest import ADD, add_calls, mass_deliveries, world

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.worker]

SENDERS = 30
PER_SENDER = 10
TEXT = "Midnight flash sale"
GRACE = "4"


def _sim_tasks() -> list[dict]:
    now = int(time.time())
    return list(get_client().iter_groupmsg_list_v2(chat_type="single", start_time=now - 3600, end_time=now + 60,
                                                   filter_type=0))


def test_worker_killed_mid_sending_delivers_each_customer_once(sim, settings, _session_worker, worker_factory):
    if _session_worker.alive:
        _session_worker.stop()  # only the workers started here take the tasks
    settings.MASS_SEND_GRACE_SECONDS = float(GRACE)  # beat's sweep in this process: the same grace as the workers
    sim.call("PATCH", "corp", confirm_delay_seconds=0)  # staff confirm at once
    _staff, eids = world([f"s{i:02d}" for i in range(SENDERS)], PER_SENDER)
    campaign = svc.campaign_create(name="flash", text=TEXT)
    # Each add_msg_template takes 0.6 s in WeCom, so the kill lands with calls in flight.
    sim.call("POST", "faults", path=ADD, kind="slow", delay_ms=600)

    doomed = worker_factory(queues="pushes", MASS_SEND_GRACE_SECONDS=GRACE)
    campaign_runs.campaign_launch(campaign.id)  # planning, then the sends, queued on the pushes queue
    wait_for(lambda: MassMessage.objects.filter(campaign=campaign, status="created").count() >= 6, timeout=60,
             message="a few messages sent")

    def calls_in_flight() -> bool:
        # Counted by WeCom on arrival, before its 0.6 s delay: more calls received than msgids stored means some are
        # inside WeCom now. A message merely marked `sending` may not have reached WeCom yet on a loaded machine,
        # and a kill then leaves no orphan to adopt. WeCom's count is read first: a call counted then and not stored
        # after is still inside WeCom (read the other way round, a call finishing in between looks in flight).
        arrived = add_calls(sim)
        stored_now = MassMessage.objects.filter(campaign=campaign).exclude(msgid=None).count()
        return arrived > stored_now and MassMessage.objects.filter(campaign=campaign, status="sending").exists()

    wait_for(calls_in_flight, timeout=20, interval=0.02, message="calls in flight")
    doomed.kill()
    in_flight = MassMessage.objects.filter(campaign=campaign, status="sending").count()
    assert in_flight >= 1
    stored = set(MassMessage.objects.filter(campaign=campaign).exclude(msgid=None).values_list("msgid", flat=True))

    def orphans() -> set:
        return {t["msgid"] for t in _sim_tasks()} - stored

    # WeCom finishes the calls the dead worker was waiting for (each 0.6 s; longer on a loaded machine): tasks it
    # created whose msgid the CRM never stored, the crash window.
    orphaned = wait_for(orphans, timeout=15, interval=0.2, message="WeCom to finish the dead worker's calls")
    sim.call("DELETE", "faults")

    # A new worker; the dead one's unacknowledged sends come back to it (acks_late, visibility timeout), and beat's
    # sweep (here, by hand) queues stale claims again on top: duplicates the claim must absorb.
    worker_factory(CELERY_VISIBILITY_TIMEOUT="3", MASS_SEND_GRACE_SECONDS=GRACE)

    def all_created():
        for message_id in mass_messages_to_resend():
            send_mass_message.delay(message_id)
        return not MassMessage.objects.filter(campaign=campaign, status__in=["pending", "sending"]).exists()

    wait_for(all_created, timeout=120, interval=2, message="every message handed to WeCom")
    messages = list(MassMessage.objects.filter(campaign=campaign))
    assert len(messages) == SENDERS and len({m.msgid for m in messages}) == SENDERS
    assert orphaned <= {m.msgid for m in messages}  # the orphaned tasks were found and adopted, not sent again
    assert len(_sim_tasks()) == SENDERS  # WeCom holds one task per message, no second one
    assert add_calls(sim) >= SENDERS

    def tracked():
        poll_mass_message_results.delay()
        return not CampaignRecipient.objects.filter(campaign=campaign, status="pending").exists()

    wait_for(tracked, timeout=60, interval=1, message="results polled")
    assert set(CampaignRecipient.objects.filter(campaign=campaign).values_list("status", flat=True)) == {"delivered"}
    deliveries = mass_deliveries(sim, eids, TEXT)
    assert len(deliveries) == SENDERS * PER_SENDER and set(deliveries.values()) == {1}  # each exactly once
    wait_for(lambda: CampaignRun.objects.get(campaign=campaign).status == "done", message="run done")
