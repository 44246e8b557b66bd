"""Callbacks end to end over real HTTP: the simulator's own crypto against ours, bursts with duplicates processed
exactly once by a real Celery worker, and nothing lost when a worker dies mid-way."""

from __future__ import annotations

import os
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests

from crm.models import CallbackEvent
from tests.conftest import wait_for
from tests.crm.wecom.callback_helpers import event_xml, signed_post
from tests.crm.wecom.sim_helpers import SimAdmin

SLOW_HOOK = Path(__file__).resolve().parent / "wecom" / "slow_worker"


@pytest.fixture
def sim(live_stack):
    admin = SimAdmin(live_stack)
    admin.reset()
    return admin


def _noop_event(i: int, created: int) -> str:
    # An event type no handler knows: the router stores its outcome ("ignored") and marks it applied,
    # which keeps these tests about delivery and idempotency, not about the contact domain.
    return event_xml(Event="crm_test_probe", ChangeType="burst", CreateTime=str(created), ExternalUserID=f"wm{i:05d}",
                     State=None, WelcomeCode=None)  # fmt: skip


def _status_counts() -> dict:
    from django.db.models import Count

    return dict(CallbackEvent.objects.values_list("status").annotate(n=Count("id")).values_list("status", "n"))


def _wait_processed(count: int, timeout: float) -> None:
    try:
        wait_for(lambda: CallbackEvent.objects.filter(status="applied").count() == count, timeout=timeout)
    except pytest.fail.Exception:
        pytest.fail(f"not all {count} callbacks processed within {timeout}s: {_status_counts()}")


def _post_all(base: str, xmls: list[str], workers: int = 16) -> list[int]:
    """POST each event signed and encrypted; every answer must come well within WeCom's 5 s."""
    session = requests.Session()

    def send(xml: str) -> tuple[int, float]:
        params, body = signed_post(xml)
        started = time.monotonic()
        status = session.post(f"{base}/wecom/callback", params=params, data=body, timeout=10).status_code
        return status, time.monotonic() - started

    with ThreadPoolExecutor(workers) as pool:
        results = list(pool.map(send, xmls))
    slowest = max(elapsed for _, elapsed in results)
    assert slowest < 5, f"an acknowledgement took {slowest:.1f}s"
    return [status for status, _ in results]


def test_simulator_url_verification_passes(sim):
    result = sim.post("callbacks/verify_url")
    assert result["ok"], result


def test_simulator_add_events_are_stored_with_state_and_welcome_code(sim, settings):
    sim.post("members", {"userid": "zhangsan", "name": "张三"})
    from crm.wecom.client import get_client

    way = get_client().add_contact_way(type=1, scene=2, state="store-sh-001", user=["zhangsan"])
    shopper = sim.post("shoppers", {"name": "Alice"})
    scan = sim.post(f"shoppers/{shopper['external_userid']}/scan_contact_way", {"config_id": way["config_id"]})
    drained = sim.post("callbacks/drain", {"timeout": 15})
    assert drained["drained"] and drained["failed"] == 0, drained
    # skip_verify (the default): the customer's add is a half add carrying the welcome code, then the member's
    # confirmation is the full add.
    half = CallbackEvent.objects.get(change_type="add_half_external_contact")
    full = CallbackEvent.objects.get(change_type="add_external_contact")
    for event in (half, full):
        assert event.event == "change_external_contact"
        assert event.payload["ToUserName"] == settings.WECOM_CORP_ID
        assert event.payload["ExternalUserID"] == shopper["external_userid"]
        assert event.payload["UserID"] == "zhangsan"
        assert event.payload["State"] == "store-sh-001"
    assert half.payload["WelcomeCode"] == scan["welcome_code"]


def test_simulator_duplicate_deliveries_are_stored_once(sim):
    sim.patch("corp", {"duplicate_rate": 1.0})
    sim.post("members", {"userid": "zhangsan", "name": "张三"})
    for i in range(3):
        shopper = sim.post("shoppers", {"name": f"S{i}"})
        sim.post("groupchats", {"owner": "zhangsan", "name": f"G{i}"})
        del shopper
    drained = sim.post("callbacks/drain", {"timeout": 15})
    assert drained["drained"] and drained["failed"] == 0, drained
    time.sleep(0.5)  # the duplicate is sent right after the first delivery
    assert CallbackEvent.objects.filter(event="change_external_chat", change_type="create").count() == 3


