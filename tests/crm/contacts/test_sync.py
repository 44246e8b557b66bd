"""Full sync (cursor paging, resumable from its checkpoint) and the nightly reconciliation, against the simulator."""

from __future__ import annotations

import pytest

from crm.models import CallbackEvent, Contact, FollowRelation, Staff
from crm.models.contacts import ContactEvent, SyncRun
from crm.services.channels import channel_create
from crm.services.sync import reconcile, sync_run, sync_start
from crm.tasks.contacts import nightly_reconcile
from tests.conftest import wait_for
from tests.crm.contacts.conftest import settle

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.worker]


@pytest.fixture
def customers(staffed, celery_worker, redis_client):
    """Alice has 5 customers, Bob 2 (one shared with Alice) in WeCom; the CRM then forgets them all."""
    sim = staffed
    channel_create(name="A", state="qr-a", staff_userids=["alice"])
    channel_create(name="B", state="qr-b", staff_userids=["bob"])
    eids = [sim.shopper(f"c{i}") for i in range(6)]
    for eid in eids[:5]:
        sim.scan(eid, "qr-a")
    for eid in eids[4:]:
        sim.scan(eid, "qr-b")
    wait_for(lambda: FollowRelation.objects.count() == 7, timeout=60, message="callbacks applied")
    # Half adds make the relations; their full adds may still be on the way and would bring a contact back.
    wait_for(lambda: not CallbackEvent.objects.exclude(status="applied").exists(), timeout=30,
             message="every callback routed")  # fmt: skip
    settle(sim, redis_client)
    Contact.objects.all().delete()  # follows and timeline go with them: the CRM starts empty
    return eids


def test_full_sync_resumes_from_checkpoint(customers):
    run = sync_start(page_limit=2)
    sync_run(run.pk, max_pages=2)  # "crash" after two pages
    run.refresh_from_db()
    assert run.status == SyncRun.Status.RUNNING and run.pages == 2 and run.contacts_seen == 4
    assert run.checkpoint["cursor"]  # mid-way through the first 100 staff
    assert Contact.objects.count() == 4

    report = sync_run(run.pk)  # resume
    run.refresh_from_db()
    assert run.status == SyncRun.Status.FINISHED
    assert run.contacts_seen == 7 and run.pages == 4  # 7 relations, 2 per page, nothing read twice
    assert Contact.objects.count() == 6 and FollowRelation.objects.count() == 7
    assert report["counts"]["follows_created"] == 7 and report["counts"]["contacts_created"] == 6
    shared = Contact.objects.get(external_userid=customers[4])
    assert set(shared.follows.values_list("staff__userid", flat=True)) == {"alice", "bob"}
    assert shared.channel.state in ("qr-a", "qr-b")
    assert ContactEvent.objects.filter(kind="added").count() == 7  # one per relation, none duplicated
    # Running again changes nothing.
    again = sync_run(sync_start().pk)
    assert again["counts"].get("follows_created", 0) == 0 and again["counts"].get("follows_ended", 0) == 0


def test_look_ahead_fetches_each_page_once(customers, sim):
    """The next page is fetched while one is applied: never past where a run stops, never twice."""

    def batch_calls() -> int:
        return sim.get("stats")["calls"].get("externalcontact/batch/get_by_user", 0)

    run = sync_start(page_limit=2)
    sync_run(run.pk, max_pages=2)
    assert batch_calls() == 2 and Contact.objects.count() == 4
    sync_run(run.pk)
    run.refresh_from_db()
    assert run.status == SyncRun.Status.FINISHED and run.pages == 4
    assert batch_calls() == 4  # 7 relations, 2 per page: each page fetched once, the look-ahead always used
    assert FollowRelation.objects.count() == 7


def test_reconcile_repairs_drift_and_reports(customers):
    sync_run(sync_start().pk)
    alice = Staff.objects.get(userid="alice")
    drifted = FollowRelation.objects.filter(staff=alice).order_by("id")
    first, second = drifted[0], drifted[1]
    FollowRelation.objects.filter(pk=first.pk).update(remark="stale remark")
    FollowRelation.objects.filter(pk=second.pk).update(deleted_by_staff_at="2026-01-01T00:00:00Z")
    ghost = Contact.objects.create(external_userid="wmGHOST", name="Ghost")
    FollowRelation.objects.create(staff=alice, contact=ghost)  # WeCom has no such relation

    report = reconcile()
    counts = report["contacts"]["counts"]
    assert counts["follows_updated"] == 2 and counts["follows_ended"] == 1
    assert FollowRelation.objects.get(pk=first.pk).remark == ""
    assert FollowRelation.objects.get(pk=second.pk).is_active
    assert not FollowRelation.objects.get(contact=ghost).is_active
    assert ContactEvent.objects.filter(kind="sync_repair").count() == 2
    assert ghost.events.filter(kind="deleted_by_staff").exists()
    assert report["staff"]["resigned"] == 0
    run = SyncRun.objects.get(pk=report["run"])
    assert run.kind == "reconcile" and run.report["counts"]["follows_ended"] == 1


def test_nightly_reconcile_task_runs_on_the_worker(customers):
    result = nightly_reconcile.delay()
    wait_for(lambda: SyncRun.objects.filter(kind="reconcile", status="finished").exists(), timeout=60,
             message="nightly run finished")
    assert Contact.objects.count() == 6
    del result
