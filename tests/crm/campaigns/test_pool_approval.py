"""A red-packet pool over the approval threshold goes live only after a second admin approved it, recorded."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.contrib.auth.models import Group
from rest_framework.test import APIClient

from crm.errors import ApplicationError, Conflict
from crm.models import Campaign, CampaignRun, RedPacketPool
from crm.services import campaign_runs
from crm.services import campaigns as svc
from crm.services import redpackets as rp
from crm.services.roles import MARKETING, roles_ensure
from tests.crm.campaigns.conftest import later, make_contact, make_staff

pytestmark = pytest.mark.django_db


@pytest.fixture
def people(django_user_model):
    roles_ensure()
    first = django_user_model.objects.create_user("ann", password="pw", is_staff=True, is_superuser=True)
    second = django_user_model.objects.create_user("bo", password="pw", is_staff=True, is_superuser=True)
    marketer = django_user_model.objects.create_user("mia", password="pw", is_staff=True)
    marketer.groups.add(Group.objects.get(name=MARKETING))
    return first, second, marketer


def api(user) -> APIClient:
    client = APIClient()
    client.force_authenticate(user)
    return client


def test_a_big_pool_waits_for_a_second_admin(people, settings):
    settings.REDPACKET_APPROVAL_THRESHOLD_FEN = 100_000
    first, second, marketer = people
    make_contact(make_staff())
    body = {"name": "11.11 big", "text": "A red packet for you:", "segment": {},
            "red_packet": {"budget_fen": 200_000, "count": 1000, "mode": "lucky",
                           "expires_at": later(hours=3).isoformat()}}  # fmt: skip
    created = api(first).post("/api/campaigns/", body, format="json")
    assert created.status_code == 201, created.content
    pool = RedPacketPool.objects.get(campaign_id=created.json()["id"])
    assert pool.created_by == first and rp.redpacket_pool_needs_approval(pool)
    detail = api(first).get(f"/api/redpacket-pools/{pool.id}/").json()
    assert detail["needs_approval"] is True and detail["approved_by"] is None

    # Not launchable yet: a clear 409, nothing started.
    launch = api(first).post(f"/api/campaigns/{pool.campaign_id}/launch")
    assert launch.status_code == 409 and launch.json()["error"]["code"] == "approval_required"
    assert not CampaignRun.objects.filter(campaign_id=pool.campaign_id).exists()
    assert RedPacketPool.objects.get(id=pool.id).status == "draft"

    # Its creator may not approve it, nor may marketing; a second admin may.
    mine = api(first).post(f"/api/redpacket-pools/{pool.id}/approve")
    assert mine.status_code == 403 and mine.json()["error"]["code"] == "same_person"
    assert api(marketer).post(f"/api/redpacket-pools/{pool.id}/approve").status_code == 403
    approved = api(second).post(f"/api/redpacket-pools/{pool.id}/approve")
    assert approved.status_code == 200 and approved.json()["approved_by"] == second.pk
    assert approved.json()["needs_approval"] is False and approved.json()["approved_at"]

    # A changed budget needs approving again; the same one launches.
    rp.redpacket_pool_update(pool.id, budget_fen=300_000)
    assert rp.redpacket_pool_needs_approval(RedPacketPool.objects.get(id=pool.id))
    rp.redpacket_pool_approve(pool.id, approver=second)
    assert api(first).post(f"/api/campaigns/{pool.campaign_id}/launch").status_code in (200, 202)
    assert RedPacketPool.objects.get(id=pool.id).status == "active"


def test_a_small_pool_needs_no_approval_and_a_scheduled_big_one_waits(people, settings):
    settings.REDPACKET_APPROVAL_THRESHOLD_FEN = 100_000
    first, second, _ = people
    small = rp.redpacket_pool_create(campaign_id=None, budget_fen=100_000, count=10, expires_at=later(hours=2))
    assert not rp.redpacket_pool_needs_approval(small)
    assert rp.redpacket_pool_activate(small.id).status == "active"
    with pytest.raises(Conflict):
        rp.redpacket_pool_approve(small.id, approver=second)  # live: nothing to approve

    make_contact(make_staff())
    due = later(seconds=1)
    big = svc.campaign_create(name="big", text="Hi", segment={}, scheduled_at=due, actor=first,
                              red_packet={"budget_fen": 150_000, "count": 500, "expires_at": later(hours=3)})
    plain = svc.campaign_create(name="plain", text="Hi", segment={}, scheduled_at=due)
    started = campaign_runs.campaign_launch_due(now=due + timedelta(seconds=5))
    # The sweeper starts the plain campaign and leaves the unapproved one scheduled.
    assert started == [plain.id]
    assert Campaign.objects.get(id=big.id).status == Campaign.Status.SCHEDULED
    with pytest.raises(ApplicationError) as refused:
        rp.redpacket_pool_approve(big.red_packet_pool.id, approver=first)
    assert refused.value.code == "same_person"
