"""A group lucky draw end to end, in English and in Chinese: marketing creates and opens it in the console, a member
enters on their page, marketing closes and reveals it, and the public verify page shows the winners match."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from crm.api.draws import entry_url
from crm.models import GroupDraw
from tests.crm.campaigns.conftest import make_contact, make_staff
from tests.crm.draws.test_draws import _group

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True), pytest.mark.timeout(120)]

TEXT = {
    "en": {"open": "Open (publish the commitment)", "close": "Close entries",
           "reveal": "Reveal the seed and draw winners", "enter": "Enter the draw", "entered": "You are in the draw",
           "matches": "matches"},
    "zh-hans": {"open": "开放（公布承诺值）", "close": "截止报名", "reveal": "公布种子并抽取中奖者",
                "enter": "参与抽奖", "entered": "您已参与抽奖", "matches": "一致"},
}  # fmt: skip


def test_console_draw_member_enters_reveal_verifies(console_page, lang, live_url, screenshot):
    text = TEXT[lang]
    staff = make_staff()
    member = make_contact(staff)
    group = _group(staff, [member], chat_id=f"wrdraw-{lang}")
    now = timezone.localtime()
    opens, closes = now - timedelta(minutes=5), now + timedelta(hours=2)

    page = console_page(lang=lang)
    page.goto(f"{live_url}/admin/crm/groupdraw/add/")
    page.fill("#id_name", f"VIP draw {lang}")
    page.select_option("#id_groups", [str(group.pk)])
    page.fill("#id_opens_at_0", opens.strftime("%Y-%m-%d"))
    page.fill("#id_opens_at_1", opens.strftime("%H:%M:%S"))
    page.fill("#id_closes_at_0", closes.strftime("%Y-%m-%d"))
    page.fill("#id_closes_at_1", closes.strftime("%H:%M:%S"))
    page.select_option("#id_prize_kind", "points")
    page.fill("#id_prize_value", "30")
    page.fill("#id_prize_winners", "1")
    page.click('button[name="_continue"], input[name="_continue"]')
    draw = GroupDraw.objects.get(name=f"VIP draw {lang}")
    page.goto(f"{live_url}/admin/crm/groupdraw/{draw.pk}/change/")
    page.get_by_text(text["open"]).first.click()
    draw.refresh_from_db()
    expect(page.locator("body")).to_contain_text(draw.commitment)

    customer = page.context.browser.new_context(locale="zh-CN" if lang == "zh-hans" else "en-US",
                                                extra_http_headers={"Accept-Language": lang})
    member_page = customer.new_page()
    member_page.goto(f"{live_url}/{entry_url(draw.pk, member.pk).split('/', 3)[3]}")  # the path of the link
    expect(member_page.locator("[data-commitment]")).to_have_text(draw.commitment)
    member_page.get_by_text(text["enter"]).click()
    expect(member_page.locator("[data-status=entered]")).to_contain_text(text["entered"])
    screenshot(member_page, f"draw-entered-{lang}")

    page.goto(f"{live_url}/admin/crm/groupdraw/{draw.pk}/change/")
    page.get_by_text(text["close"]).first.click()
    page.get_by_text(text["reveal"]).first.click()
    draw.refresh_from_db()
    assert draw.status == "revealed"

    member_page.goto(f"{live_url}/m/groupdraw/{draw.pk}/verify/")
    expect(member_page.locator("[data-seed]")).to_have_text(draw.seed_hex)
    expect(member_page.locator("[data-matches=yes]")).to_contain_text(text["matches"])
    expect(member_page.locator("[data-recomputed]")).to_have_text(member.external_userid)
    screenshot(member_page, f"draw-verified-{lang}")
    customer.close()
