"""A second admin approves a big red-packet pool from the console's pool list, in English and in Chinese; its
creator cannot."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from crm.models import RedPacketPool
from crm.services import redpackets as rp
from tests.crm.campaigns.conftest import later

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True), pytest.mark.timeout(90)]

TEXT = {
    "en": {"waiting": "Awaiting a second admin's approval", "action": "Approve (second admin)",
           "same": "A second admin must approve", "approved": "Approved by", "queue": "Approvals"},
    "zh-hans": {"waiting": "等待另一位管理员审批", "action": "审批（第二位管理员）",
                "same": "须由另一位管理员审批", "approved": "审批人", "queue": "待审批"},
}  # fmt: skip


def test_a_second_admin_approves_a_big_pool(console_page, console_user, lang, live_url, screenshot, settings):
    text = TEXT[lang]
    settings.REDPACKET_APPROVAL_THRESHOLD_FEN = 100_000
    creator, second = console_user(f"ann-{lang}"), console_user(f"bo-{lang}")
    pool = rp.redpacket_pool_create(campaign_id=None, budget_fen=500_000, count=2000, expires_at=later(hours=3),
                                    created_by=creator)  # fmt: skip

    def approve_from_the_list(page, *, go: bool = True) -> None:
        if go:
            page.goto(f"{live_url}/admin/crm/redpacketpool/")
        row = page.locator("#result_list tbody tr").first
        row.locator("input.action-select").check()
        page.locator('select[name="action"]').select_option(label=text["action"])
        page.click('button[name="index"]')

    page = console_page(creator, lang=lang)
    page.goto(f"{live_url}/admin/crm/redpacketpool/")
    expect(page.locator("#result_list tbody tr").first).to_contain_text(text["waiting"])
    approve_from_the_list(page)
    expect(page.locator("body")).to_contain_text(text["same"])
    assert RedPacketPool.objects.get(id=pool.id).approved_by is None

    # The second admin finds it in the approvals queue (the sidebar's Approvals: the pool list, awaiting only).
    small = rp.redpacket_pool_create(campaign_id=None, budget_fen=50_000, count=100, expires_at=later(hours=3))
    page = console_page(second, lang=lang)
    queue = page.locator('a[href$="/admin/crm/redpacketpool/?approval=awaiting"]').first
    expect(queue).to_contain_text(text["queue"])
    queue.click()
    page.wait_for_url("**approval=awaiting**")
    rows = page.locator("#result_list tbody tr")
    expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text(text["waiting"])
    screenshot(page, f"pool-approvals-queue-{lang}")
    approve_from_the_list(page, go=False)
    page.goto(f"{live_url}/admin/crm/redpacketpool/?approval=approved")
    expect(page.locator("#result_list tbody tr")).to_have_count(1)
    expect(page.locator("#result_list tbody tr").first).to_contain_text(text["approved"])
    assert RedPacketPool.objects.get(id=small.id).approved_by is None
    page.goto(f"{live_url}/admin/crm/redpacketpool/?approval=awaiting")
    expect(page.locator("#result_list tbody tr")).to_have_count(0)
    screenshot(page, f"pool-approved-{lang}")
    pool = RedPacketPool.objects.get(id=pool.id)
    assert pool.approved_by == second and pool.approved_at is not None
    assert rp.redpacket_pool_activate(pool.id).status == "active"
