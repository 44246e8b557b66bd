"""Handover of a resigned or moving staff member's customers and groups, tracked to WeCom's result."""

from __future__ import annotations

import time
from collections import Counter
from datetime import timedelta

import pytest
from django.utils import timezone

from crm.errors import ApplicationError
from crm.models import Contact, FollowRelation, Staff
from crm.models.contacts import ContactEvent
from crm.models.groups import CustomerGroup
from crm.models.staff import GroupHandoverItem, Handover, HandoverItem
from crm.services.channels import channel_create
from crm.services.handover import (
    handover_create,
    handover_plan,
    handover_poll,
    handover_report,
    handover_start,
    handover_submit,
)
from crm.services.staff import staff_sync
from crm.wecom.client import get_client
from tests.conftest import wait_for

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.worker]
DAY = 24 * 3600


def _customers_of(sim, userid: str, n: int, state: str) -> list[str]:
    channel_create(name=f"{userid} QR", state=state, staff_userids=[userid])
    eids = []
    for i in range(n):
        eid = sim.shopper(f"{userid}-customer-{i}")
        sim.scan(eid, state)
        eids.append(eid)
    wait_for(lambda: FollowRelation.objects.filter(staff__userid=userid).count() == n, timeout=60,
             message="contacts owned")
    return eids


def test_resigned_handover_round_robin_groups_and_results(staffed, celery_worker):
    sim = staffed
    eids = _customers_of(sim, "alice", 5, "alice-qr")
    FollowRelation.objects.filter(staff__userid="alice").update(remark="old note")
    get_client().remark("alice", eids[0], remark="prefers email", description="since 2019")
    chat_id = sim.post("groupchats", {"owner": "alice", "name": "Alice's fans"})["chat_id"]
    wait_for(lambda: CustomerGroup.objects.filter(chat_id=chat_id).exists(), timeout=30, message="group")
    sim.post("members/alice/resign")
    staff_sync()
    assert Staff.objects.get(userid="alice").status == Staff.Status.RESIGNED

    handover = handover_create(kind="resigned", handover_userid="alice", takeover_userids=["bob", "carol"])
    handover_start(handover.pk)  # autocommit: the task is queued at once and the worker runs it
    wait_for(lambda: Handover.objects.get(pk=handover.pk).status == Handover.Status.WAITING, timeout=60,
             message="submitted")
    items = list(handover.items.all())
    assert sorted(i.external_userid for i in items) == sorted(eids)
    assert Counter(i.takeover.userid for i in items) == {"bob": 3, "carol": 2}
    assert all(i.status == HandoverItem.Status.WAITING and i.errcode is None for i in items)
    group_item = handover.group_items.get()
    assert group_item.status == GroupHandoverItem.Status.DONE
    assert CustomerGroup.objects.get(chat_id=chat_id).owner.userid == "bob"

    assert handover_poll(handover.pk) == {"waiting": 5}
    sim.advance(DAY + 60)  # WeCom's 24 h wait
    counts = handover_poll(handover.pk)
    assert counts == {"done": 5}
    handover.refresh_from_db()
    assert handover.status == Handover.Status.FINISHED
    for item in handover.items.select_related("takeover"):
        follow = FollowRelation.objects.get(contact=item.contact, staff=item.takeover)
        assert follow.is_active
    # Nothing lost: the old relation and the history stay, notes travel with the customer.
    first = Contact.objects.get(external_userid=eids[0])
    assert FollowRelation.objects.filter(contact=first, staff__userid="alice").exists()
    new = FollowRelation.objects.get(contact=first, staff__userid__in=["bob", "carol"])
    assert new.remark == "prefers email"
    assert first.events.filter(kind=ContactEvent.Kind.TRANSFER).count() == 2  # submitted, done
    assert first.events.filter(kind=ContactEvent.Kind.ADDED).exists()
    report = handover_report(handover.pk)
    assert report["customers"] == {"done": 5} and report["groups"] == {"done": 1}
    assert report["per_takeover"] == {"bob": {"done": 3}, "carol": {"done": 2}}


def test_on_the_job_handover_with_refusal(staffed, celery_worker):
    sim = staffed
    eids = _customers_of(sim, "bob", 2, "bob-qr")
    handover = handover_create(kind="onjob", handover_userid="bob", takeover_userids=["carol"],
                               transfer_message="Carol will look after you now.", include_groups=False)
    handover_plan(handover.pk)
    handover_submit(handover.pk)
    refused, accepted = eids
    sim.post(f"shoppers/{refused}/refuse_transfer")  # transfer_fail callback -> worker re-reads the results
    wait_for(lambda: HandoverItem.objects.get(external_userid=refused).status == HandoverItem.Status.REFUSED,
             timeout=30, message="refusal recorded")
    sim.advance(DAY + 60)
    handover_poll(handover.pk)
    assert HandoverItem.objects.get(external_userid=accepted).status == HandoverItem.Status.DONE
    # The handover member's relation ends (DELETE_BY_TRANSFER callback); the refused customer stays with Bob.
    wait_for(lambda: FollowRelation.objects.get(contact__external_userid=accepted, staff__userid="bob")
             .deleted_by_staff_at is not None, timeout=30, message="old relation ended")
    assert FollowRelation.objects.get(contact__external_userid=accepted, staff__userid="carol").is_active
    assert FollowRelation.objects.get(contact__external_userid=refused, staff__userid="bob").is_active
    assert not FollowRelation.objects.filter(contact__external_userid=refused, staff__userid="carol").exists()
    assert handover_report(handover.pk)["customers"] == {"refused": 1, "done": 1}


