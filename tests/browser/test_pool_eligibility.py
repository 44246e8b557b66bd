"""A draft pool's "who may claim" chosen in the console (a saved segment), in English and in Chinese; a customer
outside it sees, on their phone, that this red packet is for other customers, and one inside claims it."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from crm.models import ContactTag, RedPacketClaim, RedPacketPool, Tag, TagGroup
from crm.services import redpackets as rp
from crm.services.redpackets import claim_url
from crm.services.saved_segments import segment_create
from tests.crm.campaigns.conftest import later, make_contact, make_staff

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True), pytest.mark.timeout(90)]
LABEL = {"en": "Who may claim", "zh-hans": "领取资格"}


def test_pool_eligibility_from_the_console_to_the_claim_page(console_page, chromium, lang, live_url, screenshot):
    staff = make_staff()
    vip_tag = Tag.objects.create(group=TagGroup.objects.create(name="Level"), name="VIP")
    vip, other = make_contact(staff), make_contact(staff)
    ContactTag.objects.create(contact=vip, tag=vip_tag)
    segment = segment_create(name=f"VIPs {lang}", definition={"field": "tags", "op": "any", "value": [vip_tag.pk]})
    pool = rp.redpacket_pool_create(campaign_id=None, budget_fen=600, count=2, mode="fixed",
                                    expires_at=later(hours=2))  # fmt: skip

    page = console_page(lang=lang)
    page.goto(f"{live_url}/admin/crm/redpacketpool/{pool.pk}/change/")
    expect(page.locator("body")).to_contain_text(LABEL[lang])
    page.locator("select[name=eligible_segment]").select_option(str(segment.pk))
    page.click('button[name="_save"]')
    page.wait_for_url("**/admin/crm/redpacketpool/")
    assert RedPacketPool.objects.get(pk=pool.pk).eligibility == {"field": "segment", "op": "in",
                                                                 "value": [segment.pk]}  # fmt: skip
    screenshot(page, f"pool-eligibility-{lang}")
    rp.redpacket_pool_activate(pool.pk)

    phone = chromium.new_context(viewport={"width": 390, "height": 844}, locale="zh-CN")
    shopper = phone.new_page()
    shopper.goto(f"{live_url}/m/rp/{claim_url(pool.pk, other.pk).split('/m/rp/')[1]}")
    expect(shopper.locator('[data-status="not_eligible"]')).to_contain_text("仅限特定客户")
    assert shopper.locator('form[method="post"]').count() == 0
    shopper.goto(f"{live_url}/m/rp/{claim_url(pool.pk, vip.pk).split('/m/rp/')[1]}")
    shopper.locator('form[method="post"] [type=submit]').click()
    expect(shopper.locator("[data-amount-fen]")).to_have_attribute("data-amount-fen", "300")
    phone.close()
    assert list(RedPacketClaim.objects.filter(pool=pool).values_list("contact_id", flat=True)) == [vip.pk]
