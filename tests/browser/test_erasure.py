"""Data rights on the contact page in Chromium, in English and in Chinese: an admin downloads everything held about a
customer as one JSON file, then erases them: the form refuses a missing reason and a missing confirmation on their
fields, the erase goes through with both, and the page shows the anonymised contact."""

from __future__ import annotations

import json

import pytest

from crm.models import Contact, ContactTag, ErasureTombstone
from crm.services.contacts import contact_set_phone
from crm.services.roles import ADMIN
from crm.services.tags import tag_ensure
from tests.crm.campaigns.conftest import make_contact, make_staff

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True), pytest.mark.timeout(180)]

TEXT = {
    "en": {"rights": "Data rights", "submit": "Erase permanently",
           "reason_required": "Give the reason for the erasure."},
    "zh-hans": {"rights": "数据权利", "submit": "永久删除", "reason_required": "请填写删除原因。"},
}


def test_admin_exports_then_erases_a_customer(console_page, console_user, live_url, lang, screenshot):
    text = TEXT[lang]
    mei = make_contact(make_staff("ann"), eid=f"wmBROWSER{lang}", name=f"Han Meimei {lang}")
    contact_set_phone(mei, "13800138000")
    ContactTag.objects.create(contact=mei, tag=tag_ensure("Tier", "Gold"))
    dpo = console_user(f"dpo-{lang}", superuser=False, groups=[ADMIN])

    page = console_page(dpo, lang=lang)
    page.goto(f"{live_url}/admin/console/contacts/{mei.pk}/")
    rights = page.locator('[data-testid="data-rights"]')
    assert text["rights"] in page.content()
    with page.expect_download() as download:
        rights.locator('[data-testid="contact-export"]').click()
    doc = json.loads(download.value.path().read_text(encoding="utf-8"))
    assert doc["schema_version"] == 1 and doc["contact"]["name"] == f"Han Meimei {lang}"
    assert doc["contact"]["phone"] == "13800138000" and doc["tags"][0]["tag"] == "Gold"

    rights.locator('[data-testid="contact-erase"]').click()
    page.wait_for_selector('[data-testid="erase-page"]')
    assert page.locator('[data-testid="erase-submit"]').inner_text().strip() == text["submit"]
    # Neither a reason nor the confirmation: refused on each field, nothing erased.
    page.click('[data-testid="erase-submit"]')
    page.wait_for_selector('[data-testid="erase-error"][data-field="reason"]')
    assert page.locator('[data-testid="erase-error"][data-field="reason"]').inner_text() == text["reason_required"]
    assert page.locator('[data-testid="erase-error"][data-field="confirm"]').count() == 1
    assert Contact.objects.get(pk=mei.pk).erased_at is None
    screenshot(page, f"contact-erase-refused-{lang}")

    page.fill('[data-testid="erase-reason"]', "Customer's request by phone, ticket 881")
    page.check('[data-testid="erase-confirm"]')
    page.click('[data-testid="erase-submit"]')
    page.wait_for_selector('[data-testid="contact-erased"]')
    assert page.locator('[data-testid="contact-external-userid"]').inner_text() == f"erased-{mei.pk}"
    assert page.locator('[data-testid="contact-erase"]').count() == 0
    assert page.locator('[data-testid="contact-tag"]').count() == 0
    screenshot(page, f"contact-erased-{lang}")
    mei.refresh_from_db()
    assert mei.erased_at is not None and mei.name == "" and mei.phone_hash == ""
    tomb = ErasureTombstone.objects.get(contact=mei)
    assert tomb.erased_by == dpo and "881" in tomb.reason
