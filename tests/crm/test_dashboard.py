"""The console dashboard: its selectors count right (Shanghai days, each lost relation once), the rollups agree
with the live counts and are what the page reads, and /admin/ renders the charts' data for an admin."""

from __future__ import annotations

import json
import re
from datetime import UTC, date, datetime, timedelta

import pytest
from django.conf import settings
from django.utils import timezone

from crm.admin.dashboard import dashboard_callback
from crm.models import (
    CallbackEvent,
    Campaign,
    CampaignFunnelStat,
    CampaignRecipient,
    Channel,
    Contact,
    DailyContactStat,
    FollowRelation,
    MassMessage,
    RedPacketClaim,
    RedPacketPool,
    RedPacketRefund,
    Staff,
)
from crm.selectors import dashboard as sel
from crm.services import rollups
from crm.tasks.rollups import refresh_dashboard_rollups

pytestmark = pytest.mark.django_db

SH = sel.SHANGHAI
TODAY = date(2026, 3, 12)
NOW = datetime(2026, 3, 12, 15, 0, tzinfo=SH)


def sh(day: date, hour: int, minute: int = 0) -> datetime:
    return datetime(day.year, day.month, day.day, hour, minute, tzinfo=SH)


@pytest.fixture
def frozen(monkeypatch):
    """'Now' is 2026-03-12 15:00 in Shanghai for the selectors, services and auto_now fields."""
    monkeypatch.setattr(timezone, "now", lambda: NOW.astimezone(UTC))
    return NOW


@pytest.fixture
def world(frozen):
    """Two channels, two staff; relations added and lost around Shanghai midnights."""
    a = Channel.objects.create(name="Store A", state="store-a")
    b = Channel.objects.create(name="Store B", state="store-b")
    s1 = Staff.objects.create(userid="s1", name="S1")
    s2 = Staff.objects.create(userid="s2", name="S2")
    n = iter(range(1000))

    def follow(state, added, *, staff=s1, by_staff=None, by_customer=None):
        contact = Contact.objects.create(external_userid=f"wm{next(n)}")
        return FollowRelation.objects.create(staff=staff, contact=contact, state=state, added_at=added,
                                             deleted_by_staff_at=by_staff, deleted_by_customer_at=by_customer)

    d10, d11 = date(2026, 3, 10), date(2026, 3, 11)
    follow("store-a", sh(d10, 23, 59))  # 15:59 UTC on the 10th: Shanghai's 10th
    follow("store-a", sh(d11, 0, 1))  # 16:01 UTC on the 10th: Shanghai's 11th
    follow("store-b", sh(d11, 12), staff=s2)
    follow("", sh(d11, 13))  # no channel
    follow("gone-state", sh(TODAY, 9))  # a state no channel claims: counted as no channel
    follow("store-b", sh(TODAY, 10))
    # Losses: by staff on the 11th; by the customer today; by the customer on the 11th and by staff today
    # (one lost relation: counted once, on the 11th); an old relation lost outside the window.
    follow("store-a", sh(d10, 8), by_staff=sh(d11, 9))
    follow("store-b", sh(d10, 8), by_customer=sh(TODAY, 8))
    follow("store-a", sh(d10, 8), by_customer=sh(d11, 0, 30), by_staff=sh(TODAY, 11))
    follow("store-a", sh(date(2025, 1, 1), 8), by_staff=sh(date(2025, 2, 1), 8))
    return {"a": a, "b": b, "s1": s1, "s2": s2}


def test_follow_daily_live_buckets_shanghai_days_and_counts_each_loss_once(world):
    counts = sel.follow_daily_live(date(2026, 3, 10), TODAY)
    assert counts == {
        (date(2026, 3, 10), "store-a"): [3, 0],  # 23:59 plus the two lost ones added at 08:00
        (date(2026, 3, 10), "store-b"): [1, 0],
        (date(2026, 3, 11), "store-a"): [1, 2],
        (date(2026, 3, 11), "store-b"): [1, 0],
        (date(2026, 3, 11), ""): [1, 0],
        (TODAY, "gone-state"): [1, 0],
        (TODAY, "store-b"): [1, 1],
    }


