"""The contact page in Chromium, in English and in Chinese: a customer who added a staff member through a channel
QR, seen with their profile, follow relation and consent; a tag added from the page lands on the page, in the
timeline and, through the worker, on the customer's relation in WeCom."""

from __future__ import annotations

import pytest

from crm.models import Contact, ContactTag
from crm.services.channels import channel_create
from crm.services.consent import consent_from_customer, consent_policy_version
from crm.services.tags import tag_ensure
from crm.wecom.client import get_client
from tests.conftest import wait_for

pytestmark = [pytest.mark.browser, pytest.mark.worker, pytest.mark.django_db(transaction=True),
              pytest.mark.timeout(90)]


def test_contact_page_shows_the_customer_and_adds_a_tag(staffed, celery_worker, console_page, lang, live_stack,
                                                        screenshot):
    world = staffed
    channel_create(name="Store QR", state=f"store-{lang}", staff_userids=["alice"])
    eid = world.shopper(f"Mei {lang}")
    world.scan(eid, f"store-{lang}")
    contact = wait_for(lambda: Contact.objects.filter(external_userid=eid).first(), timeout=30, message="contact")
    consent_from_customer(contact_id=contact.pk, purpose="marketing", granted=True,
                          policy_version=consent_policy_version())
    gold = tag_ensure("Tier", "Gold")

    page = console_page(lang=lang)
    page.goto(f"{live_stack}/admin/console/contacts/{contact.pk}/")
    assert page.locator('[data-testid="contact-page"]').get_attribute("data-contact-id") == str(contact.pk)
    assert page.locator('[data-testid="contact-external-userid"]').inner_text() == eid
    follows = page.locator('[data-testid="follow-row"]')
    assert follows.count() == 1 and "alice" in follows.inner_text()
    assert page.locator('[data-purpose="marketing"]').get_attribute("data-granted") == "1"
    assert page.locator('[data-testid="contact-tag"]').count() == 0
    assert page.locator('[data-testid="timeline-event"]').count() >= 2  # the add and the consent, at least

    page.select_option('[data-testid="tag-select"]', str(gold.pk))
    page.click('[data-testid="tag-add-form"] button[type="submit"]')
    page.wait_for_selector(f'[data-testid="contact-tag"][data-tag-id="{gold.pk}"]')
    assert page.locator('[data-testid="timeline-event"]').first.get_attribute("data-kind") == "tagged"
    assert ContactTag.objects.filter(contact=contact, tag=gold).exists()
    screenshot(page, f"contact-page-{lang}")

    def wecom_tags():
        follow = get_client().externalcontact_get(eid)["follow_user"][0]
        return sorted(t["tag_name"] for t in follow.get("tags") or [])

    wait_for(lambda: wecom_tags() == ["Gold"], timeout=30, message="tag marked in WeCom")

    # The birthday (loyalty's birthday bonus and birthday week read it): a date in the future is refused, kept as
    # it was; a real one is saved and shown.
    page.fill('[data-testid="birthday-input"]', "2999-01-01")
    page.click('[data-testid="birthday-form"] button[type="submit"]')
    page.wait_for_selector('[data-testid="birthday-form"]')
    assert page.locator('[data-testid="contact-birthday"]').inner_text() == "—"
    page.fill('[data-testid="birthday-input"]', "1990-05-17")
    page.click('[data-testid="birthday-form"] button[type="submit"]')
    page.wait_for_selector('[data-testid="contact-birthday"]:has-text("1990-05-17")')
    contact.refresh_from_db()
    assert str(contact.birthday) == "1990-05-17"