def test_crash_after_wecom_accepted_a_batch_loses_nothing(staffed, celery_worker):
    sim = staffed
    eids = _customers_of(sim, "alice", 3, "alice-qr")
    sim.post("members/alice/resign")
    staff_sync()
    handover = handover_create(kind="resigned", handover_userid="alice", takeover_userids=["bob"],
                               include_groups=False)
    handover_plan(handover.pk)
    # A worker sent the batch to WeCom and died before writing down the answer: the items are still planned.
    get_client().resigned_transfer_customer("alice", "bob", eids[:2])
    assert handover.items.filter(status=HandoverItem.Status.PLANNED).count() == 3
    handover_plan(handover.pk)  # the re-run plans again: nothing duplicated
    assert handover.items.count() == 3
    handover_submit(handover.pk)
    assert handover.items.filter(status=HandoverItem.Status.WAITING).count() == 3  # 40129 = already transferring
    sim.advance(DAY + 60)
    assert handover_poll(handover.pk) == {"done": 3}


def test_handover_create_validates(staffed):
    with pytest.raises(ApplicationError) as info:
        handover_create(kind="resigned", handover_userid="alice", takeover_userids=["bob"])
    assert info.value.field == "handover_userid"  # alice has not resigned
    with pytest.raises(ApplicationError) as info:
        handover_create(kind="onjob", handover_userid="alice", takeover_userids=["alice"])
    assert info.value.field == "takeover_userids"
    with pytest.raises(ApplicationError) as info:
        handover_create(kind="onjob", handover_userid="alice", takeover_userids=["ghost"])
    assert info.value.field == "takeover_userids"
    assert not Handover.objects.exists()


def _drop_orphan(redis_client, task_name: str) -> int:
    """The broker would hand a dead worker's message to another worker after the visibility timeout (an hour);
    the stall sweeper resumes the work sooner, so the orphan is dropped here to keep the broker clean for the
    tests that follow."""
    dropped = 0
    for tag, raw in redis_client.hgetall("unacked").items():
        if task_name.encode() in raw:
            redis_client.hdel("unacked", tag)
            redis_client.zrem("unacked_index", tag)
            dropped += 1
    return dropped


def test_worker_killed_mid_submission_loses_nothing(staffed, _session_worker, worker_factory, redis_client):
    from crm.tasks.contacts import resume_stalled

    sim = staffed
    if _session_worker.proc.poll() is not None:
        _session_worker.start(redis_client)
    eids = _customers_of(sim, "alice", 3, "alice-qr")
    sim.post("members/alice/resign")
    staff_sync()
    handover = handover_create(kind="resigned", handover_userid="alice", takeover_userids=["bob"],
                               include_groups=False)

    _session_worker.stop()  # only the worker we are about to kill may take the task
    doomed = worker_factory()
    sim.post("faults", {"path": "externalcontact/resigned/transfer_customer", "kind": "slow", "delay_ms": 4000,
                        "count": 1})
    handover_start(handover.pk)
    wait_for(lambda: handover.items.count() == 3, timeout=30, message="planned")
    time.sleep(1.5)  # the worker is now waiting on WeCom's answer to the transfer batch
    doomed.kill()
    # WeCom still carries out the call it received: the transfers started, but our rows never heard of it.
    wait_for(lambda: len([r for r in get_client().iter_resigned_transfer_result("alice", "bob")
                          if r["status"] == 2]) == 3, timeout=15, message="WeCom started the transfers")
    assert handover.items.filter(status=HandoverItem.Status.PLANNED).count() == 3
    assert _drop_orphan(redis_client, "crm.tasks.contacts.handover_run") == 1

    _session_worker.start(redis_client)
    Handover.objects.filter(pk=handover.pk).update(updated_at=timezone.now() - timedelta(minutes=30))
    assert resume_stalled()["handovers"] == [handover.pk]  # the beat sweeper, run here
    wait_for(lambda: Handover.objects.get(pk=handover.pk).status == Handover.Status.WAITING, timeout=30,
             message="resumed and submitted")
    assert sorted(handover.items.values_list("status", "errcode")) == [("waiting", 40129)] * 3
    sim.advance(DAY + 60)
    assert handover_poll(handover.pk) == {"done": 3}
    assert sorted(FollowRelation.objects.filter(staff__userid="bob").values_list("contact__external_userid",
                                                                                  flat=True)) == sorted(eids)
