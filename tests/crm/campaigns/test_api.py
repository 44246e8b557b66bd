"""Staff API: CRUD, schedule, cancel, stats, pools, reconciliation; bad input is a 4xx naming the field."""

from __future__ import annotations

import pytest

from crm.models import Campaign, CampaignRun, RedPacketPool
from tests.crm.campaigns.conftest import later, make_contact, make_staff

pytestmark = pytest.mark.django_db


def _post(client, url, data):
    return client.post(url, data, content_type="application/json")


def _field(response):
    return response.json()["error"]["field"]


def test_create_read_update_schedule_cancel(admin_client):
    body = {"name": "Double 11", "text": "Sale tonight", "segment": {}, "scheduled_at": later(hours=3).isoformat(),
            "red_packet": {"budget_fen": 5000, "count": 20, "expires_at": later(days=1).isoformat()}}
    response = _post(admin_client, "/api/campaigns/", body)
    assert response.status_code == 201, response.content
    data = response.json()
    assert data["status"] == "scheduled" and data["red_packet"]["budget_fen"] == 5000
    cid = data["id"]

    response = admin_client.patch(f"/api/campaigns/{cid}/", {"text": "Sale at 20:00"},
                                  content_type="application/json")
    assert response.status_code == 200 and response.json()["text"] == "Sale at 20:00"
    assert admin_client.get("/api/campaigns/?status=scheduled").json()[0]["id"] == cid
    assert admin_client.get("/api/campaigns/?search=double").json()[0]["id"] == cid

    response = _post(admin_client, f"/api/campaigns/{cid}/schedule", {"scheduled_at": later(hours=5).isoformat()})
    assert response.status_code == 200

    stats = admin_client.get(f"/api/campaigns/{cid}/stats").json()
    assert stats["recipients_total"] == 0 and stats["red_packet"]["budget_fen"] == 5000

    assert _post(admin_client, f"/api/campaigns/{cid}/cancel", {}).json()["status"] == "cancelled"
    response = _post(admin_client, f"/api/campaigns/{cid}/cancel", {})
    assert response.status_code == 409
    assert RedPacketPool.objects.get(campaign_id=cid).status == RedPacketPool.Status.CANCELLED


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"text": "x"}, "name"),
        ({"name": "x"}, "text"),
        ({"name": "x", "text": "x", "scheduled_at": "tomorrow"}, "scheduled_at"),
        ({"name": "x", "text": "x", "segment": {"tags": [12345]}}, "segment.tags"),
        ({"name": "x", "text": "x", "link_url": "not a url"}, "link_url"),
        ({"name": "x", "text": "x", "link_url": "https://example.com"}, "link_title"),
        ({"name": "x", "text": "x", "red_packet": {"count": 10, "expires_at": "2099-01-01T00:00:00Z"}},
         "red_packet.budget_fen"),
        ({"name": "x", "text": "x", "red_packet": {"budget_fen": 50, "count": 10,
                                                   "expires_at": "2099-01-01T00:00:00Z"}}, "red_packet.budget_fen"),
        ({"name": "x", "text": "x", "red_packet": {"budget_fen": 5000, "count": 10, "max_fen": 30000,
                                                   "expires_at": "2099-01-01T00:00:00Z"}}, "red_packet.max_fen"),
        ({"name": "x", "text": "x", "red_packet": {"budget_fen": 5000, "count": 10, "mode": "both",
                                                   "expires_at": "2099-01-01T00:00:00Z"}}, "red_packet.mode"),
        ({"name": "x", "text": "x" * 3800, "red_packet": {"budget_fen": 5000, "count": 10,
                                                          "expires_at": "2099-01-01T00:00:00Z"}}, "text"),
    ],
)
def test_bad_input_is_a_400_naming_the_field_and_writes_nothing(admin_client, body, field):
    response = _post(admin_client, "/api/campaigns/", body)
    assert response.status_code == 400, response.content
    assert _field(response) == field
    assert not Campaign.objects.exists() and not RedPacketPool.objects.exists()


def test_launch_via_api_and_stats(admin_client):
    staff = make_staff()
    for _ in range(3):
        make_contact(staff)
    cid = _post(admin_client, "/api/campaigns/", {"name": "now", "text": "hi"}).json()["id"]
    response = _post(admin_client, f"/api/campaigns/{cid}/launch", {})
    assert response.status_code == 200 and response.json()["campaign"]["status"] == "running"
    from crm.services import campaign_runs

    campaign_runs.run_plan(CampaignRun.objects.get(campaign_id=cid).id, enqueue=False)  # the pushes worker's part
    stats = admin_client.get(f"/api/campaigns/{cid}/stats").json()
    assert stats["recipients_total"] == 3 and stats["recipients"]["pending"] == 3
    assert stats["messages_total"] == 1
    # A running campaign can no longer be edited or deleted.
    response = admin_client.patch(f"/api/campaigns/{cid}/", {"text": "x"}, content_type="application/json")
    assert response.status_code == 409
    assert admin_client.delete(f"/api/campaigns/{cid}/").status_code == 409


def test_pool_endpoints_and_reconciliation(admin_client):
    cid = _post(admin_client, "/api/campaigns/", {"name": "p", "text": "hi"}).json()["id"]
    body = {"budget_fen": 3000, "count": 10, "mode": "fixed", "expires_at": later(hours=1).isoformat()}
    response = _post(admin_client, f"/api/campaigns/{cid}/red-packet", body)
    assert response.status_code == 201, response.content
    pool_id = response.json()["id"]
    assert _post(admin_client, f"/api/campaigns/{cid}/red-packet", body).status_code == 400  # one per campaign
    assert admin_client.get("/api/redpacket-pools/").json()[0]["id"] == pool_id
    report = admin_client.get(f"/api/redpacket-pools/{pool_id}/reconciliation").json()
    assert report["budget_fen"] == 3000 and report["claimable_fen"] == 3000 and report["balanced"]
    response = _post(admin_client, f"/api/redpacket-pools/{pool_id}/refund", {})
    assert response.status_code == 409 and _field(response) == "status"
    assert admin_client.get("/api/redpacket-pools/999999/reconciliation").status_code == 404


def test_lucky_draw_create_validates(admin_client):
    cid = _post(admin_client, "/api/campaigns/", {"name": "d", "text": "hi"}).json()["id"]
    response = _post(admin_client, f"/api/campaigns/{cid}/lucky-draw", {"prizes": [{"name": "Mug", "count": 0}]})
    assert response.status_code == 400 and _field(response) == "prizes[0].count"
    response = _post(admin_client, f"/api/campaigns/{cid}/lucky-draw", {"prizes": [{"name": "Mug", "count": 2}]})
    assert response.status_code == 201


def test_requires_marketing_staff(client, plain_staff_client):
    assert client.get("/api/campaigns/").status_code in (401, 403)
    assert plain_staff_client.get("/api/campaigns/").status_code == 403
    assert plain_staff_client.post("/api/campaigns/", {}).status_code == 403
