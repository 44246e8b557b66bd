"""The draw API and pages: staff create/open/close/reveal, a member enters on their signed link, anyone verifies."""

from __future__ import annotations

import time
from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.utils import timezone

from crm.api.draws import entry_url
from crm.services.roles import MARKETING, roles_ensure, user_role_set
from tests.crm.campaigns.conftest import make_contact, make_staff
from tests.crm.draws.test_draws import _group

pytestmark = pytest.mark.django_db


def _post(client, url, data=None):
    return client.post(url, data or {}, content_type="application/json")


def _path(url):
    return url.split("://", 1)[-1].split("/", 1)[-1].join(["/", ""])


def test_marketing_runs_a_draw_and_the_member_enters_and_verifies(client):
    roles_ensure()
    user = get_user_model().objects.create_user("mkt", password="x")
    user_role_set(user, MARKETING)
    client.force_login(user)
    staff = make_staff()
    members = [make_contact(staff) for _ in range(3)]
    group = _group(staff, members)
    now = timezone.now()
    body = {"name": "VIP draw", "group_ids": [group.pk], "opens_at": (now - timedelta(minutes=1)).isoformat(),
            "closes_at": (now + timedelta(hours=1)).isoformat(),
            "prizes": [{"kind": "points", "points": 10, "winners": 1}]}
    r = _post(client, "/api/draws/", body)
    assert r.status_code == 201, r.content
    draw_id = r.json()["id"]
    r = _post(client, f"/api/draws/{draw_id}/open/")
    assert r.status_code == 200 and len(r.json()["commitment"]) == 64 and r.json()["seed"] is None

    anon = client.__class__()
    url = _path(entry_url(draw_id, members[0].pk))
    page = anon.get(url)
    assert page.status_code == 200 and r.json()["commitment"] in page.content.decode()
    assert anon.post(url).status_code == 200
    assert anon.post(url + "?format=json").json()["entered"] is True  # a second tap shows the first entry
    forged = url.replace(url.split("/")[-2], url.split("/")[-2][:-3] + "xyz")
    refused = anon.post(forged + "?format=json")
    assert (refused.status_code, refused.json()["error"]["code"]) == (403, "bad_link")
    other_draw = _path(entry_url(draw_id + 1, members[0].pk)).replace(f"/{draw_id + 1}/", f"/{draw_id}/")
    assert anon.post(other_draw + "?format=json").json()["error"]["code"] == "bad_link"  # a token for another draw
    assert anon.get(f"/m/groupdraw/{draw_id}/verify/?format=json").status_code == 404  # not revealed yet

    assert _post(client, f"/api/draws/{draw_id}/close/").status_code == 200
    late = anon.post(_path(entry_url(draw_id, members[1].pk)) + "?format=json")
    assert (late.status_code, late.json()["error"]["code"]) == (400, "draw_closed")
    r = _post(client, f"/api/draws/{draw_id}/reveal/")
    assert r.status_code == 200 and r.json()["seed"]
    again = _post(client, f"/api/draws/{draw_id}/reveal/")
    assert (again.status_code, again.json()["error"]["code"]) == (409, "not_closed")
    assert _post(client, "/api/draws/999999/close/").json()["error"]["code"] == "unknown_draw"

    verify = anon.get(f"/m/groupdraw/{draw_id}/verify/?format=json").json()
    assert verify["matches"] and verify["winners"] == [members[0].external_userid]
    html = anon.get(f"/m/groupdraw/{draw_id}/verify/").content.decode()
    assert 'data-matches="yes"' in html and verify["seed"] in html
    entries = client.get(f"/api/draws/{draw_id}/entries/").json()
    assert [w["external_userid"] for w in entries["winners"]] == verify["winners"]


def test_bad_input_names_the_field(admin_client):
    r = _post(admin_client, "/api/draws/", {"name": "x", "group_ids": [], "opens_at": "2026-01-01T00:00:00Z",
                                            "closes_at": "2026-01-02T00:00:00Z", "prizes": []})
    assert r.status_code == 400 and r.json()["error"]["field"]
    assert admin_client.get("/api/draws/").status_code == 200


def test_a_customer_cannot_use_the_staff_api(client):
    assert client.get("/api/draws/").status_code in (401, 403)


