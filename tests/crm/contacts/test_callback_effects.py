"""Callbacks tracked to their effect (received -> routed -> applied | failed), against the real simulator over HTTP:
the effect's WeCom read fails for real (the simulator's fault injection on externalcontact/get), is recorded with
its reason, retried with backoff, and applied in the end."""

from __future__ import annotations

import time

import pytest
import requests

from crm.models import CallbackEvent, FollowRelation
from crm.services import callbacks as svc
from crm.services.channels import channel_create
from tests.conftest import wait_for
from tests.crm.wecom.callback_helpers import event_xml, signed_post

pytestmark = pytest.mark.django_db(transaction=True)
GET = "externalcontact/get"


def _calls(sim, path: str = GET) -> int:
    return sim.get("stats")["calls"].get(path, 0)


def _deliver(base: str, xml: str) -> CallbackEvent:
    """POST one signed, encrypted callback as WeCom does; the stored event."""
    params, body = signed_post(xml)
    assert requests.post(f"{base}/wecom/callback", params=params, data=body, timeout=10).status_code == 200
    return CallbackEvent.objects.latest("id")


def _edit_event(eid: str) -> str:
    return event_xml(ChangeType="edit_external_contact", UserID="alice", ExternalUserID=eid, State=None,
                     WelcomeCode=None)  # fmt: skip


def _friend(sim) -> str:
    """A customer who added alice through a channel, every callback of it applied (here, or by a worker that a
    test before this one left running: either way once)."""
    channel_create(name="Store", state="store-1", staff_userids=["alice"])
    eid = sim.shopper("One")
    sim.scan(eid, "store-1")
    sim.drain()
    for event_id in CallbackEvent.objects.order_by("id").values_list("id", flat=True):
        svc.callback_run(event_id)
    wait_for(lambda: set(CallbackEvent.objects.values_list("status", flat=True)) == {"applied"}, timeout=30,
             message="the add's callbacks applied")  # fmt: skip
    assert FollowRelation.objects.filter(contact__external_userid=eid).exists()
    return eid


def _routed(eid: str) -> CallbackEvent:
    """An edit event as the receiver stores and the router routes it. Made here rather than POSTed, so that no
    drain or apply task reaches a worker left running by an earlier test: this test alone applies it."""
    from django.utils import timezone

    xml = _edit_event(eid)
    payload = svc.parse_event_xml(xml)
    now = timezone.now()
    return CallbackEvent.objects.create(
        dedupe_key=svc.dedupe_key(payload), decrypted_xml=xml, payload=payload, event=payload["Event"],
        change_type=payload["ChangeType"], status="routed", routed_at=now, received_at=now,
        result="routed change_external_contact/edit_external_contact",
    )  # fmt: skip


def test_apply_fails_twice_for_real_then_succeeds(staffed, live_stack, settings):
    """The service, step by step: each failed apply says why and when it is retried; the third applies."""
    sim = staffed
    settings.WECOM_MAX_RETRIES = 0  # one HTTP call per attempt, so each injected fault fails one attempt
    event = _routed(_friend(sim))

    sim.post("faults", {"path": GET, "kind": "-1", "count": 2})
    before = _calls(sim)
    for attempt in (1, 2):
        failed = svc.callback_apply(event_id=event.pk)
        finished = time.time()
        assert (failed.status, failed.failed_step, failed.attempts) == ("failed", "apply", attempt)
        assert "WeComError" in failed.error and "-1" in failed.error
        row = CallbackEvent.objects.get(pk=event.pk)
        assert row.status == "failed" and row.error == failed.error  # recorded, not only returned
        delay = row.next_attempt_at.timestamp() - finished
        assert svc.retry_delay_seconds(attempt) - 1 <= delay <= svc.retry_delay_seconds(attempt) + 1
        assert event.pk not in svc.callback_due_for_sweep(older_than=0)  # backing off: not due yet
    applied = svc.callback_apply(event_id=event.pk)
    assert (applied.status, applied.attempts, applied.error) == ("applied", 3, "")
    assert applied.result.startswith("contact ") and applied.applied_at
    assert _calls(sim) - before == 3  # two refused for real, one answered
    assert svc.callback_apply(event_id=event.pk).attempts == 3  # applied: a duplicate task does nothing
    assert _calls(sim) - before == 3


