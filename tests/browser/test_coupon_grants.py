"""Coupons without points in Chromium, in English and in Chinese (issue 12 item 5): a marketer adds a journey step
"when a customer moves up into Silver, grant a coupon" (refused on its field without the tier), the card moves
up, and the card page on a phone shows the coupon; a marketer gives a campaign a coupon in the compose form, the
message links to the card page, and a delivered recipient finds the coupon there."""

from __future__ import annotations

import pytest
from django.utils import timezone

from crm.models import Campaign, CampaignRecipient, CampaignRun, Contact
from crm.services.customer_links import card_link, sign_contact
from loyalty.models import CampaignCoupon, Coupon, JourneyGrant, JourneyStep
from loyalty.services import card_get_or_create, points_adjust, tiers_ensure_defaults
from loyalty.services.campaign_coupons import campaign_coupons_grant
from loyalty.services.journeys import journey_run
from loyalty.services.rewards import reward_save
from tests.browser.conftest import ACCEPT_LANGUAGE

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True), pytest.mark.timeout(90)]
PHONE = {"width": 390, "height": 844}


@pytest.fixture
def phone(chromium, lang):
    context = chromium.new_context(
        viewport=PHONE, device_scale_factor=2, is_mobile=True, has_touch=True,
        extra_http_headers={"Accept-Language": ACCEPT_LANGUAGE[lang]},
    )  # fmt: skip
    page = context.new_page()
    page.set_default_timeout(10_000)
    yield page
    context.close()


def _coupon_on_the_card_page(phone, live_url, contact_id: int, code: str, lang: str) -> None:
    phone.goto(f"{live_url}/m/card/{sign_contact(contact_id, 'card')}/")
    assert phone.locator("html").get_attribute("lang") == lang
    coupon = phone.locator(f'[data-testid="coupon"][data-coupon-code="{code}"]')
    coupon.wait_for()
    assert coupon.locator("svg").count() == 1  # its QR, for the till


def test_a_journey_step_grants_a_coupon_when_the_card_moves_up(
    console_page, console_user, phone, lang, live_url, monkeypatch, screenshot
):
    from loyalty import tasks_coupons

    monkeypatch.setattr(tasks_coupons.run_journey, "delay", lambda *args: journey_run(*args))  # the worker's part
    tiers = {t.name: t for t in tiers_ensure_defaults()}
    welcome = reward_save(name=f"Silver welcome {lang}", kind="coupon", value_fen=1000, points_cost=10)
    page = console_page(console_user(f"mia-{lang}", superuser=False, groups=["marketing"]), lang=lang)

    page.goto(f"{live_url}/admin/loyalty/journeystep/add/")
    assert page.locator("html").get_attribute("lang") == lang
    page.fill("#id_name", "Silver welcome")
    page.select_option("#id_trigger", "tier_entered")
    page.select_option("#id_action", "grant_coupon")
    page.select_option("#id_reward", str(welcome.pk))
    page.click('button[name="_save"]')
    page.locator("#id_tier").wait_for()  # back on the form: refused on the tier field, nothing saved
    assert page.locator(".errorlist, [class*='error']").count() >= 1
    assert not JourneyStep.objects.exists()
    page.select_option("#id_tier", str(tiers["Silver"].pk))
    screenshot(page, f"journey-step-{lang}")
    page.click('button[name="_save"]')
    page.wait_for_url("**/admin/loyalty/journeystep/")
    step = JourneyStep.objects.get()
    assert (step.trigger, step.tier_id, step.reward_id) == ("tier_entered", tiers["Silver"].pk, welcome.pk)

    contact = Contact.objects.create(external_userid=f"wmJourney{lang}", name="Lan")
    card = card_get_or_create(contact.pk)
    points_adjust(card_id=card.pk, delta=1000, reason="welcome", idempotency_key=f"up-{lang}")  # -> Silver
    grant = JourneyGrant.objects.get(step=step, contact=contact)
    assert grant.status == "granted" and grant.coupon.source == "journey"
    _coupon_on_the_card_page(phone, live_url, contact.pk, grant.coupon.code, lang)
    screenshot(phone, f"journey-coupon-card-{lang}")

    page.goto(f"{live_url}/admin/loyalty/journeystep/")
    assert "Silver welcome" in page.locator("#result_list").inner_text()


def test_a_campaign_with_a_coupon_links_to_the_card_page(console_page, console_user, phone, lang, live_url, screenshot):
    tiers_ensure_defaults()
    coupon = reward_save(name=f"Spring ¥15 {lang}", kind="coupon", value_fen=1500, points_cost=10, stock=10)
    page = console_page(console_user(f"max-{lang}", superuser=False, groups=["marketing"]), lang=lang)

    page.goto(f"{live_url}/admin/crm/campaign/add/")
    page.fill("#id_name", f"Spring coupon {lang}")
    page.fill("#id_text", "A spring coupon for you")
    page.check('input[name="target"][value="segment"]')
    page.check('input[name="segment_source"][value="inline"]')
    page.fill("#id_segment", "{}")
    page.select_option("#id_coupon_reward-0-reward", str(coupon.pk))
    screenshot(page, f"campaign-coupon-compose-{lang}")
    with page.expect_navigation():
        page.click('button[name="_save"]')
    campaign = Campaign.objects.get(name=f"Spring coupon {lang}")
    assert CampaignCoupon.objects.get(campaign=campaign).reward_id == coupon.pk
    assert (campaign.attachment, campaign.link_url) == ("link", card_link())  # the message lands on the card

    # One recipient delivered (what the result poll stores), granted by the hook's task.
    contact = Contact.objects.create(external_userid=f"wmSpring{lang}", name="Mei")
    run = CampaignRun.objects.create(campaign=campaign, occurrence=timezone.now())
    CampaignRecipient.objects.create(campaign=campaign, run=run, contact=contact, external_userid="x",
                                     status="delivered")  # fmt: skip
    assert campaign_coupons_grant(run.pk) == {"granted": 1}
    code = Coupon.objects.get(card__contact=contact).code
    _coupon_on_the_card_page(phone, live_url, contact.pk, code, lang)
    screenshot(phone, f"campaign-coupon-card-{lang}")
