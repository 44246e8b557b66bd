"""The segment builder in Chromium, in English and in Chinese, signed in as marketing: build
"tag VIP AND (spend in the last 90 days >= 500 yuan OR NOT consent marketing withdrawn)" condition by condition,
watching the live count and the sample follow each change (the page posts to the API's preview), a bad condition
marked where it is, save, reopen the saved segment as it was built, and filter the contacts list by it."""

from __future__ import annotations

import re

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from crm.models import ConsentRecord, Contact, ContactTag, Segment, Tag, TagGroup
from crm.services.segments import resolve, segment_validate
from loyalty.models import Card, Purchase, Store

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True), pytest.mark.timeout(120)]

# Luhn-valid card numbers (the card's printed number carries a check digit).
CARD_NUMBERS = ("4000000000000002", "4000000000000010", "4000000000000028")


@pytest.fixture
def shoppers():
    """Ann: VIP, no spend, consent never withdrawn (in). Bo: VIP, ¥600 today, marketing withdrawn (in, by spend).
    Cy: VIP, ¥120, marketing withdrawn (out). Di: not VIP (out)."""
    level = TagGroup.objects.create(name="Level")
    Tag.objects.create(group=level, name="New")
    vip = Tag.objects.create(group=level, name="VIP")
    numbers = iter(CARD_NUMBERS)
    store = Store.objects.create(code="sh1", name="Shanghai 1")
    now = timezone.now()
    people = {}
    for name, tagged, spent_fen, withdrawn in (
        ("Ann", True, 0, False), ("Bo", True, 60000, True), ("Cy", True, 12000, True), ("Di", False, 90000, False)
    ):
        contact = Contact.objects.create(external_userid=f"wm{name.lower()}", name=name)
        if tagged:
            ContactTag.objects.create(contact=contact, tag=vip)
        if spent_fen:
            card = Card.objects.create(contact=contact, number=next(numbers))
            Purchase.objects.create(store=store, receipt_id=f"r-{name}", card=card, amount_fen=spent_fen)
        if withdrawn:
            for version, granted in ((1, True), (2, False)):
                ConsentRecord.objects.create(contact=contact, purpose="marketing", version=version, granted=granted,
                                             source="test", recorded_at=now)
        people[name] = contact
    return {"vip": vip, **people}


def count(page):
    return page.get_by_test_id("segment-count")


def counted(page, n: int | str) -> None:
    """Wait for the preview of the definition as it is now (each change sets the state to loading first)."""
    expect(page.locator("[data-segment-builder]")).to_have_attribute("data-preview-state", "ready")
    expect(count(page)).to_have_attribute("data-count", str(n))


def sample_names(page) -> set[str]:
    return {row.locator("a").inner_text() for row in page.get_by_test_id("sb-sample-row").all()}


