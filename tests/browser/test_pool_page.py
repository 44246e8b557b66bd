"""The red-packet pool page in Chromium, in English and in Chinese: the reconciliation's figures and a balanced
pool; then a claim that drifted from Redis, and the red banner."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from crm.models import RedPacketClaim
from crm.services import redpackets as rp
from tests.crm.campaigns.conftest import later, make_contact, make_staff

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True), pytest.mark.timeout(90)]


def _term(page, key: str) -> int:
    return int(page.locator(f'[data-testid="pool-reconciliation"] [data-term="{key}"]').get_attribute("data-fen"))


def test_pool_page_reconciles_and_flags_drift(console_page, lang, live_url, screenshot):
    pool = rp.redpacket_pool_create(campaign_id=None, budget_fen=2000, count=10, mode="fixed",
                                    expires_at=later(hours=2))
    pool = rp.redpacket_pool_activate(pool.id)
    staff = make_staff()
    # Three claims written straight to the database (no payout queued), then Redis rebuilt from them.
    for status in ("paid", "paying", "received"):
        RedPacketClaim.objects.create(pool=pool, contact=make_contact(staff), amount_fen=200, status=status)
    rp.redpacket_state_ensure(pool.id, force=True)

    page = console_page(lang=lang)
    page.goto(f"{live_url}/admin/console/pools/{pool.pk}/")
    assert page.locator('[data-testid="pool-balanced"]').is_visible()
    assert page.locator('[data-testid="pool-unbalanced"]').count() == 0
    assert [_term(page, k) for k in ("budget_fen", "paid_fen", "pending_fen", "refunded_fen", "claimable_fen",
                                     "total_fen")] == [2000, 200, 400, 0, 1400, 2000]
    tiles = page.locator('[data-testid="pool-by-status"] [data-status]')
    assert tiles.evaluate_all("ts => ts.map(t => [t.dataset.status, t.dataset.count])") == [
        ["received", "1"], ["paying", "1"], ["paid", "1"], ["failed", "0"], ["expired", "0"]]
    assert page.locator('[data-testid="pool-claim-row"]').count() == 3
    screenshot(page, f"pool-page-{lang}")

    # Filter to the paid claims from their tile.
    page.click('[data-testid="pool-by-status"] [data-status="paid"]')
    page.wait_for_url("**status=paid**")
    assert page.locator('[data-testid="pool-claim-row"]').evaluate_all("rs => rs.map(r => r.dataset.status)") == [
        "paid"]

    RedPacketClaim.objects.filter(pool=pool, status="paid").update(amount_fen=250)  # drifted from Redis
    page.goto(f"{live_url}/admin/console/pools/{pool.pk}/")
    banner = page.locator('[data-testid="pool-unbalanced"]')
    assert banner.is_visible()
    # Red: the theme's red-600, whatever colour notation the browser reports it in.
    assert banner.evaluate("""b => {
        const ref = document.createElement("div");
        ref.style.backgroundColor = "var(--color-red-600)";
        document.body.appendChild(ref);
        return getComputedStyle(b).backgroundColor === getComputedStyle(ref).backgroundColor;
    }""")
    assert _term(page, "total_fen") == 2050
    screenshot(page, f"pool-page-unbalanced-{lang}")

    # The scheduled reconciliation finds it too: a red banner on every console page, linking to the pool.
    assert rp.redpacket_reconcile_watched()["unbalanced"] == [pool.pk]
    page.goto(f"{live_url}/admin/")
    alert = page.locator("[data-money-alert]")
    assert alert.count() == 1 and f"#{pool.pk}" in alert.inner_text()
    assert ("资金不平" if lang == "zh-hans" else "Money out of balance") in alert.inner_text()
    screenshot(page, f"money-banner-{lang}")
    alert.locator("a").click()
    page.wait_for_url(f"**/admin/console/pools/{pool.pk}/")
    RedPacketClaim.objects.filter(pool=pool, status="paid").update(amount_fen=200)
    rp.redpacket_reconcile_watched()
    page.goto(f"{live_url}/admin/")
    assert page.locator("[data-money-alert]").count() == 0


FISSION_TEXT = {"en": {"title": "Fission leaderboard", "unlocked": "Unlocked", "locked": "Locked"},
                "zh-hans": {"title": "裂变排行榜", "unlocked": "已解锁", "locked": "未解锁"}}  # fmt: skip


def test_fission_leaderboard_moves_live_on_the_pool_page(console_page, lang, live_stack, live_url, screenshot):
    from crm.services.fission import fission_invite, fission_record_add
    from tests.crm.campaigns.conftest import Sim

    text = FISSION_TEXT[lang]
    Sim(live_stack).member("iris")
    staff = make_staff("iris")
    pool = rp.redpacket_pool_create(campaign_id=None, budget_fen=600, count=2, mode="fixed",
                                    expires_at=later(hours=2), gate_friends=2)  # fmt: skip
    pool = rp.redpacket_pool_activate(pool.id)
    ann, bo = make_contact(staff, name="Ann"), make_contact(staff, name="Bo")
    ann_invite, bo_invite = fission_invite(pool.id, ann.id), fission_invite(pool.id, bo.id)
    fission_record_add(state=ann_invite.state, contact=make_contact(name="F1"))

    page = console_page(lang=lang)
    page.goto(f"{live_url}/admin/console/pools/{pool.pk}/")
    expect(page.locator("body")).to_contain_text(text["title"])
    rows = page.locator('[data-testid="fission-row"]')
    assert rows.evaluate_all("rs => rs.map(r => [r.dataset.contactId, r.dataset.friends, r.dataset.unlocked])") == [
        [str(ann.id), "1", "false"], [str(bo.id), "0", "false"]]
    expect(rows.first).to_contain_text(text["locked"])
    assert page.locator('[data-testid="pool-page"]').get_attribute("data-live") == "true"

    # Bo brings two friends and claims: the page, left open, re-ranks and shows the claim without a reload.
    for name in ("F2", "F3"):
        fission_record_add(state=bo_invite.state, contact=make_contact(name=name))
    assert rp.redpacket_claim(pool_id=pool.id, contact_id=bo.id).status == "claimed"
    expect(rows.first).to_have_attribute("data-contact-id", str(bo.id), timeout=15_000)
    expect(rows.first).to_have_attribute("data-unlocked", "true")
    expect(rows.first).to_contain_text(text["unlocked"])
    expect(page.locator('[data-testid="fission-totals"]')).to_have_attribute("data-unlocked", "1")
    expect(page.locator('[data-testid="pool-claim-row"]')).to_have_count(1)
    screenshot(page, f"pool-fission-leaderboard-{lang}")
