"""Planning a run: chunked equals one-shot, resumable after a failure, batches capped per sender, group targets,
quota, no sender, personal campaigns with one shared link."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from crm.models import (
    Campaign,
    CampaignGroupRecipient,
    CampaignRecipient,
    CampaignRun,
    CustomerGroup,
    FollowRelation,
    MassMessage,
    RedPacketPool,
    Staff,
)
from crm.services import campaign_runs
from crm.services import campaigns as svc
from crm.services.push_quota import window
from tests.crm.campaigns.conftest import later, make_contact, make_staff
from tests.crm.planning.conftest import bulk_contacts, plan_of

pytestmark = pytest.mark.django_db


def _run(campaign) -> CampaignRun:
    return campaign_runs.run_start(campaign.id, enqueue=False)


def _mixed_audience() -> list[Staff]:
    """Three active senders, a resigned one, contacts followed by one or two of them or nobody, some without
    consent: every way a recipient's sender is picked."""
    staff = [make_staff(f"s{i}") for i in range(3)]
    gone = make_staff("gone", status=Staff.Status.RESIGNED)
    ids = bulk_contacts(90, staff)
    # A third of them also added s2 later: the latest active follow wins, unless the segment names its staff.
    FollowRelation.objects.bulk_create([
        FollowRelation(contact_id=cid, staff=staff[2], added_at=timezone.now() + timedelta(minutes=1))
        for cid in ids[::3] if cid % 3 != 2
    ], ignore_conflicts=True)
    bulk_contacts(7, [gone])  # only a resigned member follows them: no_sender
    bulk_contacts(5)  # followed by nobody: no_sender
    bulk_contacts(4, staff, marketing=False)  # never agreed: not recipients at all
    return staff


@pytest.mark.parametrize("segment", [{}, {"staff": ["s0", "s1"]}])
def test_chunked_planning_equals_one_shot(settings, monkeypatch, segment):
    _mixed_audience()
    monkeypatch.setattr(campaign_runs, "BATCH_SIZE", 8)  # batches filled across chunks
    settings.CAMPAIGN_PLAN_CHUNK = 100_000
    whole = _run(svc.campaign_create(name="one shot", text="hi", segment=segment))
    settings.CAMPAIGN_PLAN_CHUNK = 7
    chunked = _run(svc.campaign_create(name="chunked", text="hi", segment=segment))

    one, many = plan_of(whole), plan_of(chunked)
    assert one["recipients"] and one["recipients"] == many["recipients"]
    assert list(one["messages"].values()) == list(many["messages"].values())
    assert all(len(c) <= 8 for c in many["messages"].values())
    assert whole.planned == chunked.planned == len(one["recipients"]) and whole.status == chunked.status == "sending"
    statuses = {s for _, _, s in one["recipients"]}
    assert statuses == ({"pending", "no_sender"} if not segment else {"pending"})
    if segment:  # the segment's staff are the senders, even where s2 was added later
        assert {s for _, s, _ in one["recipients"]} == set(Staff.objects.filter(userid__in=["s0", "s1"])
                                                           .values_list("id", flat=True))
    else:
        no_sender = [c for c, s, st in one["recipients"] if st == "no_sender"]
        assert len(no_sender) == 12 and all(s is None for c, s, st in one["recipients"] if st == "no_sender")
    assert MassMessage.objects.filter(run=chunked).exclude(idempotency_key__startswith=f"c{chunked.campaign_id}-r"
                                                                                       f"{chunked.id}-s").count() == 0


def test_latest_active_follow_is_the_sender():
    first, latest = make_staff("first"), make_staff("latest")
    contact = make_contact(first)
    FollowRelation.objects.create(staff=latest, contact=contact, added_at=later(minutes=5))
    deleted = make_contact(first)
    FollowRelation.objects.create(staff=latest, contact=deleted, added_at=later(minutes=5),
                                  deleted_by_staff_at=timezone.now())
    run = _run(svc.campaign_create(name="x", text="hi"))
    senders = dict(CampaignRecipient.objects.filter(run=run).values_list("contact_id", "sender__userid"))
    assert senders == {contact.id: "latest", deleted.id: "first"}


