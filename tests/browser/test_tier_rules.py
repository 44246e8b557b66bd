"""The tier rules screen in a real browser (en and zh): a bad window is refused on its field and nothing saved,
good rules are saved; then an upgrade shows in the tier changes list and on the contact's timeline."""

from __future__ import annotations

import pytest
from django.urls import reverse
from playwright.sync_api import expect

from crm.models import Contact
from loyalty.models import TierPolicy
from loyalty.services import card_get_or_create, points_adjust, tiers_ensure_defaults

pytestmark = [pytest.mark.django_db(transaction=True)]

TEXT = {
    "en": {
        "range": "Must be a whole number from 0 to 3660.",
        "saved": "Tier rules saved.",
        "upgrade": "Upgrade",
        "spend": "Spend",
        "tier_changed": "Tier changed",
    },
    "zh-hans": {
        "range": "必须是 0 到 3660 之间的整数。",
        "saved": "等级规则已保存。",
        "upgrade": "升级",
        "spend": "消费金额",
        "tier_changed": "等级变更",
    },
}


def test_tier_rules_screen_and_an_upgrade_event(console_page, lang, live_url, screenshot):
    text = TEXT[lang]
    tiers_ensure_defaults()
    contact = Contact.objects.create(external_userid=f"wmTierBrowser{lang}", name="Lan")
    card = card_get_or_create(contact.pk)

    page = console_page(lang=lang)
    page.goto(f"{live_url}/admin/loyalty/tierpolicy/")  # the one row's form
    page.wait_for_selector("#id_window_days")
    expect(page.locator("#id_basis")).to_contain_text(text["spend"])
    page.fill("#id_window_days", "99999")
    page.click('button[name="_save"]')
    expect(page.locator("body")).to_contain_text(text["range"])
    assert TierPolicy.objects.get().window_days == 365  # nothing written

    page.fill("#id_window_days", "180")
    page.fill("#id_grace_days", "14")
    page.click('button[name="_save"]')
    expect(page.locator("body")).to_contain_text(text["saved"])
    assert TierPolicy.objects.values_list("basis", "window_days", "grace_days").get() == ("points", 180, 14)
    screenshot(page, f"tier-rules-{lang}")

    points_adjust(card_id=card.pk, delta=1000, reason="welcome", idempotency_key=f"browser-{lang}")  # -> Silver
    page.goto(f"{live_url}/admin/loyalty/tierchange/")
    row = page.locator("#result_list tbody tr").first
    expect(row).to_contain_text(card.number)
    expect(row).to_contain_text(text["upgrade"])
    expect(row).to_contain_text("Silver")

    page.goto(live_url + reverse("console:contact", args=[contact.pk]))
    event = page.locator('[data-testid="timeline-event"][data-kind="tier_changed"]')
    expect(event).to_have_count(1)
    expect(event).to_contain_text(text["tier_changed"])  # a ContactEvent kind: its label, in the staff language
    expect(event).to_contain_text("Silver")
    expect(event).to_contain_text("upgrade")
    screenshot(page, f"tier-upgrade-timeline-{lang}")
