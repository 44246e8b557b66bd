"""The staff API (create, list, detail with claims, launch), the customer's open endpoint and pages, over HTTP."""

from __future__ import annotations

import re

import pytest
from django.contrib.auth import get_user_model
from rest_framework.test import APIClient

from crm.models import GroupPacketPost, RedPacketClaim, RedPacketPool
from crm.services import group_packets as gp
from crm.services import redpackets as rp
from tests.crm.campaigns.conftest import make_contact, make_staff
from tests.crm.group_packets.test_group_packets import make_group, packet

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def staff_api():
    user = get_user_model().objects.create_user("mkt", password="pw", is_staff=True, is_superuser=True)
    api = APIClient()
    api.force_authenticate(user)
    return api


def _token(url: str) -> str:
    return re.search(r"/m/gp/t/([^/]+)/", url).group(1)


def test_staff_create_list_detail_and_bad_input(staff_api):
    group, members = make_group(3)
    created = staff_api.post("/api/group-packets/", {"group": group.id, "budget_fen": 600, "count": 3},
                             format="json")
    assert created.status_code == 201, created.content
    body = created.json()
    assert body["group"] == group.id and body["status"] == "draft" and body["link"].endswith(f"/m/gp/{body['id']}/")
    bad = staff_api.post("/api/group-packets/", {"group": group.id, "budget_fen": 100, "count": 3}, format="json")
    assert bad.status_code == 400 and "budget_fen" in bad.content.decode()
    missing = staff_api.post("/api/group-packets/", {"group": 424242, "budget_fen": 600, "count": 3},
                             format="json")
    assert missing.status_code == 404 and "group" in missing.content.decode()
    assert RedPacketPool.objects.count() == 1
    # A campaign's pool is not a group packet.
    expires_at = RedPacketPool.objects.get().expires_at
    rp.redpacket_pool_create(campaign_id=None, budget_fen=500, count=5, expires_at=expires_at)
    listed = staff_api.get("/api/group-packets/").json()
    assert [p["id"] for p in listed] == [body["id"]]
    rp.redpacket_pool_activate(body["id"])
    gp.group_packet_open(pool_id=body["id"], contact_id=members[0])
    detail = staff_api.get(f"/api/group-packets/{body['id']}/").json()
    assert detail["board"]["opened"] == 1 and detail["board"]["claims"][0]["contact_id"] == members[0]
    assert detail["reconciliation"]["balanced"]


def test_staff_api_needs_a_permission():
    group, _ = make_group(0)
    user = get_user_model().objects.create_user("clerk", password="pw", is_staff=True)
    api = APIClient()
    api.force_authenticate(user)
    assert api.get("/api/group-packets/").status_code == 403
    assert api.post("/api/group-packets/", {"group": group.id, "budget_fen": 600, "count": 3},
                    format="json").status_code == 403
    assert not RedPacketPool.objects.exists()


def test_launch_posts_once_in_the_group_even_when_launched_twice(staff_api, settings):
    # No simulator here: the post fails at the transport, recorded on its one row, and is never tried twice.
    settings.CELERY_TASK_ALWAYS_EAGER = True
    group, _ = make_group(1)
    pool = gp.group_packet_create(group_id=group.id, budget_fen=300, count=3)
    for _ in range(2):
        assert staff_api.post(f"/api/group-packets/{pool.id}/launch").status_code == 200
    assert RedPacketPool.objects.get(id=pool.id).status == "active"
    assert GroupPacketPost.objects.filter(pool=pool).count() == 1
    assert gp.group_packet_post_send(pool.id) == "already posted"


def test_customer_open_endpoint_answers_reason_codes():
    group, members = make_group(3)
    pool = packet(group, budget=200, count=2)
    stranger = make_contact(make_staff()).id
    api = APIClient()

    def open_(cid):
        return api.post("/m/gp/open", {"token": _token(gp.group_packet_member_url(pool.id, cid))},
                        format="json")

    first = open_(members[0])
    assert first.status_code == 200 and first.json()["status"] == "claimed"
    assert first.json()["board"]["opened"] == 1
    assert (open_(members[0]).status_code, open_(members[0]).json()["error"]["code"]) == (409, "already_claimed")
    assert open_(stranger).json()["error"]["code"] == "not_member"
    assert open_(members[1]).status_code == 200
    late = open_(members[2])
    assert late.status_code == 409 and late.json()["error"]["code"] == "exhausted"
    forged = api.post("/m/gp/open", {"token": "x" + _token(gp.group_packet_member_url(pool.id, 1))},
                      format="json")
    assert forged.status_code == 403 and forged.json()["error"]["code"] == "bad_link"
    assert RedPacketClaim.objects.filter(pool=pool).count() == 2


def test_member_page_opens_and_board_page_shows_the_split(client):
    group, members = make_group(2)
    pool = packet(group, budget=300, count=2)
    url = gp.group_packet_member_url(pool.id, members[0]).split("://", 1)[1].split("/", 1)[1]
    page = client.get(f"/{url}")
    assert page.status_code == 200 and b'name="open"' in page.content
    opened = client.post(f"/{url}")
    assert b'data-status="claimed"' in opened.content
    gp.group_packet_open(pool_id=pool.id, contact_id=members[1])
    board_path = "/" + gp.board_url(pool.id).split("://", 1)[1].split("/", 1)[1]
    board = client.get(board_path)
    html = board.content.decode()
    assert board.status_code == 200 and html.count("data-best-luck") == 1 and 'data-remaining="0"' in html
    assert "Member 0" in html and "Member 1" in html
    assert client.get("/m/gp/board/forged/").status_code == 403


def test_the_endpoints_are_in_the_openapi_schema(staff_api):
    schema = staff_api.get("/api/schema/", HTTP_ACCEPT="application/json").json()
    for route in ("/api/group-packets/", "/api/group-packets/{pool_id}/", "/api/group-packets/{pool_id}/launch",
                  "/m/gp/open"):
        assert route in schema["paths"], route
