"""The points mall on the card page: reached only through the card's signed token (the signed link, or the one
the WeChat OAuth flow mints), Chinese by default, CSRF on the redeem POST, which acts on the token's card only."""

from __future__ import annotations

import re
from datetime import date

import pytest
from django.test import Client

from crm.services.customer_links import sign_contact
from loyalty.models import Coupon, PointsLedger, Reward
from loyalty.services import card_get_or_create, points_credit
from loyalty.services.coupons import coupon_grant

pytestmark = pytest.mark.django_db
EN = {"HTTP_ACCEPT_LANGUAGE": "en-US,en;q=0.9"}
_CSRF = re.compile(r'name="csrfmiddlewaretoken" value="([^"]+)"')
_NONCE = re.compile(r'name="nonce" value="([^"]+)"')


def _token(card):
    return sign_contact(card.contact_id, "card")


def _fund(card, points):
    points_credit(card_id=card.pk, delta=points, kind=PointsLedger.Kind.ADJUST, idempotency_key=f"fund-{card.pk}")


@pytest.fixture
def rewards(tiers):
    gold = max(tiers.values(), key=lambda t: t.rank)
    mug = Reward.objects.create(name="Mug", points_cost=100, stock=5)
    tote = Reward.objects.create(name="Gold tote", points_cost=50)
    tote.eligible_tiers.set([gold])
    Reward.objects.create(name="Sold out", points_cost=10, stock=0)
    Reward.objects.create(name="Withdrawn", points_cost=10, is_active=False)
    return {"mug": mug, "tote": tote}


def _mall(client, card, **headers):
    response = client.get(f"/m/card/{_token(card)}/mall/", **headers)
    assert response.status_code == 200
    return response.content.decode()


def test_the_mall_lists_what_this_card_may_redeem(client, card, rewards):
    html = _mall(client, card, **EN)
    assert "Mug" in html and "Gold tote" not in html and "Sold out" not in html and "Withdrawn" not in html


def test_the_mall_is_chinese_by_default(client, card, rewards):
    html = _mall(client, card)
    assert '<html lang="zh-hans">' in html
    assert "Points mall" not in html and "Redeem" not in html
    for text in ("积分商城", "兑换", "可用积分", "暂无优惠券。"):  # from /tmp/h/zh_coupons.json
        assert text in html, text


def test_a_forged_or_guessed_token_shows_nothing(client, card, rewards):
    for token in (str(card.pk), card.number, _token(card)[:-2] + "xx"):
        response = client.get(f"/m/card/{token}/mall/", **EN)
        assert response.status_code in (400, 403, 404) and "Mug" not in response.content.decode()


def test_redeem_needs_csrf_and_redeems_for_the_signed_card_only(card, make_contact, rewards):
    _fund(card, 250)
    other = card_get_or_create(make_contact().pk)
    _fund(other, 250)
    client = Client(enforce_csrf_checks=True)
    url = f"/m/card/{_token(card)}/mall/redeem"
    html = _mall(client, card, **EN)
    nonce = _NONCE.search(html).group(1)
    refused = client.post(url, {"reward": rewards["mug"].pk, "nonce": nonce})
    assert refused.status_code == 403 and not Coupon.objects.exists()  # no CSRF token
    csrf = _CSRF.search(html).group(1)
    form = {"reward": rewards["mug"].pk, "nonce": nonce, "csrfmiddlewaretoken": csrf}
    done = client.post(url, form, **EN)
    assert done.status_code == 303 and done["Location"].endswith("?done=1#coupons")
    again = client.post(url, form, **EN)  # a double tap: the same nonce replays, one redemption
    assert again.status_code == 303
    coupon = Coupon.objects.get()
    assert coupon.card_id == card.pk and not Coupon.objects.filter(card=other).exists()
    card.refresh_from_db()
    other.refresh_from_db()
    assert (card.points_balance, other.points_balance) == (150, 250)
    page = client.get(done["Location"], **EN).content.decode()
    assert "<svg" in page.split(f'data-coupon-code="{coupon.code}"', 1)[1]  # its QR
    assert "Valid until" not in page  # the mug has no validity


def test_a_refusal_says_why_in_the_customers_words_and_writes_nothing(client, card, rewards):
    _fund(card, 50)
    html = _mall(client, card, **EN)
    response = client.post(
        f"/m/card/{_token(card)}/mall/redeem",
        {"reward": rewards["mug"].pk, "nonce": _NONCE.search(html).group(1)},
        **EN,
    )
    assert response.status_code == 400
    assert "You do not have enough points for this reward." in response.content.decode()
    assert not Coupon.objects.exists()
    tier_refusal = client.post(
        f"/m/card/{_token(card)}/mall/redeem", {"reward": rewards["tote"].pk, "nonce": "n" * 24}, **EN
    )
    assert tier_refusal.status_code == 400 and "not available for your tier" in tier_refusal.content.decode()


def test_the_card_page_shows_coupons_as_qr_and_links_the_mall(client, card, rewards):
    coupon, _ = coupon_grant(card_id=card.pk, reward_id=rewards["mug"].pk, source="campaign", idempotency_key="c1")
    token = _token(card)  # once: a token signed a second later differs (its timestamp)
    html = client.get(f"/m/card/{token}/", **EN).content.decode()
    assert f'data-coupon-code="{coupon.code}"' in html
    assert '<div class="coupon-qr"><svg' in html.split(f'data-coupon-code="{coupon.code}"', 1)[1]
    assert f'href="/m/card/{token}/mall/"' in html
    coupon.redeemed_at = coupon.issued_at
    coupon.save()
    assert coupon.code not in client.get(f"/m/card/{_token(card)}/", **EN).content.decode()


def test_points_expiring_shows_only_when_the_lots_say_so(client, card, rewards, monkeypatch):
    from loyalty.services import lots

    monkeypatch.setattr(lots, "points_expiring_next", lambda card_id: None)
    assert 'data-testid="points-expiring"' not in _mall(client, card, **EN)
    monkeypatch.setattr(lots, "points_expiring_next", lambda card_id: (120, date(2027, 3, 31)))
    assert "120 points expire on 2027-03-31" in _mall(client, card, **EN)
    card_html = client.get(f"/m/card/{_token(card)}/", **EN).content.decode()
    assert "120 points expire on 2027-03-31" in card_html


def test_the_shared_oauth_card_page_links_the_mall_on_the_visitors_own_token(client, card, rewards, monkeypatch):
    """/m/card/ (one link for everyone): once WeChat OAuth has said who the visitor is (stubbed here; the flow
    itself is tests/crm/oauth), the mall link is that visitor's signed token and nobody else's."""
    from loyalty import pages

    monkeypatch.setattr(pages, "shared_identity", lambda request, purpose: (card.contact_id, None))
    html = client.get("/m/card/", **EN).content.decode()
    assert f'href="/m/card/{_token(card)}/mall/"' in html
    assert "Mug" in _mall(client, card, **EN)
