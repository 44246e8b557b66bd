"""The points mall on a phone (iPhone-sized viewport, touch) in Chromium, in English and in Chinese (the default for
a Chinese browser): from the card page to the mall, redeem a coupon, see it as a QR; then the till redeems that
QR's code once over HTTP, and a second scan is refused with its reason code."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Group
from rest_framework.authtoken.models import Token

from crm.models import Contact
from crm.services.customer_links import sign_contact
from loyalty.models import Coupon, PointsLedger
from loyalty.permissions import CASHIER_GROUP
from loyalty.services import card_get_or_create, points_credit, store_upsert, tiers_ensure_defaults
from loyalty.services.rewards import reward_save
from tests.browser.conftest import ACCEPT_LANGUAGE, save_screenshot

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True), pytest.mark.timeout(90)]
PHONE = {"width": 390, "height": 844}
WORDS = {
    "en": {"mall": "Points mall", "redeem": "Redeem", "done": "Redeemed: your coupon is below.", "mine": "My coupons"},
    "zh-hans": {"mall": "积分商城", "redeem": "兑换", "done": "兑换成功：您的优惠券在下方。", "mine": "我的优惠券"},
}


@pytest.fixture
def phone(chromium, lang):
    context = chromium.new_context(
        viewport=PHONE, device_scale_factor=3, is_mobile=True, has_touch=True,
        extra_http_headers={"Accept-Language": ACCEPT_LANGUAGE[lang]},
    )  # fmt: skip
    page = context.new_page()
    page.set_default_timeout(10_000)
    yield page
    context.close()


def test_browse_the_mall_and_redeem_on_a_phone(phone, lang, live_url, django_user_model):
    import requests

    tiers_ensure_defaults()
    card = card_get_or_create(Contact.objects.create(external_userid=f"wmMall{lang}", name="Mall shopper").pk)
    points_credit(card_id=card.pk, delta=300, kind=PointsLedger.Kind.ADJUST, idempotency_key="fund")
    coupon_reward = reward_save(name="¥20 off", kind="coupon", value_fen=2000, points_cost=120, stock=3, valid_days=30)
    reward_save(name="Gold lounge", points_cost=5000)
    words = WORDS[lang]

    phone.goto(f"{live_url}/m/card/{sign_contact(card.contact_id, 'card')}/")
    phone.click('[data-testid="mall-link"]')
    phone.wait_for_selector('[data-testid="rewards"]')
    assert phone.locator("html").get_attribute("lang") == lang
    assert words["mall"] in phone.title()
    # Phone-sized: nothing wider than the screen.
    assert phone.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    rewards = phone.locator('[data-testid="reward"]')
    assert rewards.count() == 2
    lounge = phone.locator('[data-testid="reward"]', has_text="Gold lounge")
    assert lounge.locator("button").is_disabled()  # 5000 points: more than the card has
    save_screenshot(phone, f"points-mall-{lang}")

    offer = phone.locator(f'[data-testid="reward"][data-reward-id="{coupon_reward.pk}"]')
    assert offer.locator("button").inner_text().strip() == words["redeem"]
    offer.locator("button").tap()
    phone.wait_for_selector('[data-testid="mall-done"]')
    assert phone.locator('[data-testid="mall-done"]').inner_text().strip() == words["done"]
    assert phone.locator('[data-testid="mall-points"]').inner_text().strip() == "180"
    assert words["mine"] in phone.locator('[data-testid="coupons"]').inner_text()
    shown = phone.locator('[data-testid="coupon"]')
    assert shown.count() == 1 and shown.locator("svg").count() == 1
    code = shown.get_attribute("data-coupon-code")
    coupon = Coupon.objects.get()
    assert coupon.code == code and coupon.card_id == card.pk
    save_screenshot(phone, f"points-mall-redeemed-{lang}")

    # The till scans that QR: once.
    store = store_upsert(code="mall-sh-01", name="Shanghai", city="Shanghai")
    cashier = django_user_model.objects.create_user(username=f"till-mall-{lang}", password="x" * 12)
    cashier.groups.add(Group.objects.get_or_create(name=CASHIER_GROUP)[0])
    store.members.add(cashier)
    headers = {"Authorization": f"Token {Token.objects.create(user=cashier).key}"}
    url = f"{live_url}/api/loyalty/coupons/redeem"
    first = requests.post(url, json={"code": code, "store": store.code}, headers=headers, timeout=10)
    second = requests.post(url, json={"code": code, "store": store.code}, headers=headers, timeout=10)
    assert first.status_code == 200 and second.status_code == 409
    assert second.json()["error"]["code"] == "coupon_redeemed"
    phone.reload()
    assert phone.locator('[data-testid="coupon"]').count() == 0  # used: gone from the customer's coupons
