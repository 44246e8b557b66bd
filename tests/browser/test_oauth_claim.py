"""The same red-packet link for everyone, in Chromium, in English and in Chinese: the shopper opens the link, the
simulator's WeChat asks who is opening it (a real WeChat client knows), OAuth brings them back identified, and the
claim button pays out their share; a second shopper in another browser is told apart by WeChat, not by the link."""

from __future__ import annotations

import pytest

from crm.models import RedPacketClaim
from crm.services.customer_links import pool_link
from crm.wecom.client import get_client
from tests.browser.conftest import ACCEPT_LANGUAGE
from tests.crm.campaigns.conftest import grant_marketing, make_staff
from tests.crm.oauth.conftest import launched_pool

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True), pytest.mark.timeout(120)]


def _befriend(sim, staff, name: str):
    """A WeChat user in the simulator who adds `staff`, and the same customer in the CRM (agreeing to offers)."""
    from django.utils import timezone

    from crm.models import Contact, FollowRelation

    way = get_client().add_contact_way(type=1, scene=2, user=[staff.userid], state="oauth-b", skip_verify=True)
    eid = sim.shopper(name)
    sim.post(f"shoppers/{eid}/scan_contact_way", {"config_id": way["config_id"]})
    contact = Contact.objects.create(external_userid=eid, name=name)
    FollowRelation.objects.create(staff=staff, contact=contact, added_at=timezone.now())
    grant_marketing(contact)
    return contact


def _page(chromium, lang: str):
    context = chromium.new_context(extra_http_headers={"Accept-Language": ACCEPT_LANGUAGE[lang]})
    page = context.new_page()
    page.set_default_timeout(10_000)
    return context, page


def test_shopper_signs_in_through_wechat_and_claims(chromium, live_stack, sim, lang, screenshot):
    staff = make_staff("alice")
    sim.member("alice")
    lin = _befriend(sim, staff, "Lin")
    bo = _befriend(sim, staff, "Bo")
    pool = launched_pool(count=2, budget=600)
    link = pool_link(pool.id)

    context, page = _page(chromium, lang)
    try:
        page.goto(link)
        # Outside WeChat the simulator asks which WeChat user is opening the page.
        page.wait_for_selector(f'a.shopper[data-eid="{lin.external_userid}"]')
        screenshot(page, f"oauth-picker-{lang}")
        page.click(f'a.shopper[data-eid="{lin.external_userid}"]')
        page.wait_for_selector(f'.who[data-contact-id="{lin.id}"]')
        assert page.url.split("#")[0] == link  # back on the link they opened, now identified
        assert page.evaluate("document.documentElement.lang") == lang
        screenshot(page, f"oauth-claim-open-{lang}")
        page.click('button[name="claim"]')
        page.wait_for_selector("[data-amount-fen]")
        assert page.locator("[data-amount-fen]").get_attribute("data-amount-fen") == "300"
        screenshot(page, f"oauth-claim-done-{lang}")
        page.reload()  # the session keeps them: no picker, the amount shown
        page.wait_for_selector('[data-status="already_claimed"]')
    finally:
        context.close()

    # Another shopper, same link, another phone: WeChat says who they are.
    context, page = _page(chromium, lang)
    try:
        page.goto(f"{live_stack}/wecom-sim/oauth/wechat_client?shopper={bo.external_userid}&next={link}")
        page.wait_for_selector(f'.who[data-contact-id="{bo.id}"]')
        page.click('button[name="claim"]')
        page.wait_for_selector('[data-amount-fen="300"]')
    finally:
        context.close()
    assert sorted(RedPacketClaim.objects.filter(pool=pool).values_list("contact_id", flat=True)) == sorted(
        [lin.id, bo.id])
