"""Admin: the campaign and red-packet screens load, search, and their actions call the services."""

from __future__ import annotations

import pytest

from crm.models import Campaign, RedPacketPool
from crm.services import campaign_runs
from crm.services import campaigns as svc
from tests.crm.campaigns.conftest import later, make_contact, make_staff

pytestmark = pytest.mark.django_db


def test_changelists_load_and_search(admin_client):
    svc.campaign_create(name="Findable", text="x", red_packet={"budget_fen": 1000, "count": 5,
                                                             "expires_at": later(hours=1)})
    for url in ["/admin/crm/campaign/?q=Findable", "/admin/crm/massmessage/", "/admin/crm/campaignrecipient/",
                "/admin/crm/redpacketpool/", "/admin/crm/redpacketclaim/?q=x", "/admin/crm/redpacketrefund/",
                "/admin/crm/luckydraw/"]:
        response = admin_client.get(url)
        assert response.status_code == 200, url
    assert "Findable" in admin_client.get("/admin/crm/campaign/?q=Findable").content.decode()


def test_launch_and_cancel_actions(admin_client):
    make_contact(make_staff())
    first = svc.campaign_create(name="a", text="x")
    second = svc.campaign_create(name="b", text="y", scheduled_at=later(hours=1))
    response = admin_client.post("/admin/crm/campaign/", {"action": "launch_now", "_selected_action": [first.id]})
    assert response.status_code == 302
    assert Campaign.objects.get(id=first.id).status == "running"
    admin_client.post("/admin/crm/campaign/", {"action": "cancel", "_selected_action": [second.id]})
    assert Campaign.objects.get(id=second.id).status == "cancelled"


def test_refund_action_reports_not_expired(admin_client):
    campaign = svc.campaign_create(name="r", text="x", red_packet={"budget_fen": 1000, "count": 5,
                                                                   "expires_at": later(hours=1)})
    campaign_runs.campaign_launch(campaign.id, enqueue=False)
    pool = RedPacketPool.objects.get(campaign=campaign)
    response = admin_client.post("/admin/crm/redpacketpool/", {"action": "refund_expired",
                                                               "_selected_action": [pool.id]}, follow=True)
    assert "not expired" in response.content.decode()
    assert RedPacketPool.objects.get(id=pool.id).status == "active"


def test_a_pools_page_summarises_its_split_instead_of_listing_it(admin_client):
    # A Singles' Day pool's split is 10^5-10^6 amounts: the page says what it is, in both languages.
    campaign = svc.campaign_create(name="s", text="x", red_packet={"budget_fen": 60_000, "count": 200, "min_fen": 100,
                                                                   "max_fen": 600, "expires_at": later(hours=1)})
    pool = RedPacketPool.objects.get(campaign=campaign)
    page = admin_client.get(f"/admin/crm/redpacketpool/{pool.id}/change/").content.decode()
    assert "Made at activation" in page
    campaign_runs.campaign_launch(campaign.id, enqueue=False)
    amounts = RedPacketPool.objects.defer(None).get(id=pool.id).amounts
    page = admin_client.get(f"/admin/crm/redpacketpool/{pool.id}/change/").content.decode()
    first = ", ".join(map(str, amounts[:10]))
    assert (f"200 packets of {min(amounts)} to {max(amounts)} fen, 60000 fen in all; the first: {first}") in page
    assert ", ".join(map(str, amounts[:11])) not in page
    page = admin_client.get(f"/admin/crm/redpacketpool/{pool.id}/change/", HTTP_ACCEPT_LANGUAGE="zh-hans")
    assert f"共 200 个红包，每个 {min(amounts)} 至 {max(amounts)} 分" in page.content.decode()