def test_contacts_growth_per_channel_and_net(world):
    growth = sel.contacts_growth(30, TODAY)
    assert growth["days"][0] == TODAY - timedelta(days=29) and growth["days"][-1] == TODAY
    by_name = {c["name"]: c["adds"] for c in growth["channels"]}
    assert set(by_name) == {"Store A", "Store B", ""}
    assert by_name["Store A"][-3:] == [3, 1, 0]
    assert by_name["Store B"][-3:] == [1, 1, 1]
    assert by_name[""][-3:] == [0, 1, 1]  # the unclaimed state joins "no channel"
    assert growth["adds"][-3:] == [4, 3, 2]
    assert growth["deletes"][-3:] == [0, 2, 1]
    assert growth["net"][-3:] == [4, 1, 1]
    assert sum(growth["adds"][:-3]) == 0 and sum(growth["deletes"][:-3]) == 0


def test_rollup_agrees_with_live_and_is_what_closed_days_read(world):
    live = sel.contacts_growth(30, TODAY)
    result = refresh_dashboard_rollups()  # the beat task, run in-process
    assert result["day_rows"] >= 30
    # Every day of the window is counted (empty days get a marker row), today included.
    assert set(DailyContactStat.objects.values_list("day", flat=True)) == set(sel.window(30, TODAY))
    assert sel.contacts_growth(30, TODAY) == live
    # A change to a closed day is not seen until beat recounts that day; today is always live.
    FollowRelation.objects.create(staff=world["s1"], contact=Contact.objects.create(external_userid="late1"),
                                  state="store-a", added_at=sh(date(2026, 3, 5), 10))
    FollowRelation.objects.create(staff=world["s1"], contact=Contact.objects.create(external_userid="now1"),
                                  state="store-a", added_at=sh(TODAY, 14))
    growth = sel.contacts_growth(30, TODAY)
    assert growth["adds"][-1] == live["adds"][-1] + 1
    assert growth["adds"][-8] == 0
    rollups.contact_stats_refresh(date(2026, 3, 5), date(2026, 3, 5))
    assert sel.contacts_growth(30, TODAY)["adds"][-8] == 1
    # Refreshing twice gives the same rows (whole rows recomputed, nothing incremented).
    rollups.dashboard_rollups_refresh()
    before = list(DailyContactStat.objects.values_list("day", "state", "adds", "deletes"))
    rollups.dashboard_rollups_refresh()
    after = list(DailyContactStat.objects.values_list("day", "state", "adds", "deletes"))
    assert sorted(after) == sorted(before)


def test_missing_rollup_days_are_counted_live(world):
    rollups.contact_stats_refresh(date(2026, 3, 11), date(2026, 3, 11))  # only the 11th is rolled up
    DailyContactStat.objects.filter(day=date(2026, 3, 11), state="store-a").update(adds=99)
    growth = sel.contacts_growth(30, TODAY)
    assert growth["adds"][-2] == 99 + 1 + 1  # the rollup's (edited) figure is what the 11th shows
    assert growth["adds"][-3] == 4  # the 10th: not rolled up, counted live


def _campaign(name, launched, **fields):
    return Campaign.objects.create(name=name, text="hi", status=fields.pop("status", Campaign.Status.DONE),
                                   launched_at=launched, **fields)


