"""A real worker SIGKILLed in the middle of planning a chunk, then another started: every contact is planned
exactly once and every customer receives the message exactly once, counted in the simulator's inboxes."""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from crm.models import CampaignRecipient, CampaignRun, MassMessage
from crm.services import campaign_runs
from crm.services import campaigns as svc
from tests.conftest import wait_for
from tests.crm.campaigns.conftest import make_staff
from tests.crm.planning.conftest import bulk_contacts

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.worker]

SLOW_HOOK = Path(__file__).resolve().parent / "slow_worker"
CUSTOMERS = 600
CHUNK = 150


def _world(sim, userids: list[str], n: int) -> list[str]:
    """n shoppers in the simulator, each a friend of one of the members (no callbacks: the CRM rows are made
    directly); their external_userids."""
    from wecom_sim import world
    from wecom_sim.corp import get_corp

    corp = get_corp()
    members = [world.create_member(corp, userid) for userid in userids]
    eids = []
    for i in range(n):
        shopper = world.create_shopper(corp, f"Shopper {i}")
        world.befriend(corp, members[i % len(members)], shopper, event=False)
        eids.append(shopper.external_userid)
    return eids


def test_worker_killed_mid_planning_plans_and_sends_each_customer_once(sim, _session_worker, worker_factory,
                                                                       redis_client):
    if _session_worker.alive:
        _session_worker.stop()  # only the workers started here take the tasks
    sim.call("PATCH", "corp", confirm_delay_seconds=0)  # staff confirm at once
    userids = ["alice", "bob"]
    eids = _world(sim, userids, CUSTOMERS)
    staff = [make_staff(u) for u in userids]
    bulk_contacts(CUSTOMERS, staff, eids=eids)
    campaign = svc.campaign_create(name="flash", text="Flash sale tonight")

    pythonpath = os.pathsep.join([str(SLOW_HOOK), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    doomed = worker_factory(queues="pushes", PYTHONPATH=pythonpath, CRM_TEST_SLOW_PLAN_AFTER="2",
                            CAMPAIGN_PLAN_CHUNK=str(CHUNK))
    run = campaign_runs.run_start(campaign.id)  # planning queued on the pushes queue
    wait_for(lambda: int(redis_client.get("crm:test:plan-stalled") or 0) >= 1, timeout=60,
             message="the doomed worker to stall inside its third chunk")
    doomed.kill()

    run.refresh_from_db()
    assert run.status == CampaignRun.Status.PLANNING and run.planned == 2 * CHUNK
    # The third chunk's rows were inserted in the killed transaction: none of them is there.
    assert CampaignRecipient.objects.filter(run=run).count() == 2 * CHUNK
    assert not MassMessage.objects.filter(run=run).exclude(status=MassMessage.Status.PENDING).exists()

    # A new worker; the dead one's unacknowledged plan_run comes back to it (acks_late, visibility timeout).
    worker_factory(CELERY_VISIBILITY_TIMEOUT="3", CAMPAIGN_PLAN_CHUNK=str(CHUNK))
    try:
        wait_for(lambda: CampaignRun.objects.get(id=run.id).status != CampaignRun.Status.PLANNING, timeout=180,
                 message="planning resumed and finished")
    except pytest.fail.Exception:
        run.refresh_from_db()
        pytest.fail(f"planning stuck: planned={run.planned} unacked={redis_client.hlen('unacked')} "
                    f"queued={redis_client.llen('pushes')}")
    run.refresh_from_db()
    assert run.planned == CUSTOMERS and run.plan_cursor == max(
        CampaignRecipient.objects.filter(run=run).values_list("contact_id", flat=True))
    assert CampaignRecipient.objects.filter(run=run).count() == CUSTOMERS
    assert not CampaignRecipient.objects.filter(run=run, mass_message=None).exists()
    messages = list(MassMessage.objects.filter(run=run))
    assert sorted(m.recipients_count for m in messages) == [CUSTOMERS // 2] * 2  # one batch per sender
    wait_for(lambda: not MassMessage.objects.filter(run=run, status__in=["pending", "sending"]).exists(),
             timeout=180, message="every message handed to WeCom")
    assert len({m.msgid for m in MassMessage.objects.filter(run=run)}) == 2

    # The simulator's exactly-once count (staff confirm as it is read), then every inbox.
    def deliveries() -> dict:
        return sim.call("GET", "deliveries?text=Flash%20sale")

    wait_for(lambda: deliveries()["delivered"] >= CUSTOMERS, timeout=120, interval=1, message="all delivered")
    assert deliveries() == {"delivered": CUSTOMERS, "shoppers": CUSTOMERS, "duplicates": 0}

    def mass_texts(eid: str) -> list[str]:
        inbox = sim.call("GET", f"shoppers/{eid}/inbox")["messages"]
        return [m["text"] for m in inbox if m["kind"] == "mass"]

    with ThreadPoolExecutor(8) as pool:
        received = list(pool.map(mass_texts, eids))
    assert [len(r) for r in received] == [1] * CUSTOMERS
    assert {r[0] for r in received} == {"Flash sale tonight"}
