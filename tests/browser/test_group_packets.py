"""A group lucky packet, the main path in English and in Chinese: marketing creates it in the console and launches
it, members open it on their page (the third finds it all opened), and the group's board shows the split."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from crm.models import RedPacketClaim, RedPacketPool
from crm.services import group_packets as gp
from tests.crm.group_packets.test_group_packets import make_group

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True), pytest.mark.timeout(120)]

TEXT = {
    "en": {"launch": "Launch and post in the group", "open": "Open red packet", "got": "You got a red packet!",
           "exhausted": "All the red packets have been opened", "best": "Best luck"},
    "zh-hans": {"launch": "发布并发到群里", "open": "開", "got": "恭喜，你抢到了一个红包！", "exhausted": "红包派完了",
                "best": "手气最佳"},
}  # fmt: skip


def _path(url: str) -> str:
    return "/" + url.split("://", 1)[1].split("/", 1)[1]


def test_create_in_console_members_open_and_the_group_sees_the_split(console_page, lang, live_url, screenshot):
    text = TEXT[lang]
    group, members = make_group(3)
    page = console_page(lang=lang)
    page.goto(f"{live_url}/admin/crm/grouppacket/add/")
    page.select_option("#id_group", str(group.id))
    page.fill("#id_budget_fen", "500")
    page.fill("#id_count", "2")
    page.click('button[name="_save"]')
    pool = RedPacketPool.objects.get(group=group)
    assert (pool.budget_fen, pool.count, pool.status) == (500, 2, "draft")
    page.goto(f"{live_url}/admin/crm/grouppacket/{pool.id}/change/")
    page.get_by_text(text["launch"]).first.click()
    expect(page.locator("body")).to_contain_text(f"{pool.id}")
    assert RedPacketPool.objects.get(id=pool.id).status == "active"

    customer = page.context.new_page()
    for member in members[:2]:
        customer.goto(live_url + _path(gp.group_packet_member_url(pool.id, member)))
        customer.get_by_role("button", name=text["open"]).click()
        expect(customer.locator('[data-status="claimed"]')).to_have_text(text["got"])
    customer.goto(live_url + _path(gp.group_packet_member_url(pool.id, members[2])))
    expect(customer.locator('[data-status="exhausted"]')).to_contain_text(text["exhausted"])
    screenshot(customer, f"group-packet-exhausted-{lang}")

    customer.goto(live_url + _path(gp.board_url(pool.id)))
    rows = customer.locator("ul.claims li")
    expect(rows).to_have_count(2)
    expect(customer.locator("[data-best-luck]")).to_have_count(1)
    expect(customer.locator("[data-best-luck]")).to_contain_text(text["best"])
    expect(customer.locator(".summary")).to_have_attribute("data-remaining", "0")
    amounts = [int(rows.nth(i).get_attribute("data-amount-fen")) for i in range(2)]
    assert sum(amounts) == 500 == sum(RedPacketClaim.objects.filter(pool=pool).values_list("amount_fen", flat=True))
    assert re.search(r"Member 0.*Member 1", rows.all_inner_texts().__str__())
    screenshot(customer, f"group-packet-board-{lang}")

    # The console's screen shows the claims too.
    page.goto(f"{live_url}/admin/crm/grouppacket/{pool.id}/change/")
    expect(page.locator("[data-board-summary]")).to_have_attribute("data-remaining", "0")
