"""A game-gated red packet on a phone, in Chinese (the default) and English: locked with "play the game", the
game played (its signed result accepted by the server), the packet unlocked, then claimed."""

from __future__ import annotations

import time

import pytest
from playwright.sync_api import Error as PlaywrightError
from playwright.sync_api import expect

from crm.models import GameSession
from crm.services import redpackets as rp
from crm.services.redpackets import claim_url
from tests.crm.campaigns.conftest import later, make_contact, make_staff

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True), pytest.mark.timeout(120)]
TEXT = {
    "zh-hans": {"locked": "完成下面的任务", "gate": "玩下面的游戏", "start": "开始游戏"},
    "en": {"locked": "Complete the tasks below", "gate": "Play the game below", "start": "Start the game"},
}


def test_game_played_unlocks_the_packet_then_claimed(chromium, lang, live_url, screenshot):
    player = make_contact(make_staff())
    pool = rp.redpacket_pool_create(campaign_id=None, budget_fen=600, count=2, mode="fixed",
                                    expires_at=later(hours=2), gate_game=True, act_name="Play to unlock")  # fmt: skip
    rp.redpacket_pool_activate(pool.id)
    url = f"{live_url}/m/rp/{claim_url(pool.id, player.id).split('/m/rp/')[1]}"
    phone = chromium.new_context(viewport={"width": 390, "height": 844}, locale="zh-CN" if lang != "en" else "en-US",
                                 extra_http_headers={"Accept-Language": "en" if lang == "en" else "zh-CN"})  # fmt: skip
    page = phone.new_page()
    page.goto(url)
    expect(page.locator('[data-status="locked"]')).to_contain_text(TEXT[lang]["locked"])
    expect(page.locator('[data-gate="game"]')).to_contain_text(TEXT[lang]["gate"])
    page.get_by_role("button", name=TEXT[lang]["start"]).click()
    expect(page.locator("#game")).to_have_attribute("data-state", "playing")
    screenshot(page, f"gated-game-{lang}")
    ends = time.monotonic() + 14
    while time.monotonic() < ends and page.locator('#game[data-state="playing"]').count():
        try:  # packets come and go: tap whichever is there
            page.locator("#game .packet").first.click(timeout=500)
        except PlaywrightError:
            pass
    # The page posts the signed result and reloads unlocked.
    claim = page.locator('form[method="post"] [type=submit]')
    expect(claim).to_be_visible(timeout=15000)
    assert GameSession.objects.get(pool=pool, contact=player).finished_at is not None
    claim.click()
    expect(page.locator("[data-amount-fen]")).to_have_attribute("data-amount-fen", "300")
    screenshot(page, f"gated-claimed-{lang}")
    phone.close()
