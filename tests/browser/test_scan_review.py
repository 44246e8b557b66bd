"""The scan review queue in a real browser (en and zh): a store manager sees their store's flagged scan with why it
was flagged, reverses its points with the list action, and the card's balance follows the ledger."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from crm.models import Contact
from loyalty.models import Card, ScanReview
from loyalty.qr import qr_token_mint
from loyalty.selectors import card_ledger_sum
from loyalty.services import card_get_or_create, scan_record, store_upsert, tiers_ensure_defaults
from loyalty.services.velocity import velocity_check

pytestmark = [pytest.mark.django_db(transaction=True)]

TEXT = {
    "en": {
        "why": "Amount over the configured maximum",
        "action": "Reverse the points of selected scans",
        "done": "1 scan(s) reversed.",
        "reversed": "Reversed",
    },
    "zh-hans": {
        "why": "金额超过设定上限",
        "action": "撤销所选扫码的积分",
        "done": "已撤销 1 条扫码。",
        "reversed": "已撤销",
    },
}


def test_reverse_a_flagged_scan_from_the_queue(console_page, console_user, lang, live_url, screenshot, settings):
    text = TEXT[lang]
    settings.LOYALTY_VELOCITY_MAX_AMOUNT_FEN = 100_000
    tiers_ensure_defaults()
    store = store_upsert(code="store-sh-001", name="Shanghai Jing'an")
    card = card_get_or_create(Contact.objects.create(external_userid=f"wmReview{lang}", name="Lan").pk)
    result = scan_record(
        qr_token=qr_token_mint(card.number).token, store_code=store.code, receipt_id="R-BIG", amount_fen=150_000
    )
    assert velocity_check(result.purchase) is not None
    manager = console_user(f"mgr-{lang}", superuser=False, groups=["store_manager"])
    store.members.add(manager)

    page = console_page(manager, lang=lang)
    page.goto(f"{live_url}/admin/loyalty/scanreview/")
    row = page.locator("#result_list tbody tr").first
    expect(row).to_contain_text("R-BIG")
    expect(row).to_contain_text(text["why"])
    screenshot(page, f"scan-review-{lang}")
    row.locator("input.action-select").check()
    page.locator('select[name="action"]').select_option(label=text["action"])
    page.click('button[name="index"]')
    expect(page.locator("body")).to_contain_text(text["done"])
    expect(page.locator("#result_list tbody tr").first).to_contain_text(text["reversed"])

    assert ScanReview.objects.get().status == "reversed"
    card = Card.objects.get(pk=card.pk)
    assert card.points_balance == 0 == card_ledger_sum(card.pk)