def test_planning_resumes_after_a_failure_mid_chunk_and_twice_plans_nothing_new(settings, monkeypatch):
    _mixed_audience()
    settings.CAMPAIGN_PLAN_CHUNK = 100_000
    reference = plan_of(_run(svc.campaign_create(name="ref", text="hi")))
    settings.CAMPAIGN_PLAN_CHUNK = 20
    campaign = svc.campaign_create(name="crashy", text="hi")
    real = campaign_runs._assign_batches
    calls = []

    def crash_on_third(*args, **kwargs):
        calls.append(1)
        written = real(*args, **kwargs)  # the chunk's rows are written, then the "worker dies" before the commit
        if len(calls) == 3:
            raise RuntimeError("killed")
        return written

    monkeypatch.setattr(campaign_runs, "_assign_batches", crash_on_third)
    with pytest.raises(RuntimeError):
        _run(campaign)
    run = CampaignRun.objects.get(campaign=campaign)
    assert run.status == "planning" and run.planned == 40
    assert CampaignRecipient.objects.filter(run=run).count() == 40  # nothing of the third chunk
    assert CampaignRecipient.objects.filter(run=run).order_by("-contact_id").values_list(
        "contact_id", flat=True).first() == run.plan_cursor
    assert not CampaignRecipient.objects.filter(run=run, status="pending", mass_message=None).exists()

    monkeypatch.setattr(campaign_runs, "_assign_batches", real)
    assert campaign_runs.run_plan_chunk(run.id, enqueue=False) is True  # the lost chunk, redone
    run = campaign_runs.run_plan(run.id, enqueue=False)
    assert run.status == "sending"
    assert plan_of(run)["recipients"] == reference["recipients"]
    assert list(plan_of(run)["messages"].values()) == list(reference["messages"].values())

    before = (CampaignRecipient.objects.count(), MassMessage.objects.count())
    assert campaign_runs.run_plan_chunk(run.id) is False  # planned already: a redelivered task does nothing
    assert campaign_runs.run_start(campaign.id, enqueue=False).id == run.id  # "send now" again: the same run
    assert campaign_runs.campaign_launch(campaign.id, enqueue=False) == list(
        MassMessage.objects.filter(run=run).order_by("id").values_list("id", flat=True))
    assert (CampaignRecipient.objects.count(), MassMessage.objects.count()) == before


def test_a_paused_or_cancelled_run_stops_planning_between_chunks(settings):
    staff = make_staff()
    bulk_contacts(50, [staff])
    settings.CAMPAIGN_PLAN_CHUNK = 10
    campaign = svc.campaign_create(name="p", text="hi")
    run = campaign_runs.run_start(campaign.id)  # queued (not run: no commit in this test)
    assert campaign_runs.run_plan_chunk(run.id, enqueue=False) is True
    CampaignRun.objects.filter(id=run.id).update(status=CampaignRun.Status.PAUSED)
    assert campaign_runs.run_plan_chunk(run.id, enqueue=False) is False
    assert CampaignRecipient.objects.filter(run=run).count() == 10
    CampaignRun.objects.filter(id=run.id).update(status=CampaignRun.Status.PLANNING)  # resumed
    Campaign.objects.filter(id=campaign.id).update(status=Campaign.Status.CANCELLED)
    assert campaign_runs.run_plan_chunk(run.id, enqueue=False) is False
    assert CampaignRecipient.objects.filter(run=run).count() == 10


def test_a_message_carries_at_most_10000_recipients(settings):
    alice, bob = make_staff("alice"), make_staff("bob")
    bulk_contacts(20_050, [alice])
    bulk_contacts(30, [bob])
    settings.CAMPAIGN_PLAN_CHUNK = 7_000  # the first batch is topped up across chunks
    run = _run(svc.campaign_create(name="big", text="hi"))
    sizes = sorted(MassMessage.objects.filter(run=run).values_list("sender__userid", "batch_no", "recipients_count"))
    assert sizes == [("alice", 1, 10_000), ("alice", 2, 10_000), ("alice", 3, 50), ("bob", 1, 30)]
    for m in MassMessage.objects.filter(run=run):
        assert m.recipients.count() == m.recipients_count
    assert run.planned == 20_080 and run.stats == {"pending": 20_080} and run.audience == 20_080


def test_one_off_runs_once_whoever_fires_it():
    staff = make_staff()
    make_contact(staff)
    when = timezone.now().replace(microsecond=0) - timedelta(seconds=1)
    campaign = svc.campaign_create(name="due", text="hi")
    Campaign.objects.filter(id=campaign.id).update(status=Campaign.Status.SCHEDULED, scheduled_at=when)
    assert campaign_runs.campaign_launch_due() == [campaign.id]
    assert campaign_runs.campaign_launch_due() == []  # running now
    run = campaign_runs.run_start(campaign.id, occurrence=when)  # beat's ClockedSchedule firing too
    assert CampaignRun.objects.filter(campaign=campaign).count() == 1 and run.occurrence == when


def test_over_quota_recipients_are_held_back_with_when_they_are_reachable(settings):
    settings.WECOM_MASS_QUOTA = "day1"
    staff = make_staff()
    fresh, reached = make_contact(staff), make_contact(staff)
    first = _run(svc.campaign_create(name="morning", text="a", segment={}))
    # Only `reached` got the morning message (fresh's recipient did not count: it was cancelled).
    CampaignRecipient.objects.filter(run=first, contact=fresh).update(status="cancelled")
    CampaignRecipient.objects.filter(run=first, contact=reached).update(status="delivered")
    second = _run(svc.campaign_create(name="evening", text="b"))
    rows = {r.contact_id: r for r in CampaignRecipient.objects.filter(run=second)}
    expected = window(second.started_at)
    assert rows[reached.id].status == "over_quota" and rows[reached.id].reachable_at == expected.reachable_at
    assert rows[reached.id].mass_message_id is None and rows[reached.id].quota_day is None
    assert rows[fresh.id].status == "pending" and rows[fresh.id].reachable_at is None
    assert rows[fresh.id].quota_day == expected.start_day and rows[fresh.id].mass_message.recipients_count == 1
    assert second.stats == {"over_quota": 1, "pending": 1}