@pytest.fixture
def campaigns(world):
    s1 = world["s1"]
    old = _campaign("Old", sh(date(2026, 3, 1), 20), finished_at=sh(date(2026, 3, 2), 20))
    new = _campaign("Spring sale", sh(date(2026, 3, 11), 20), status=Campaign.Status.RUNNING)
    _campaign("Draft", None, status=Campaign.Status.DRAFT)
    created = MassMessage.objects.create(campaign=new, sender=s1, batch_no=1, idempotency_key="k1",
                                         status=MassMessage.Status.CREATED)
    pending = MassMessage.objects.create(campaign=new, sender=s1, batch_no=2, idempotency_key="k2")
    contacts = [Contact.objects.create(external_userid=f"r{i}") for i in range(8)]
    statuses = [("delivered", created), ("delivered", created), ("delivered", created), ("pending", created),
                ("rejected", created), ("not_friend", created), ("pending", pending), ("no_sender", None)]
    for contact, (status, message) in zip(contacts, statuses, strict=True):
        CampaignRecipient.objects.create(campaign=new, contact=contact, external_userid=contact.external_userid,
                                         status=status, mass_message=message, sender=s1 if message else None)
    CampaignRecipient.objects.create(campaign=old, contact=contacts[0], external_userid="r0", status="delivered",
                                     mass_message=MassMessage.objects.create(
                                         campaign=old, sender=s1, batch_no=1, idempotency_key="k3",
                                         status=MassMessage.Status.DONE))
    pool = RedPacketPool.objects.create(campaign=new, budget_fen=10_000, count=10, status="active",
                                        expires_at=NOW + timedelta(days=1), activated_at=sh(date(2026, 3, 11), 20))
    RedPacketClaim.objects.create(pool=pool, contact=contacts[0], amount_fen=1500, status="paid", billno="b1")
    RedPacketClaim.objects.create(pool=pool, contact=contacts[1], amount_fen=700, status="paying", billno="b2")
    old_pool = RedPacketPool.objects.create(campaign=old, budget_fen=5_000, count=5, status="refunded",
                                            expires_at=sh(date(2026, 3, 3), 0), activated_at=sh(date(2026, 3, 1), 20))
    RedPacketClaim.objects.create(pool=old_pool, contact=contacts[0], amount_fen=1000, status="paid", billno="b3")
    RedPacketRefund.objects.create(pool=old_pool, amount_fen=4000, packets=4)
    RedPacketPool.objects.create(budget_fen=1000, count=1, expires_at=NOW, status="draft")
    return {"old": old, "new": new, "pool": pool, "old_pool": old_pool}


def test_campaign_funnel_live_and_rollup(campaigns):
    new, old = campaigns["new"], campaigns["old"]
    expected_new = {"planned": 8, "sent": 5, "delivered": 3, "claimed": 2}  # rejected and unsent rows not "sent"
    assert sel.campaign_funnel_live([new.id, old.id]) == {
        new.id: expected_new, old.id: {"planned": 1, "sent": 1, "delivered": 1, "claimed": 1}}
    funnels = sel.campaign_funnels()
    assert [f["name"] for f in funnels] == ["Spring sale", "Old"]  # launched only, newest first
    assert {k: funnels[0][k] for k in sel.FUNNEL_STEPS} == expected_new and funnels[0]["counted_at"] is None

    rollups.dashboard_rollups_refresh()
    assert set(CampaignFunnelStat.objects.values_list("campaign_id", flat=True)) == {new.id, old.id}
    CampaignRecipient.objects.filter(campaign=new, status="pending").update(status="delivered")
    stale = sel.campaign_funnels()[0]
    assert stale["delivered"] == 3 and stale["counted_at"] is not None  # the rollup, with its time
    rollups.dashboard_rollups_refresh()  # running: recounted every beat
    assert sel.campaign_funnels()[0]["delivered"] == 5
    # A campaign done long ago is not recounted each beat once it has a row.
    CampaignRecipient.objects.filter(campaign=old).update(status="not_friend")
    rollups.dashboard_rollups_refresh()
    assert CampaignFunnelStat.objects.get(campaign=old).delivered == 1


def test_redpacket_spend(campaigns):
    spend = sel.redpacket_spend()
    assert [p["id"] for p in spend] == [campaigns["pool"].id, campaigns["old_pool"].id]  # drafts left out
    new, old = spend
    assert (new["budget_fen"], new["paid_fen"], new["pending_fen"], new["refunded_fen"], new["claims"]) == (
        10_000, 1500, 700, 0, 2)
    assert (old["paid_fen"], old["refunded_fen"], old["name"]) == (1000, 4000, "Old")


