"""The console's draw pages: create through the service, open/close/reveal as detail actions, seed hidden until."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from crm.models import GroupDraw
from crm.services import draws as svc
from tests.crm.campaigns.conftest import make_contact, make_staff
from tests.crm.draws.test_draws import _group

pytestmark = pytest.mark.django_db


def test_console_creates_opens_closes_reveals(admin_client):
    staff = make_staff()
    members = [make_contact(staff) for _ in range(2)]
    group = _group(staff, members)
    now = timezone.localtime()
    fmt = "%Y-%m-%d %H:%M:%S"
    r = admin_client.post("/admin/crm/groupdraw/add/", {
        "name": "Console draw", "groups": [group.pk],
        "opens_at_0": (now - timedelta(minutes=1)).strftime("%Y-%m-%d"),
        "opens_at_1": (now - timedelta(minutes=1)).strftime("%H:%M:%S"),
        "opens_at": (now - timedelta(minutes=1)).strftime(fmt),
        "closes_at_0": (now + timedelta(hours=1)).strftime("%Y-%m-%d"),
        "closes_at_1": (now + timedelta(hours=1)).strftime("%H:%M:%S"),
        "closes_at": (now + timedelta(hours=1)).strftime(fmt),
        "prize_kind": "points", "prize_value": 20, "prize_winners": 1,
    })
    assert r.status_code == 302, r.content.decode()[:3000]
    draw = GroupDraw.objects.get(name="Console draw")
    assert draw.prizes.get().points == 20
    base = f"/admin/crm/groupdraw/{draw.pk}/change/"
    act = f"/admin/crm/groupdraw/{draw.pk}/"
    admin_client.get(f"{act}open-draw/")
    draw.refresh_from_db()
    assert draw.status == "open"
    page = admin_client.get(base).content.decode()
    assert draw.commitment in page and draw.seed_hex not in page
    svc.draw_enter(draw.pk, members[0].pk)
    admin_client.get(f"{act}close-draw/")
    admin_client.get(f"{act}reveal-draw/")
    draw.refresh_from_db()
    assert draw.status == "revealed"
    page = admin_client.get(base).content.decode()
    assert draw.seed_hex in page and members[0].external_userid in page
    r = admin_client.get(f"{act}reveal-draw/", follow=True)  # a second reveal is refused with its message
    assert draw.winners.count() == 1
    assert admin_client.get("/admin/crm/groupdraw/").status_code == 200


def test_console_retries_a_failed_prize_from_the_draw_page_and_the_winners_list(admin_client):
    from auditlog.models import LogEntry

    from crm.models import GroupDrawWinner
    from loyalty.models import Reward

    staff = make_staff()
    members = [make_contact(staff) for _ in range(2)]
    group = _group(staff, members)
    reward = Reward.objects.create(name="Mug", points_cost=100, stock=0)
    now = timezone.now()
    draw = svc.draw_create(name="Retry draw", group_ids=[group.pk], opens_at=now - timedelta(minutes=1),
                           closes_at=now + timedelta(hours=1),
                           prizes=[{"kind": "coupon", "reward_id": reward.pk, "winners": 2}])  # fmt: skip
    svc.draw_open(draw.pk)
    for c in members:
        svc.draw_enter(draw.pk, c.pk)
    svc.draw_close(draw.pk)
    svc.draw_reveal(draw.pk)
    svc.draw_fulfil(draw.pk)
    first, second = GroupDrawWinner.objects.filter(draw=draw).order_by("rank")
    assert {first.status, second.status} == {"failed"}

    Reward.objects.filter(pk=reward.pk).update(stock=1)  # enough for one of them
    page = admin_client.get(f"/admin/crm/groupdraw/{draw.pk}/retry-failed/", follow=True).content.decode()
    assert "fulfilled 1" in page
    assert sorted(GroupDrawWinner.objects.filter(draw=draw).values_list("status", flat=True)) == [
        "failed", "fulfilled"]
    still = GroupDrawWinner.objects.get(draw=draw, status="failed")

    Reward.objects.filter(pk=reward.pk).update(stock=1)
    r = admin_client.post("/admin/crm/groupdrawwinner/", {"action": "retry_prize", "_selected_action": [still.pk]},
                          follow=True)  # fmt: skip
    assert r.status_code == 200 and "fulfilled" in r.content.decode()
    assert set(GroupDrawWinner.objects.filter(draw=draw).values_list("status", flat=True)) == {"fulfilled"}
    entries = LogEntry.objects.filter(additional_data__action="retry_prize")
    assert entries.count() == 3 and {e.actor.username for e in entries} == {"admin"}
    page = admin_client.get(f"/admin/crm/groupdraw/{draw.pk}/retry-failed/", follow=True).content.decode()
    assert "Nothing failed" in page


def test_viewing_winners_is_not_retrying_them(client, django_user_model):
    from django.contrib.auth.models import Permission

    viewer = django_user_model.objects.create_user("viewer", password="pw", is_staff=True)
    viewer.user_permissions.add(Permission.objects.get(codename="view_groupdrawwinner"))
    client.force_login(viewer)
    page = client.get("/admin/crm/groupdrawwinner/")
    assert page.status_code == 200 and "retry_prize" not in page.content.decode()