def test_build_save_reopen_and_filter_contacts(shoppers, console_page, console_user, lang, live_url, screenshot):
    user = console_user(f"mia-{lang}", superuser=False, groups=["marketing"])
    page = console_page(user, lang=lang)
    page.goto(f"{live_url}/admin/crm/segment/add/")  # the list's Add opens the builder
    page.wait_for_url(re.compile(r".*/admin/console/segments/new/$"))
    builder = page.locator("[data-segment-builder]")
    expect(builder).to_have_attribute("data-ready", "true")
    counted(page, 4)  # an empty group: every contact

    # tag VIP
    page.get_by_test_id("sb-add-condition").last.click()
    vip = page.get_by_test_id("sb-condition").nth(0)
    vip.get_by_test_id("sb-field").select_option("tags")
    vip.get_by_test_id("sb-op").select_option("any")
    vip.get_by_test_id("sb-multi").select_option(str(shoppers["vip"].id))
    counted(page, 3)
    expect(page.get_by_test_id("sb-sample-row")).to_have_count(3)
    assert sample_names(page) == {"Ann", "Bo", "Cy"}
    ann_link = page.get_by_test_id("sb-sample-row").filter(has_text="Ann").locator("a")
    assert ann_link.get_attribute("href") == f"/admin/console/contacts/{shoppers['Ann'].id}/"

    # AND (spend >= 500 yuan in the last 90 days OR NOT consent marketing withdrawn)
    page.get_by_test_id("sb-add-group").last.click()
    group = page.get_by_test_id("sb-group").nth(1)
    group.get_by_test_id("sb-group-op").select_option("any")
    spend = group.get_by_test_id("sb-condition").nth(0)
    spend.get_by_test_id("sb-field").select_option("spend")
    spend = group.get_by_test_id("sb-condition").nth(0)
    spend.get_by_test_id("sb-op").select_option("gte")
    expect(spend.get_by_test_id("sb-days")).to_have_value("90")
    spend.get_by_test_id("sb-input").fill("500")
    counted(page, 1)  # VIP AND (spend >= 500): Bo
    assert sample_names(page) == {"Bo"}

    group.get_by_test_id("sb-add-condition").click()
    consent = group.get_by_test_id("sb-condition").nth(1)
    consent.get_by_test_id("sb-field").select_option("consent")
    consent = group.get_by_test_id("sb-condition").nth(1)
    consent.get_by_test_id("sb-op").select_option("withdrawn")
    consent.get_by_test_id("sb-choice").select_option("marketing")
    counted(page, 2)  # Bo, Cy withdrawn, Bo spent: VIP AND (Bo OR Cy)
    consent.get_by_test_id("sb-not").check()
    counted(page, 2)  # Bo by spend, Ann never withdrew
    expect(page.get_by_test_id("sb-sample-row")).to_have_count(2)
    assert sample_names(page) == {"Ann", "Bo"}

    # A bad value is marked at its condition, live, and the count waits for it.
    spend.get_by_test_id("sb-input").fill("-5")
    expect(spend).to_have_class(re.compile(r"\bsb-invalid\b"))
    expect(spend.get_by_test_id("sb-error")).not_to_be_empty()
    expect(page.locator("[data-segment-builder]")).to_have_attribute("data-preview-state", "invalid")
    expect(count(page)).to_have_attribute("data-count", "")
    spend.get_by_test_id("sb-input").fill("500")
    counted(page, 2)
    expect(spend).not_to_have_class(re.compile(r"\bsb-invalid\b"))
    screenshot(page, f"segment-builder-{lang}")

    page.fill("#id_name", f"VIP spenders or reachable ({lang})")
    page.fill("#id_description", "Spring sale")
    page.click('button[name="save"]')
    page.wait_for_url(re.compile(r".*/admin/console/segments/\d+/$"))
    segment = Segment.objects.get(name=f"VIP spenders or reachable ({lang})")
    assert segment.created_by_id in (None, user.id)
    members = resolve(segment_validate(segment.definition))
    assert set(members.values_list("name", flat=True)) == {"Ann", "Bo"}
    assert {"field": "spend", "op": "gte", "value": 50000, "days": 90} in segment_validate(
        segment.definition)["all"][1]["any"]

    # Reopened: the tree as it was built, the money back in yuan, the same count.
    page.reload()
    expect(builder).to_have_attribute("data-ready", "true")
    expect(page.get_by_test_id("sb-condition")).to_have_count(3)
    expect(page.get_by_test_id("sb-group").nth(1).get_by_test_id("sb-group-op")).to_have_value("any")
    reopened_spend = page.get_by_test_id("sb-group").nth(1).get_by_test_id("sb-condition").nth(0)
    expect(reopened_spend.get_by_test_id("sb-input")).to_have_value("500")
    expect(page.get_by_test_id("sb-group").nth(1).get_by_test_id("sb-not").nth(2)).to_be_checked()
    counted(page, 2)
    screenshot(page, f"segment-builder-reopened-{lang}")

    # The contacts list, filtered by the saved segment (the same language resolves it).
    page.get_by_test_id("segment-contacts-link").click()
    page.wait_for_url(re.compile(rf".*/admin/crm/contact/\?segment={segment.pk}$"))
    listed = page.locator("#result_list tbody tr")
    expect(listed).to_have_count(2)
    text = " ".join(listed.all_inner_texts())
    assert "wmann" in text and "wmbo" in text and "wmcy" not in text
    screenshot(page, f"segment-contacts-{lang}")

    # And the segment list shows it.
    page.goto(f"{live_url}/admin/crm/segment/")
    expect(page.locator("#result_list")).to_contain_text(segment.name)
