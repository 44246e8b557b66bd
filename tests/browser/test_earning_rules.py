"""The earning rules console and the preview in a real browser (en and zh): a multiplier without its percentage is
refused on that field and nothing saved; saved, it doubles what the preview says a receipt earns."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from loyalty.models import EarningRule
from loyalty.services import store_upsert, tiers_ensure_defaults

pytestmark = [pytest.mark.django_db(transaction=True)]

TEXT = {
    "en": {"needs": "This kind of rule needs this field.", "earns": "This receipt earns 238 points.",
           "preview": "Preview a receipt"},
    "zh-hans": {"needs": "此类规则需要填写该字段。", "earns": "此小票可得 238 积分。", "preview": "预览小票积分"},
}  # fmt: skip


def test_earning_rules_console_and_preview(console_page, lang, live_url, screenshot):
    text = TEXT[lang]
    tiers_ensure_defaults()
    store = store_upsert(code=f"store-earn-{lang}", name="Jing'an", city="Shanghai")

    page = console_page(lang=lang)
    page.goto(f"{live_url}/admin/loyalty/earningrule/add/")
    page.fill("#id_name", "11.11 double")
    page.select_option("#id_kind", "multiplier")
    page.click('button[name="_save"]')
    expect(page.locator("body")).to_contain_text(text["needs"])
    assert not EarningRule.objects.exists()  # nothing written

    page.fill("#id_multiplier_pct", "200")
    page.click('button[name="_save"]')
    page.wait_for_url("**/admin/loyalty/earningrule/")
    assert EarningRule.objects.values_list("kind", "multiplier_pct").get() == ("multiplier", 200)

    page.get_by_test_id("earning-preview-link").click()
    expect(page.get_by_test_id("earning-preview-link")).to_have_count(0)
    page.select_option("#id_store", store.code)
    page.fill("#id_amount_fen", "11900")
    page.fill("#id_lines", "TEA-001 9800\nCUP-007 2100")
    page.get_by_test_id("preview-submit").click()
    expect(page.get_by_test_id("preview-total")).to_have_text(text["earns"])
    rows = page.locator('[data-testid="preview-breakdown"] tbody tr')
    expect(rows).to_have_count(2)
    expect(rows.nth(1)).to_contain_text("11.11 double")
    expect(rows.nth(1)).to_contain_text("119")
    expect(page.locator('[data-testid="preview-lines"] tbody tr')).to_have_count(2)
    screenshot(page, f"earning-preview-{lang}")

    page.fill("#id_amount_fen", "-5")
    page.get_by_test_id("preview-submit").click()
    expect(page.get_by_test_id("field-error-amount_fen")).to_be_visible()
