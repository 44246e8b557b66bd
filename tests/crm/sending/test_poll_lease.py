"""The poll lease: a message is polled by one pass at a time (beat's ticks do not pile up passes reading the same
pages), and the first poll is queued right after the task is created."""

from __future__ import annotations

import pytest

from crm.models import CampaignRecipient, MassMessage
from crm.services import campaign_runs, pushes
from crm.services import campaigns as svc
from crm.services.pushes import mass_message_poll, mass_message_send
from crm.wecom.client import get_client
from tests.crm.sending.conftest import world

pytestmark = [pytest.mark.django_db(transaction=True)]
RESULTS = "externalcontact/get_groupmsg_send_result"


def _result_calls(sim) -> int:
    return int(sim.call("GET", "stats")["calls"].get(RESULTS, 0))


def _created_message(sim, name: str, n: int) -> MassMessage:
    sim.call("PATCH", "corp", confirm_delay_seconds=None)
    world([name], n)
    campaign = svc.campaign_create(name=name, text="Lease")
    campaign_runs.campaign_launch(campaign.id, enqueue=False)
    message = MassMessage.objects.get(campaign=campaign)
    assert mass_message_send(message.id) == "created"
    message.refresh_from_db()
    sim.call("POST", f"groupmsg/{message.msgid}/confirm")
    return message


def test_a_poll_while_another_pass_runs_reads_nothing(sim, monkeypatch):
    message = _created_message(sim, "lea", 1500)  # two pages
    client = get_client()
    real = client.get_groupmsg_send_result
    overlapping: list[dict] = []

    def page_then_beat_polls_again(*args, **kwargs):
        if not overlapping:
            # Beat's next tick polls the same message while this pass is between pages.
            overlapping.append(mass_message_poll(message.id))
        return real(*args, **kwargs)

    monkeypatch.setattr(client, "get_groupmsg_send_result", page_then_beat_polls_again)
    calls = _result_calls(sim)
    counts = mass_message_poll(message.id)
    assert overlapping == [{}]  # the overlapping poll returned at once
    assert _result_calls(sim) - calls == 2  # the pages were read once, by the pass holding the lease
    assert counts == {"delivered": 1500}
    assert CampaignRecipient.objects.filter(mass_message=message, status="delivered").count() == 1500
    message.refresh_from_db()
    assert message.status == "done"
    # Released at the end of the pass: nobody holds it now.
    assert pushes._leases().get(f"{pushes.POLL_LEASE_PREFIX}{message.id}") is None


def test_a_held_lease_skips_the_poll_until_it_is_released(sim):
    message = _created_message(sim, "leb", 10)
    token = pushes._poll_lease(message.id)
    assert token is not None
    calls = _result_calls(sim)
    assert mass_message_poll(message.id) == {}
    assert _result_calls(sim) == calls  # no page read
    pushes._release_lease(message.id, token)
    assert mass_message_poll(message.id) == {"delivered": 10}
    assert _result_calls(sim) - calls == 1


def test_the_lease_of_a_dead_pass_expires(sim, settings):
    settings.MASS_POLL_LEASE_SECONDS = 5
    message = _created_message(sim, "lec", 10)
    assert pushes._poll_lease(message.id) is not None  # a worker that died holding it
    ttl = pushes._leases().ttl(f"{pushes.POLL_LEASE_PREFIX}{message.id}")
    assert 0 < ttl <= 5


def test_the_first_poll_is_queued_right_after_the_task_is_created(sim, monkeypatch, settings):
    from crm.tasks import campaigns as tasks

    settings.MASS_FIRST_POLL_SECONDS = 3
    sim.call("PATCH", "corp", confirm_delay_seconds=None)
    world(["led"], 5)
    campaign = svc.campaign_create(name="first poll", text="Soon")
    campaign_runs.campaign_launch(campaign.id, enqueue=False)
    message = MassMessage.objects.get(campaign=campaign)
    queued = []
    monkeypatch.setattr(tasks.poll_mass_message, "apply_async",
                        lambda args, countdown=None: queued.append((args, countdown)))
    assert tasks.send_mass_message(message.id) == "created"
    assert queued == [((message.id,), 3.0)]  # the first poll, after the dispatch delay


def test_two_concurrent_polls_read_the_pages_once(sim, monkeypatch, postgres_only):
    import threading
    import time

    from django.db import connection

    message = _created_message(sim, "lee", 1500)  # two pages
    client = get_client()
    real = client.get_groupmsg_send_result

    def slow(*args, **kwargs):
        time.sleep(0.3)  # the passes overlap
        return real(*args, **kwargs)

    monkeypatch.setattr(client, "get_groupmsg_send_result", slow)
    start = threading.Barrier(2)
    results: list[dict] = []

    def poll():
        try:
            start.wait()
            results.append(mass_message_poll(message.id))
        finally:
            connection.close()

    calls = _result_calls(sim)
    threads = [threading.Thread(target=poll) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert _result_calls(sim) - calls == 2  # one pass read the two pages; the other none
    assert sorted(results, key=len) == [{}, {"delivered": 1500}]
    assert CampaignRecipient.objects.filter(mass_message=message, status="delivered").count() == 1500


def test_an_unconfirmed_task_is_looked_at_not_read_page_by_page(sim):
    sim.call("PATCH", "corp", confirm_delay_seconds=None)
    world(["lia"], 1500)  # two pages of results
    campaign = svc.campaign_create(name="unconfirmed", text="Not yet")
    campaign_runs.campaign_launch(campaign.id, enqueue=False)
    message = MassMessage.objects.get(campaign=campaign)
    assert mass_message_send(message.id) == "created"
    message.refresh_from_db()
    calls = _result_calls(sim)
    assert mass_message_poll(message.id) == {}  # the sender has not confirmed: get_groupmsg_task says status 0
    assert _result_calls(sim) == calls  # no result page read
    message.refresh_from_db()
    assert message.status == "created" and message.last_polled_at is not None
    sim.call("POST", f"groupmsg/{message.msgid}/confirm")
    assert mass_message_poll(message.id) == {"delivered": 1500}
    assert _result_calls(sim) - calls == 2
    message.refresh_from_db()
    assert message.status == "done"
