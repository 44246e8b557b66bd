"""Customer pages (/m/) speak the browser's language and default to Chinese; their times are Shanghai times."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from django.conf import settings

from crm.models import ConsentRecord
from crm.services.consent import consent_from_customer, consent_policy_version
from crm.services.customer_links import sign_contact

pytestmark = pytest.mark.django_db

CHINESE = ("会员卡", "积分", "到店结账时出示此码", "我同意")
ENGLISH = ("Member card", ">points<", "Show this code at the till", "I agree")


def _card_page(client, card, **headers):
    response = client.get(f"/m/card/{sign_contact(card.contact_id, 'card')}/", **headers)
    assert response.status_code == 200
    return response


@pytest.mark.parametrize("accept_language", ["zh-CN,zh;q=0.9", None, "fr-FR,fr;q=0.9"])
def test_the_card_page_is_chinese_for_chinese_no_or_unknown_browser_language(client, card, accept_language):
    headers = {"HTTP_ACCEPT_LANGUAGE": accept_language} if accept_language else {}
    response = _card_page(client, card, **headers)
    html = response.content.decode()
    assert response["Content-Language"] == "zh-hans" and '<html lang="zh-hans">' in html
    for text in CHINESE:
        assert text in html, text
    for text in ENGLISH:
        assert text not in html, text


def test_the_card_page_is_english_for_an_english_browser(client, card):
    response = _card_page(client, card, HTTP_ACCEPT_LANGUAGE="en-US,en;q=0.9")
    html = response.content.decode()
    assert response["Content-Language"] == "en" and '<html lang="en">' in html
    for text in ENGLISH:
        assert text in html, text
    assert "到店结账时出示此码" not in html


def test_a_staff_language_cookie_does_not_change_a_customer_page(client, card):
    client.cookies[settings.LANGUAGE_COOKIE_NAME] = "en"  # the console's choice, on a shared phone
    assert _card_page(client, card)["Content-Language"] == "zh-hans"
    assert _card_page(client, card, HTTP_ACCEPT_LANGUAGE="en")["Content-Language"] == "en"


@pytest.mark.parametrize(("accept_language", "expected"), [(None, "链接无效"), ("en-US", "This link is not valid.")])
def test_an_error_page_speaks_the_customers_language(client, db, accept_language, expected):
    headers = {"HTTP_ACCEPT_LANGUAGE": accept_language} if accept_language else {}
    for url in ("/m/card/not-a-token/", "/m/rp/not-a-token/", "/m/draw/not-a-token/"):
        response = client.get(url, **headers)
        assert response.status_code == 403, url
        assert expected in response.content.decode(), url


def test_consent_times_are_shown_in_shanghai(client, card):
    consent_from_customer(contact_id=card.contact_id, purpose="marketing", granted=True,
                          policy_version=consent_policy_version())
    # Stored in UTC: 2025-11-11 12:00 UTC is 20:00 in Shanghai.
    ConsentRecord.objects.filter(contact_id=card.contact_id).update(recorded_at=datetime(2025, 11, 11, 12, tzinfo=UTC))
    zh = _card_page(client, card).content.decode()
    en = _card_page(client, card, HTTP_ACCEPT_LANGUAGE="en").content.decode()
    assert "2025-11-11 20:00" in zh and "2025-11-11 12:00" not in zh
    assert "On since 2025-11-11 20:00" in en
