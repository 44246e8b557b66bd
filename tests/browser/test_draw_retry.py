"""The console's retries, in English and in Chinese: a draw whose coupon prize failed (out of stock) is retried from
the draw's page once restocked, and a group packet whose post in the group failed (no owner to send from) is posted
again from its page after a handover gave the group an owner. Both through the services, audited."""

from __future__ import annotations

from datetime import timedelta

import pytest
from auditlog.models import LogEntry
from django.utils import timezone
from playwright.sync_api import expect

from crm.models import CustomerGroup, GroupDrawWinner, GroupPacketPost
from crm.services import draws as svc
from crm.services import group_packets as gp
from crm.services import redpackets as rp
from loyalty.models import Coupon, Reward
from tests.conftest import wait_for
from tests.crm.campaigns.conftest import make_contact, make_staff
from tests.crm.draws.test_draws import _group

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True), pytest.mark.timeout(120)]

TEXT = {
    "en": {"retry": "Retry failed prizes and announcements", "retried": "Retried: fulfilled 1",
           "fulfilled": "Fulfilled", "repost": "Post in the group again (failed post)", "sent": "sent"},
    "zh-hans": {"retry": "重试失败的奖品和公告", "retried": "已重试：fulfilled 1", "fulfilled": "已发放",
                "repost": "重新发到群里（发送失败时）", "sent": "sent"},
}  # fmt: skip


def test_console_retries_a_failed_prize_and_reposts_a_failed_group_post(console_page, lang, live_url, sim,
                                                                       celery_worker, screenshot):  # fmt: skip
    text = TEXT[lang]
    owner_id = f"rtowner{lang.replace('-', '')}"
    sim.member(owner_id)
    owner = make_staff(owner_id)
    member = make_contact(owner)
    group = _group(owner, [member], chat_id=sim.post("groupchats", {"owner": owner_id, "name": "VIP"})["chat_id"])
    reward = Reward.objects.create(name="Mug", points_cost=100, stock=0)
    now = timezone.now()
    draw = svc.draw_create(name=f"Retry {lang}", group_ids=[group.pk], opens_at=now - timedelta(minutes=1),
                           closes_at=now + timedelta(hours=1),
                           prizes=[{"kind": "coupon", "reward_id": reward.pk, "winners": 1}])  # fmt: skip
    svc.draw_open(draw.pk)
    svc.draw_enter(draw.pk, member.pk)
    svc.draw_close(draw.pk)
    svc.draw_reveal(draw.pk)  # the worker fulfils it (queued on commit): out of stock, failed
    winner = wait_for(lambda: GroupDrawWinner.objects.filter(draw=draw, status="failed").first(), timeout=30,
                      message="the prize failed")  # fmt: skip
    Reward.objects.filter(pk=reward.pk).update(stock=5)  # restocked

    page = console_page(lang=lang)
    page.goto(f"{live_url}/admin/crm/groupdraw/{draw.pk}/change/")
    screenshot(page, f"draw-retry-failed-{lang}")
    page.get_by_text(text["retry"]).first.click()
    expect(page.locator("body")).to_contain_text(text["retried"])
    expect(page.locator("body")).to_contain_text(text["fulfilled"])
    screenshot(page, f"draw-retry-done-{lang}")
    winner.refresh_from_db()
    assert winner.status == "fulfilled"
    assert Coupon.objects.filter(idempotency_key=winner.idempotency_key).count() == 1
    assert LogEntry.objects.get_for_object(winner).get().actor.username == "admin"

    # A group packet posted while its group had no owner: the post failed; a handover gave the group one.
    CustomerGroup.objects.filter(pk=group.pk).update(owner=None)
    pool = gp.group_packet_create(group_id=group.id, budget_fen=300, count=2)
    rp.redpacket_pool_activate(pool.id)
    assert gp.group_packet_post_send(pool.id) == "no sender"
    CustomerGroup.objects.filter(pk=group.pk).update(owner=owner)
    page.goto(f"{live_url}/admin/crm/grouppacket/{pool.id}/change/")
    page.get_by_text(text["repost"]).first.click()
    expect(page.locator("body")).to_contain_text(text["sent"])
    screenshot(page, f"group-packet-reposted-{lang}")
    post = GroupPacketPost.objects.get(pool=pool)
    assert post.status == "sent" and post.msgid and post.sender == owner_id
    assert LogEntry.objects.get_for_object(post).get().actor.username == "admin"