def test_callback_backlog(frozen):
    def event(key, status, received):
        CallbackEvent.objects.create(dedupe_key=key, raw_body="", decrypted_xml="", status=status,
                                     received_at=received)

    assert sel.callback_backlog() == {"waiting": 0, "failed": 0, "oldest_received_at": None,
                                      "oldest_age_seconds": None}
    event("a", "applied", NOW - timedelta(hours=5))
    event("b", "received", NOW - timedelta(seconds=90))
    event("c", "received", NOW - timedelta(seconds=10))
    event("d", "failed", NOW - timedelta(hours=1))
    backlog = sel.callback_backlog()
    assert backlog["waiting"] == 2 and backlog["failed"] == 1 and backlog["oldest_age_seconds"] == 90


def test_system_health_reports_the_healthz_checks():
    health = sel.system_health()
    assert set(health["checks"]) == {"database", "redis", "worker"}
    assert health["checks"]["database"]["ok"] and health["checks"]["redis"]["ok"]
    assert health["ok"] == all(c["ok"] for c in health["checks"].values())


def test_beat_runs_the_refresh():
    entry = settings.CELERY_BEAT_SCHEDULE["dashboard-refresh-rollups"]
    assert entry["task"] == refresh_dashboard_rollups.name == "crm.tasks.rollups.refresh_dashboard_rollups"


def _chart_values(html: str) -> list[dict]:
    import html as html_lib

    return [json.loads(html_lib.unescape(v)) for v in re.findall(r'data-value="([^"]*)"', html)]


def test_callback_puts_the_panels_in_the_context(campaigns, rf, admin_user):
    request = rf.get("/admin/")
    request.user = admin_user
    context = dashboard_callback(request, {"title": "x"})
    data = context["dashboard"]
    assert context["title"] == "x" and "loyalty" not in data
    assert data["contacts"]["adds_today"] == 2 and data["contacts"]["net_total"] == 6
    adds = json.loads(data["contacts"]["adds_chart"])
    assert len(adds["labels"]) == 30 and adds["labels"][-1] == "03-12"
    assert {d["label"] for d in adds["datasets"]} == {"Store A", "Store B", "No channel"}
    assert [r["name"] for r in data["funnel"]["rows"]] == ["Spring sale", "Old"]
    assert data["spend"]["paid"] == 25.0 and data["spend"]["budget"] == 150.0


def test_admin_index_renders_the_crm_dashboard(campaigns, admin_client):
    with_setting = {**getattr(settings, "UNFOLD", {}), "DASHBOARD_CALLBACK": "crm.admin.dashboard.dashboard_callback"}
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(settings, "UNFOLD", with_setting, raising=False)
        response = admin_client.get("/admin/")
    assert response.status_code == 200
    html = response.content.decode()
    assert 'id="crm-dashboard"' in html
    charts = _chart_values(html)
    assert len(charts) == 4  # adds by channel, net growth, funnel, spend (no loyalty panels from this callback)
    assert charts[0]["datasets"][0]["label"] == "Store A" and sum(charts[0]["datasets"][0]["data"]) == 4
    assert [d["label"] for d in charts[1]["datasets"]] == ["Added", "Deleted", "Net growth"]
    assert charts[2]["labels"] == ["Old", "Spring sale"]
    assert f'data-campaign="{campaigns["new"].id}"' in html and "Tier distribution" not in html


def test_admin_index_without_a_callback_is_unfolds_default(admin_client):
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(settings, "UNFOLD", {**getattr(settings, "UNFOLD", {}), "DASHBOARD_CALLBACK": None},
                   raising=False)
        response = admin_client.get("/admin/")
    assert response.status_code == 200 and 'id="crm-dashboard"' not in response.content.decode()