def test_out_of_attempts_then_replayed(staffed, live_stack, settings, admin_user):
    from auditlog.models import LogEntry

    sim = staffed
    settings.WECOM_MAX_RETRIES = 0
    settings.CALLBACK_MAX_ATTEMPTS = 2
    event = _routed(_friend(sim))
    sim.post("faults", {"path": GET, "kind": "5xx", "count": 2})
    svc.callback_apply(event_id=event.pk)
    exhausted = svc.callback_apply(event_id=event.pk)
    assert (exhausted.status, exhausted.attempts, exhausted.next_attempt_at) == ("failed", 2, None)
    assert "HTTP 5" in exhausted.error
    assert svc.retry_due(exhausted) is None and event.pk not in svc.callback_due_for_sweep(older_than=0)

    # The cause is gone (the faults are used up) and a person replays it: audited, a fresh budget, a task. The
    # task is on the broker; it runs here (or on a worker an earlier test left running: the row decides who).
    assert svc.callback_replay(event_ids=[event.pk], actor=admin_user) == [event.pk]
    assert LogEntry.objects.get(object_pk=str(event.pk)).actor == admin_user
    svc.callback_run(event.pk)
    wait_for(lambda: CallbackEvent.objects.get(pk=event.pk).status == "applied", timeout=30, message="applied")
    done = CallbackEvent.objects.get(pk=event.pk)
    # 1, or 2 when a worker an earlier test left running took the replay's task while callback_run ran it here:
    # both applied the same (idempotent) effect; what matters is a fresh budget and no error.
    assert done.attempts in (1, 2) and done.error == ""
@pytest.mark.worker
def test_celery_retries_with_backoff_until_applied(staffed, live_stack, celery_worker):
    """The same through the real worker: the apply task fails twice at externalcontact/get and retries itself."""
    from django.conf import settings

    sim = staffed
    channel_create(name="Store", state="store-1", staff_userids=["alice"])
    eid = sim.shopper("One")
    sim.scan(eid, "store-1")
    wait_for(lambda: CallbackEvent.objects.count() >= 2
             and set(CallbackEvent.objects.values_list("status", flat=True)) == {"applied"},
             timeout=30, message="the add's callbacks applied")  # fmt: skip

    # The worker's client retries a -1 itself WECOM_MAX_RETRIES times: two whole attempts fail.
    per_attempt = settings.WECOM_MAX_RETRIES + 1
    sim.post("faults", {"path": GET, "kind": "-1", "count": 2 * per_attempt})
    before = _calls(sim)
    event = _deliver(live_stack, _edit_event(eid))
    seen: list[tuple[str, int]] = []

    def applied() -> bool:
        row = CallbackEvent.objects.get(pk=event.pk)
        if not seen or seen[-1] != (row.status, row.attempts):
            seen.append((row.status, row.attempts))
        return row.status == "applied"

    wait_for(applied, timeout=60, interval=0.05, message=f"the event applied (seen {seen})")
    assert ("failed", 1) in seen and ("failed", 2) in seen, seen
    row = CallbackEvent.objects.get(pk=event.pk)
    assert row.attempts == 3 and row.error == "" and row.result.startswith("contact ")
    waited = (row.last_attempt_at - row.routed_at).total_seconds()
    assert waited >= svc.retry_delay_seconds(1) + svc.retry_delay_seconds(2) - 1  # the two backoffs were waited
    assert _calls(sim) - before == 2 * per_attempt + 1
