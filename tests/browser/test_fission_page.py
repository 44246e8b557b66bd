"""The customer's page of a fission-gated red packet on a phone, in Chinese (the default) and English: locked,
"1 of 2 friends", their invite QR; unlocked by the second friend, then claimed."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from crm.models import FissionInvite
from crm.services import redpackets as rp
from crm.services.contact_events import contact_add_from_callback
from crm.services.redpackets import claim_url
from tests.crm.campaigns.conftest import Sim, befriend, later, make_staff

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True), pytest.mark.timeout(120)]
TEXT = {"zh-hans": {"progress": "已邀请 1 / 2 位好友", "locked": "解锁红包"},
        "en": {"progress": "1 of 2 friends", "locked": "unlock your red packet"}}  # fmt: skip


def test_fission_progress_and_unlock_on_the_phone(chromium, lang, live_stack, live_url, screenshot):
    sim = Sim(live_stack)
    sim.member("hana")
    staff = make_staff("hana")
    inviter = befriend(sim, staff, "Inviter")
    pool = rp.redpacket_pool_create(campaign_id=None, budget_fen=600, count=2, mode="fixed",
                                    expires_at=later(hours=2), gate_friends=2, act_name="Bring 2 friends")  # fmt: skip
    rp.redpacket_pool_activate(pool.id)
    url = f"{live_url}/m/rp/{claim_url(pool.id, inviter.id).split('/m/rp/')[1]}"
    phone = chromium.new_context(viewport={"width": 390, "height": 844}, locale="zh-CN" if lang != "en" else "en-US",
                                 extra_http_headers={"Accept-Language": "en" if lang == "en" else "zh-CN"})  # fmt: skip
    page = phone.new_page()
    page.goto(url)
    expect(page.locator('[data-status="locked"]')).to_contain_text(TEXT[lang]["locked"])
    invite = FissionInvite.objects.get(pool=pool, inviter=inviter)

    def friend(name: str) -> None:
        eid = sim.shopper(name)
        sim.call("POST", f"shoppers/{eid}/scan_contact_way", config_id=invite.config_id)
        contact_add_from_callback(userid="hana", external_userid=eid, state=invite.state)

    friend("Friend 1")
    page.reload()
    expect(page.locator(".progress")).to_have_text(TEXT[lang]["progress"])
    expect(page.locator("img.invite-qr")).to_have_attribute("data-invite-state", invite.state)
    screenshot(page, f"fission-locked-{lang}")
    friend("Friend 2")
    page.reload()
    page.locator('form[method="post"] [type=submit]').click()
    expect(page.locator("[data-amount-fen]")).to_have_attribute("data-amount-fen", "300")
    screenshot(page, f"fission-claimed-{lang}")
    phone.close()