def test_the_shared_link_asks_wechat_who_is_entering(client):
    from crm.services import draws as svc
    from crm.services import wechat_oauth
    from tests.crm.draws.test_draws import _draw

    staff = make_staff()
    member, outsider = make_contact(staff), make_contact(staff)
    draw = svc.draw_open(_draw(_group(staff, [member])).pk)
    unknown = client.get(f"/m/groupdraw/{draw.pk}/?format=json")
    assert (unknown.status_code, unknown.json()["error"]["code"]) == (401, "identify")
    assert client.get(f"/m/groupdraw/{draw.pk + 1}/?format=json").json()["error"]["code"] == "unknown_draw"

    session = client.session
    session[wechat_oauth.SESSION_KEY] = {"draw": {"contact_id": outsider.pk, "openid": "", "at": int(time.time())}}
    session.save()
    refused = client.post(f"/m/groupdraw/{draw.pk}/?format=json")
    assert (refused.status_code, refused.json()["error"]["code"]) == (403, "not_member")
    session[wechat_oauth.SESSION_KEY] = {"draw": {"contact_id": member.pk, "openid": "", "at": int(time.time())}}
    session.save()
    assert client.post(f"/m/groupdraw/{draw.pk}/?format=json").json()["entered"] is True


def test_marketing_creates_a_red_packet_prize_and_retries_a_failed_prize_over_the_api(client):
    from auditlog.models import LogEntry

    from crm.models import GroupDraw, GroupDrawWinner, RedPacketPool
    from crm.services import draws as svc
    from loyalty.models import Reward

    roles_ensure()
    user = get_user_model().objects.create_user("mkt", password="x")
    user_role_set(user, MARKETING)
    client.force_login(user)
    staff = make_staff()
    members = [make_contact(staff) for _ in range(2)]
    group = _group(staff, members)
    now = timezone.now()
    body = {"name": "Prize draw", "group_ids": [group.pk], "opens_at": (now - timedelta(minutes=1)).isoformat(),
            "closes_at": (now + timedelta(hours=1)).isoformat(),
            "prizes": [{"kind": "red_packet", "amount_fen": 50, "winners": 1}]}
    refused = _post(client, "/api/draws/", body)
    assert refused.status_code == 400 and "amount_fen" in str(refused.json()["error"]["field"])
    body["prizes"] = [{"kind": "red_packet", "amount_fen": 666, "winners": 2}]
    created = _post(client, "/api/draws/", body).json()
    pool = RedPacketPool.objects.get(draw_prize__draw_id=created["id"])
    assert created["prizes"][0]["pool"] == pool.pk and pool.budget_fen == 1332

    reward = Reward.objects.create(name="Mug", points_cost=100, stock=0)
    draw = svc.draw_create(name="Coupon draw", group_ids=[group.pk], opens_at=now - timedelta(minutes=1),
                           closes_at=now + timedelta(hours=1),
                           prizes=[{"kind": "coupon", "reward_id": reward.pk, "winners": 1}])  # fmt: skip
    svc.draw_open(draw.pk)
    svc.draw_enter(draw.pk, members[0].pk)
    GroupDraw.objects.filter(pk=draw.pk).update(closes_at=timezone.now())
    svc.draws_close_due()
    svc.draw_fulfil(draw.pk)
    assert GroupDrawWinner.objects.get(draw=draw).status == "failed"
    Reward.objects.filter(pk=reward.pk).update(stock=1)
    r = _post(client, f"/api/draws/{draw.pk}/retry/")
    assert r.status_code == 200 and r.json()["outcomes"] == {"fulfilled": 1}
    assert r.json()["winners"][0]["status"] == "fulfilled" and r.json()["winners"][0]["fulfilled_ref"]
    assert LogEntry.objects.get(additional_data__action="retry_prize").actor == user
    assert _post(client, f"/api/draws/{draw.pk}/retry/").json()["outcomes"] == {}
    assert _post(client, "/api/draws/999999/retry/").status_code == 404

    client.logout()
    assert _post(client, f"/api/draws/{draw.pk}/retry/").status_code in (401, 403)
    assert _post(client, f"/api/group-packets/{pool.pk}/repost").status_code in (401, 403)


def test_repost_of_a_group_packet_that_did_not_fail_is_a_409(client):
    from crm.services import group_packets as gp
    from crm.services import redpackets as rp

    roles_ensure()
    user = get_user_model().objects.create_user("mkt", password="x")
    user_role_set(user, MARKETING)
    client.force_login(user)
    staff = make_staff()
    group = _group(staff, [make_contact(staff)])
    pool = gp.group_packet_create(group_id=group.id, budget_fen=300, count=2)
    rp.redpacket_pool_activate(pool.id)
    r = _post(client, f"/api/group-packets/{pool.pk}/repost")  # never posted: nothing failed
    assert (r.status_code, r.json()["error"]["code"]) == (409, "not_failed")
    assert _post(client, "/api/group-packets/999999/repost").status_code == 404