@pytest.mark.worker
def test_burst_with_duplicates_is_processed_exactly_once(live_stack, celery_worker):
    created = int(time.time())
    xmls = [_noop_event(i, created) for i in range(200)]
    duplicates = xmls[::4]  # 50 events delivered twice (WeCom retry: same event, new nonce)
    started = time.monotonic()
    statuses = _post_all(live_stack, xmls + duplicates)
    elapsed = time.monotonic() - started
    assert statuses == [200] * 250
    assert elapsed < 60
    assert CallbackEvent.objects.count() == 200

    _wait_processed(200, timeout=90)
    # Deliver every task again (a broker redelivery, a sweep racing the worker): nothing is applied twice.
    from crm.tasks.callbacks import process_callback

    for event_id in CallbackEvent.objects.values_list("id", flat=True):
        process_callback.delay(event_id)
    time.sleep(2)
    rows = list(CallbackEvent.objects.values_list("status", "attempts", "result"))
    assert {(s, a) for s, a, _ in rows} == {("applied", 1)}


@pytest.mark.worker
def test_worker_killed_mid_drain_loses_nothing_after_sweep(live_stack, worker_factory, redis_client, celery_worker):
    from crm.services.callbacks import DRAIN_FLAG, DRAIN_FLAG_TTL_SECONDS
    from crm.tasks.callbacks import drain_callbacks, sweep_unprocessed

    pythonpath = os.pathsep.join([str(SLOW_HOOK), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    doomed = worker_factory(queues="doomed", PYTHONPATH=pythonpath, CRM_TEST_SLOW_CALLBACKS="30")
    # A drain is already requested, so the receiver publishes none: the only drain goes to the doomed worker.
    redis_client.set(DRAIN_FLAG, 1, ex=120)
    created = int(time.time())
    xmls = [_noop_event(i, created) for i in range(40)]
    assert _post_all(live_stack, xmls) == [200] * 40
    drain_callbacks.apply_async(queue="doomed")
    wait_for(lambda: int(redis_client.get("crm:test:slow-callback-started") or 0) >= 1, timeout=30,
             message="the doomed worker to start an event")  # fmt: skip
    doomed.kill()
    # The dead worker's drain was unacknowledged and had applied nothing. Under load a drain left over from an earlier
    # test (one that re-queued itself at its deadline) can reach the surviving worker meanwhile and apply some: that
    # is allowed, as long as none is applied twice or lost.
    time.sleep(1)
    statuses = set(CallbackEvent.objects.values_list("status", flat=True))
    assert statuses <= {CallbackEvent.Status.RECEIVED, CallbackEvent.Status.APPLIED}
    assert CallbackEvent.objects.count() == 40
    # The drain cleared the test's 120 s flag on start, so the next callback asks again. Under load a request the
    # client gave up on and retried may still finish on the server after that and ask anew: a flag with the app's
    # own 30 s lifetime, not the test's.
    assert redis_client.ttl(DRAIN_FLAG) <= DRAIN_FLAG_TTL_SECONDS

    sweep_unprocessed.delay(0)  # what beat does every minute (with a grace period)
    _wait_processed(40, timeout=60)
    assert set(CallbackEvent.objects.values_list("attempts", flat=True)) == {1}


@pytest.mark.worker
def test_callbacks_arriving_during_a_drain_are_drained_too(live_stack, celery_worker):
    """Waves of callbacks, each landing while the previous wave is being drained: none is left behind."""
    created = int(time.time())
    for wave in range(3):
        xmls = [_noop_event(1000 * (wave + 1) + i, created) for i in range(60)]
        assert _post_all(live_stack, xmls) == [200] * 60
        time.sleep(0.05)
    _wait_processed(180, timeout=60)
    assert set(CallbackEvent.objects.values_list("attempts", flat=True)) == {1}