def test_nobody_reachable_finishes_the_run_and_the_campaign():
    make_contact()  # followed by nobody
    campaign = svc.campaign_create(name="nobody", text="hi")
    assert campaign_runs.campaign_launch(campaign.id, enqueue=False) == []
    run = CampaignRun.objects.get(campaign=campaign)
    assert run.status == "done" and run.stats == {"no_sender": 1} and not MassMessage.objects.filter(run=run).exists()
    assert Campaign.objects.get(id=campaign.id).status == Campaign.Status.DONE


def test_group_targets_are_sent_by_each_owner_in_batches(monkeypatch):
    monkeypatch.setattr(campaign_runs, "GROUP_BATCH_SIZE", 2)
    alice, bob = make_staff("alice"), make_staff("bob")
    gone = make_staff("gone", status=Staff.Status.RESIGNED)
    chats = {}
    for name, owner, vip in [("a1", alice, True), ("a2", alice, True), ("a3", alice, False), ("b1", bob, True),
                             ("g1", gone, True), ("n1", None, True)]:
        chats[name] = CustomerGroup.objects.create(chat_id=f"wr{name}", name=name, owner=owner, is_vip=vip)
    CustomerGroup.objects.create(chat_id="wrdead", owner=alice, is_vip=True, status=CustomerGroup.Status.DISMISSED)

    chosen = Campaign.objects.create(name="chosen", text="hi", target=Campaign.Target.GROUPS,
                                     group_chat_ids=["wra1", "wra2", "wra3", "wrb1", "wrg1", "wrdead"])
    run = _run(chosen)
    rows = dict(CampaignGroupRecipient.objects.filter(run=run).values_list("chat_id", "status"))
    assert rows == {"wra1": "pending", "wra2": "pending", "wra3": "pending", "wrb1": "pending",
                    "wrg1": "no_sender"}
    messages = {(m.sender.userid, m.batch_no): sorted(m.group_recipients.values_list("chat_id", flat=True))
                for m in MassMessage.objects.filter(run=run)}
    assert messages == {("alice", 1): ["wra1", "wra2"], ("alice", 2): ["wra3"], ("bob", 1): ["wrb1"]}
    assert set(MassMessage.objects.filter(run=run).values_list("chat_type", flat=True)) == {"group"}
    assert not CampaignRecipient.objects.filter(run=run).exists()

    vip = Campaign.objects.create(name="vip", text="hi", target=Campaign.Target.VIP_GROUPS)
    run = _run(vip)
    rows = dict(CampaignGroupRecipient.objects.filter(run=run).values_list("chat_id", "status"))
    assert rows == {"wra1": "pending", "wra2": "pending", "wrb1": "pending", "wrg1": "no_sender",
                    "wrn1": "no_sender"}
    assert run.status == "sending" and run.plan_cursor == chats["n1"].id


def test_personal_campaign_sends_one_link_batched_per_sender():
    alice, bob = make_staff("alice"), make_staff("bob")
    bulk_contacts(5, [alice, bob])
    campaign = svc.campaign_create(
        name="rp", text="Lucky money!",
        red_packet={"budget_fen": 1000, "count": 5, "mode": "lucky", "expires_at": later(hours=2)},
    )
    run = _run(campaign)
    messages = list(MassMessage.objects.filter(run=run).select_related("sender"))
    assert sorted((m.sender.userid, m.recipients_count) for m in messages) == [("alice", 3), ("bob", 2)]
    texts = {m.text for m in messages}
    assert len(texts) == 1  # the same text, the same link, for everyone: one confirmation per sender per batch
    [text] = texts
    lines = text.split("\n")
    assert lines[0] == "Lucky money!" and len(lines) == 2 and "/m/" in lines[1]
    assert lines[1] == campaign_runs._shared_link("pool", RedPacketPool.objects.get(campaign=campaign).id)


def test_personal_campaign_with_signed_links_sends_one_task_per_recipient(settings):
    settings.CUSTOMER_LINKS = "signed"
    settings.CAMPAIGN_PLAN_CHUNK = 2
    alice = make_staff("alice")
    bulk_contacts(5, [alice])
    campaign = svc.campaign_create(name="draw", text="Try your luck")
    svc.lucky_draw_create(campaign_id=campaign.id, prizes=[{"name": "Mug", "count": 1}])
    run = _run(campaign)
    messages = list(MassMessage.objects.filter(run=run).order_by("batch_no"))
    assert [m.batch_no for m in messages] == [1, 2, 3, 4, 5] and {m.recipients_count for m in messages} == {1}
    assert len({m.text for m in messages}) == 5
    for m in messages:
        assert m.recipients.get().mass_message_id == m.id
