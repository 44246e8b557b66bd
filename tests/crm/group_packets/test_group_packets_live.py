"""A group packet end to end against the simulator: posted once in the WeCom group (add_msg_template, chat_type
group), opened by members, each paid once through the pay API by the worker; the books balance."""

from __future__ import annotations

import re

import pytest
from django.utils import timezone

from crm.errors import ApplicationError
from crm.models import CustomerGroup, GroupMember, GroupPacketPost, RedPacketClaim
from crm.services import group_packets as gp
from crm.services import redpackets as rp
from tests.conftest import wait_for
from tests.crm.campaigns.conftest import befriend, make_staff, sim  # noqa: F401  (fixture)

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.worker]


def test_posted_once_in_the_group_opened_by_members_and_each_paid_once(sim, celery_worker):  # noqa: F811
    sim.member("gpowner")
    owner = make_staff("gpowner")
    chat_id = sim.call("POST", "groupchats", owner="gpowner", name="VIP 11.11")["chat_id"]
    group = CustomerGroup.objects.create(chat_id=chat_id, name="VIP 11.11", owner=owner, is_vip=True)
    members = [befriend(sim, owner, f"gp{i}") for i in range(3)]
    for contact in members:
        GroupMember.objects.create(group=group, contact=contact, member_id=contact.external_userid,
                                   name=contact.name, joined_at=timezone.now())
    pool = gp.group_packet_create(group_id=group.id, budget_fen=500, count=2)

    gp.group_packet_launch(pool.id)
    post = wait_for(lambda: GroupPacketPost.objects.filter(pool=pool, status="sent").first(), timeout=30,
                    message="posted in the group")
    assert post.msgid and post.sender == "gpowner"
    assert gp.group_packet_post_send(pool.id) == "already posted"  # a retry never posts twice

    # The first member opens the link posted in the group in their WeChat browser (identified by WeChat OAuth).
    link = gp.group_packet_link(pool.id)
    eid = members[0].external_userid
    page = sim.call("POST", f"shoppers/{eid}/open_link", url=link)
    assert page["status"] == 200 and 'name="open"' in page["body"], page["body"][:500]
    opened = sim.call("POST", f"shoppers/{eid}/open_link", url=link, method="POST", data={"open": "1"})
    assert 'data-status="claimed"' in opened["body"], opened["body"][:500]
    got = [int(re.search(r'data-amount-fen="(\d+)"', opened["body"]).group(1))]
    got.append(gp.group_packet_open(pool_id=pool.id, contact_id=members[1].id).amount_fen)
    with pytest.raises(ApplicationError) as late:
        gp.group_packet_open(pool_id=pool.id, contact_id=members[2].id)
    assert late.value.code == "exhausted"

    wait_for(lambda: RedPacketClaim.objects.filter(pool=pool, status="paid").count() == 2, timeout=45,
             message="both paid")
    packs = sim.call("GET", "pay/redpacks")["redpacks"]
    billnos = set(RedPacketClaim.objects.filter(pool=pool).values_list("billno", flat=True))
    mine = [p for p in packs if p["mch_billno"] in billnos]
    assert sorted(p["total_amount"] for p in mine) == sorted(got) and sum(got) == 500
    report = rp.redpacket_reconcile(pool.id)
    assert report["balanced"] and report["paid_fen"] == 500 and report["claimable_fen"] == 0
