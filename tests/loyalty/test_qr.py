"""Rotating card QR tokens: rotation, expiry, forgery; the card page and its refresh endpoint."""

from __future__ import annotations

import re
import time

import pytest

from crm.errors import ApplicationError
from crm.services.customer_links import card_url, sign_contact
from loyalty import qr as qr_module
from loyalty.models import Card
from loyalty.qr import qr_token_mint, qr_token_parse, qr_token_verify

NOW = 1_790_000_000.0


def _error(token: str, now: float = NOW) -> ApplicationError:
    with pytest.raises(ApplicationError) as info:
        qr_token_verify(token, now=now)
    assert info.value.field == "qr_token"
    return info.value


def test_token_verifies_within_ttl_and_expires_after(settings):
    settings.CARD_QR_TTL_SECONDS = 60
    token = qr_token_mint("800000000001", now=NOW).token
    assert qr_token_verify(token, now=NOW).card_number == "800000000001"
    assert qr_token_verify(token, now=NOW + 60).issued_at == int(NOW)
    err = _error(token, now=NOW + 61)  # the screenshot a minute later
    assert (err.code, err.status_code) == ("qr_expired", 400)


def test_tokens_rotate_and_use_qr_alphanumeric_characters():
    first = qr_token_mint("800000000001", now=NOW).token
    second = qr_token_mint("800000000001", now=NOW + 30).token
    assert first != second
    assert re.fullmatch(r"[0-9A-Z.]+", first), "alphanumeric QR mode: digits, upper case, dots"


@pytest.mark.parametrize(
    "mutate",
    [
        lambda t: t[:-1] + ("A" if t[-1] != "A" else "B"),  # mac changed
        lambda t: t.replace(".800000000001.", ".800000000002."),  # another card
        lambda t: t.replace(f".{int(NOW)}.", f".{int(NOW) + 3600}."),  # pushed into the future
    ],
    ids=["mac", "card", "time"],
)
def test_forged_tokens_are_403(mutate):
    token = mutate(qr_token_mint("800000000001", now=NOW).token)
    err = _error(token)
    assert (err.code, err.status_code) == ("qr_forged", 403)


def test_token_signed_with_another_secret_is_forged(settings):
    token = qr_token_mint("800000000001", now=NOW).token
    settings.SECRET_KEY = "another-secret-" + "y" * 40
    assert _error(token).code == "qr_forged"


@pytest.mark.parametrize("token", ["", "hello", "L1.x.1.ABC", "L2.800000000001.1790000000.AAAA", "L1.8.9.A.B"])
def test_malformed_tokens_are_400(token):
    err = _error(token)
    assert (err.code, err.status_code) == ("qr_malformed", 400)


def test_token_from_the_future_is_refused():
    token = qr_token_mint("800000000001", now=NOW + 120).token
    assert _error(token, now=NOW).code == "qr_not_yet_valid"


def test_parse_checks_signature_but_not_age():
    token = qr_token_mint("800000000001", now=NOW - 10_000).token
    assert qr_token_parse(token).card_number == "800000000001"


# --- Card page -----------------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_card_page_makes_the_card_on_first_use_and_shows_a_fresh_qr(client, tiers, make_contact):
    contact = make_contact(name="Li Lei")
    url = card_url(contact.pk)
    assert "/m/card/" in url
    response = client.get(url[url.index("/m/card/") :])
    assert response.status_code == 200
    html = response.content.decode()
    card = Card.objects.get(contact=contact)
    assert card.tier == tiers["Member"]
    assert "<svg" in html and "Li Lei" in html and card.number in html
    token = re.search(r'data-qr-token="([^"]+)"', html).group(1)
    assert qr_token_verify(token).card_number == card.number
    assert "no-cache" in response["Cache-Control"] or "no-store" in response["Cache-Control"]
    assert "<script src" not in html and "<link" not in html, "no external assets"

    assert client.get(f"/m/card/{sign_contact(contact.pk, 'card')}/").status_code == 200
    assert Card.objects.filter(contact=contact).count() == 1


@pytest.mark.django_db
def test_qr_endpoint_rotates_the_token(client, card, monkeypatch, settings):
    settings.CARD_QR_TTL_SECONDS = 60
    path = f"/m/card/{sign_contact(card.contact_id, 'card')}/qr"
    monkeypatch.setattr(qr_module.time, "time", lambda: NOW)
    first = client.get(path).json()
    assert first["expires_in"] == 60 and first["points_balance"] == 0 and first["qr_svg"].startswith("<svg")
    monkeypatch.setattr(qr_module.time, "time", lambda: NOW + 45)
    second = client.get(path).json()
    assert second["qr_token"] != first["qr_token"]
    # 61 s after the first was shown: the new one still works, the old one (a screenshot) does not.
    assert qr_token_verify(second["qr_token"], now=NOW + 61).card_number == card.number
    assert _error(first["qr_token"], now=NOW + 61).code == "qr_expired"


@pytest.mark.django_db
@pytest.mark.parametrize("purpose", ["card", "redpacket"])
def test_card_page_refuses_bad_links(client, card, purpose):
    token = sign_contact(card.contact_id, purpose)
    bad = token[:-2] + "xx" if purpose == "card" else token
    assert client.get(f"/m/card/{bad}/").status_code == 403
    response = client.get(f"/m/card/{bad}/qr")
    assert response.status_code == 403 and response.json()["error"]["field"] == "token"


@pytest.mark.django_db
def test_card_page_for_an_unknown_contact_is_404(client):
    assert client.get(f"/m/card/{sign_contact(987654321, 'card')}/").status_code == 404


def test_real_expiry_with_a_short_ttl(settings):
    settings.CARD_QR_TTL_SECONDS = 1
    token = qr_token_mint("800000000001").token
    qr_token_verify(token)
    time.sleep(2.1)
    assert _error(token, now=time.time()).code == "qr_expired"
