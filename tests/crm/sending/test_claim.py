"""The SENDING race closed: attempts running at once on one MassMessage (a Celery retry and beat's re-queue,
a redelivered task) claim it by compare-and-set, and WeCom's add_msg_template is called once."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from crm.models import CampaignRecipient, MassMessage
from crm.services import campaign_runs, pushes
from crm.services import campaigns as svc
from tests.crm.sending.conftest import add_calls, world

pytestmark = [pytest.mark.django_db(transaction=True)]


def _one_message(sim, text: str, n: int = 3) -> MassMessage:
    sim.call("PATCH", "corp", confirm_delay_seconds=None)
    world(["racer"], n)
    campaign = svc.campaign_create(name=text, text=text)
    campaign_runs.campaign_launch(campaign.id, enqueue=False)
    return MassMessage.objects.get(campaign=campaign)


def _race(message_id: int, attempts: int, *, in_lockstep: bool) -> list[str]:
    """`attempts` threads (each its own database connection) run mass_message_send on one row. in_lockstep: all
    of them have read the row before any claims it, the worst interleaving."""
    barrier = threading.Barrier(attempts)
    real_claim = pushes._claim
    results: list[str] = []
    errors: list[BaseException] = []

    def claim(message):
        if in_lockstep:
            barrier.wait(timeout=20)
        return real_claim(message)

    def attempt():
        try:
            results.append(pushes.mass_message_send(message_id))
        except BaseException as exc:
            errors.append(exc)
        finally:
            connection.close()

    pushes._claim = claim
    try:
        threads = [threading.Thread(target=attempt) for _ in range(attempts)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
    finally:
        pushes._claim = real_claim
    assert not errors, errors
    return sorted(results)


@pytest.mark.parametrize("in_lockstep", [True, False])
def test_two_senders_on_a_stale_sending_row_call_wecom_once(sim, postgres_only, in_lockstep):
    # The race: a retry with a countdown and beat's 15 s re-queue, both past the grace of a row left
    # "sending" by an attempt that never reached WeCom.
    message = _one_message(sim, f"stale sending {in_lockstep}")
    MassMessage.objects.filter(id=message.id).update(
        status="sending", claim_token="dead-attempt", sending_at=timezone.now() - timedelta(minutes=10), attempts=1
    )
    before = add_calls(sim)
    results = _race(message.id, 2, in_lockstep=in_lockstep)
    assert add_calls(sim) - before == 1  # add_msg_template, counted by the simulator
    assert results == ["created", "held"]
    message.refresh_from_db()
    assert message.status == "created" and message.msgid and message.attempts == 2
    assert message.claim_token not in ("", "dead-attempt")  # the token of the attempt that created the task
    assert sim.call("GET", "stats")["calls"].get("externalcontact/get_groupmsg_list_v2", 0) >= 1  # looked up first


@pytest.mark.parametrize("in_lockstep", [True, False])
def test_concurrent_senders_on_a_pending_row_call_wecom_once(sim, postgres_only, in_lockstep):
    message = _one_message(sim, f"pending {in_lockstep}")
    before = add_calls(sim)
    results = _race(message.id, 4 if in_lockstep else 8, in_lockstep=in_lockstep)
    assert add_calls(sim) - before == 1
    assert results.count("created") == 1 and set(results) <= {"created", "held"}
    message.refresh_from_db()
    assert message.status == "created" and message.attempts == 1
    assert CampaignRecipient.objects.filter(mass_message=message, status="pending").count() == 3


def test_a_fresh_sending_claim_is_left_to_its_holder(sim):
    # Within the grace the holder may still be inside add_msg_template: nobody else calls WeCom.
    message = _one_message(sim, "fresh claim")
    MassMessage.objects.filter(id=message.id).update(status="sending", claim_token="live", sending_at=timezone.now())
    before = add_calls(sim)
    assert pushes.mass_message_send(message.id) == "held"
    assert add_calls(sim) == before
    assert MassMessage.objects.get(id=message.id).claim_token == "live"


def test_the_holder_that_lost_its_claim_stores_nothing(sim):
    message = _one_message(sim, "lost claim")
    assert pushes._claim(message) is not None
    token = MassMessage.objects.get(id=message.id).claim_token
    MassMessage.objects.filter(id=message.id).update(claim_token="someone-else")
    assert pushes._store_created(message, token, "msgXYZ", []) is False
    assert MassMessage.objects.get(id=message.id).msgid is None
