"""The mini-game gate on the shared pool link, in Chromium, in Chinese and in English: the shopper opens the one link
everyone got, WeChat OAuth (the simulator's) says who they are, the page shows the game, they play it (the page posts
the signed result with its CSRF token), the packet unlocks and they claim it."""

from __future__ import annotations

import time

import pytest
from playwright.sync_api import Error as PlaywrightError
from playwright.sync_api import expect

from crm.models import GameSession, RedPacketClaim, RedPacketPool
from crm.services import campaign_runs
from crm.services import campaigns as campaign_svc
from crm.services.customer_links import pool_link
from tests.browser.conftest import ACCEPT_LANGUAGE
from tests.browser.test_oauth_claim import _befriend
from tests.crm.campaigns.conftest import later, make_staff

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True), pytest.mark.timeout(150)]
TEXT = {
    "zh-hans": {"locked": "完成下面的任务", "gate": "玩下面的游戏", "start": "开始游戏"},
    "en": {"locked": "Complete the tasks below", "gate": "Play the game below", "start": "Start the game"},
}


def test_the_game_on_the_pool_page_unlocks_the_packet(chromium, live_stack, sim, lang, screenshot):
    staff = make_staff("alice")
    sim.member("alice")
    player = _befriend(sim, staff, "Lin")
    campaign = campaign_svc.campaign_create(
        name="Play for it", text="A game, then a packet",
        red_packet={"budget_fen": 600, "count": 2, "mode": "fixed", "expires_at": later(hours=1), "gate_game": True,
                    "act_name": "Play to unlock"},
    )  # fmt: skip
    campaign_runs.campaign_launch(campaign.id, enqueue=False)
    pool = RedPacketPool.objects.get(campaign=campaign)
    link = pool_link(pool.id)

    context = chromium.new_context(viewport={"width": 390, "height": 844},
                                   locale="zh-CN" if lang != "en" else "en-US",
                                   extra_http_headers={"Accept-Language": ACCEPT_LANGUAGE[lang]})  # fmt: skip
    page = context.new_page()
    page.set_default_timeout(10_000)
    try:
        page.goto(link)
        page.click(f'a.shopper[data-eid="{player.external_userid}"]')  # the simulator's WeChat: who is opening it
        expect(page.locator(f'.who[data-contact-id="{player.id}"]')).to_be_visible()
        expect(page.locator('[data-status="locked"]')).to_contain_text(TEXT[lang]["locked"])
        expect(page.locator('[data-gate="game"]')).to_contain_text(TEXT[lang]["gate"])
        assert page.locator("#game").get_attribute("data-start-url") == f"/m/pool/{pool.id}/game/start/"
        page.get_by_role("button", name=TEXT[lang]["start"]).click()
        expect(page.locator("#game")).to_have_attribute("data-state", "playing")
        screenshot(page, f"pool-page-game-{lang}")
        ends = time.monotonic() + 14
        while time.monotonic() < ends and page.locator('#game[data-state="playing"]').count():
            try:  # packets come and go: tap whichever is there
                page.locator("#game .packet").first.click(timeout=500)
            except PlaywrightError:
                pass
        claim = page.locator('form[method="post"] [type=submit]')
        expect(claim).to_be_visible(timeout=15000)  # the signed result was accepted, the page reloaded unlocked
        assert GameSession.objects.get(pool=pool, contact=player).finished_at is not None
        claim.click()
        expect(page.locator("[data-amount-fen]")).to_have_attribute("data-amount-fen", "300")
        screenshot(page, f"pool-page-game-claimed-{lang}")
    finally:
        context.close()
    assert RedPacketClaim.objects.get(pool=pool).contact_id == player.id
