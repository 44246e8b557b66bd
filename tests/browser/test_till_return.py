"""The staff till in a real browser (en and zh): a scan credits points, a partial return reverses its share, a
return of more than is left is refused with its reason code, and the card's ledger screen shows it all."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from crm.models import Contact
from loyalty.models import Card, PurchaseReturn
from loyalty.qr import qr_token_mint
from loyalty.services import card_get_or_create, store_upsert, tiers_ensure_defaults

pytestmark = [pytest.mark.django_db(transaction=True)]

TEXT = {
    "en": {"credited": "points credited", "reversed": "points reversed", "refused": "Refused", "lots": "Points lots"},
    "zh-hans": {"credited": "积分已入账", "reversed": "积分已扣回", "refused": "已拒绝", "lots": "积分批次"},
}


def test_till_scan_and_return(console_page, lang, live_url, screenshot):
    text = TEXT[lang]
    tiers_ensure_defaults()
    store = store_upsert(code="store-till-1", name="Till Store", city="Shanghai")
    card = card_get_or_create(Contact.objects.create(external_userid=f"wmTillBrowser{lang}", name="Mei").pk)

    page = console_page(lang=lang)
    page.goto(f"{live_url}/admin/loyalty/purchasereturn/till/")
    scan = page.locator('[data-testid="till-scan"]')
    scan.locator('select[name="store"]').select_option(store.code)
    scan.locator('input[name="qr_token"]').fill(qr_token_mint(card.number).token)
    scan.locator('input[name="receipt_id"]').fill("R-100")
    scan.locator('input[name="amount_fen"]').fill("40000")
    scan.locator('input[name="sku"]').fill("TEA")
    scan.locator('input[name="qty"]').fill("4")
    scan.locator('button[type="submit"]').click()
    result = page.locator('[data-testid="till-result"]')
    expect(result).to_contain_text(text["credited"])
    expect(result).to_have_attribute("data-balance", "400")

    ret = page.locator('[data-testid="till-return"]')
    ret.locator('select[name="store"]').select_option(store.code)
    ret.locator('input[name="receipt_id"]').fill("R-100")
    ret.locator('input[name="return_id"]').fill("RT-1")
    ret.locator('input[name="sku"]').fill("TEA")
    ret.locator('input[name="qty"]').fill("1")
    ret.locator('button[type="submit"]').click()
    expect(result).to_contain_text(text["reversed"])
    expect(result).to_have_attribute("data-points", "100")
    expect(result).to_have_attribute("data-balance", "300")
    screenshot(page, f"till-return-{lang}")

    # More than is left to return: refused with its code, nothing written.
    ret = page.locator('[data-testid="till-return"]')
    ret.locator('select[name="store"]').select_option(store.code)
    ret.locator('input[name="receipt_id"]').fill("R-100")
    ret.locator('input[name="return_id"]').fill("RT-2")
    ret.locator('input[name="sku"]').fill("TEA")
    ret.locator('input[name="qty"]').fill("4")
    ret.locator('button[type="submit"]').click()
    error = page.locator('[data-testid="till-error"]')
    expect(error).to_have_attribute("data-code", "return_exceeds_purchase")
    expect(error).to_contain_text(text["refused"])
    assert PurchaseReturn.objects.count() == 1 and Card.objects.get(pk=card.pk).points_balance == 300

    page.goto(f"{live_url}/admin/loyalty/pointslot/card/{card.pk}/")
    expect(page.locator('[data-testid="card-ledger-balanced"]')).to_be_visible()
    expect(page.locator("body")).to_contain_text(text["lots"])
    expect(page.locator('[data-testid="card-ledger-entries"] tr[data-kind="return"]')).to_have_count(1)
    expect(page.locator('[data-testid="card-ledger-lots"] tbody tr')).to_contain_text("300")
    screenshot(page, f"till-card-ledger-{lang}")
