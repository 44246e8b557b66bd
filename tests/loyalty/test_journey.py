"""Journey steps 4-5 over real HTTP: the shopper opens the card link, the till scans the QR on the page."""

from __future__ import annotations

import re

import pytest
import requests

from crm.services.customer_links import card_url
from loyalty.models import Card
from loyalty.selectors import card_ledger_sum
from loyalty.services import cashier_ensure

pytestmark = pytest.mark.django_db(transaction=True)


def test_shopper_shows_the_card_and_the_till_scans_it(live_stack, make_contact, tiers, store):
    contact = make_contact(name="Wang Fang")
    shopper = requests.Session()
    page = shopper.get(card_url(contact.pk), timeout=10)
    assert page.status_code == 200 and page.headers["Content-Type"].startswith("text/html")
    qr_token = re.search(r'data-qr-token="([^"]+)"', page.text).group(1)
    refresh_url = re.search(r'data-refresh-url="([^"]+)"', page.text).group(1)

    _, key = cashier_ensure(username="till-sh-001-1", store_codes=[store.code])
    till = requests.Session()
    till.headers["Authorization"] = f"Token {key}"
    scan = {"qr_token": qr_token, "receipt_id": "SH001-20261111-0001", "store": store.code, "amount_fen": 520_000}
    first = till.post(f"{live_stack}/api/loyalty/scans", json=scan, timeout=10)
    assert first.status_code == 201, first.text
    assert first.json()["tier"] == "Gold" and first.json()["tier_changed"] is True
    assert till.post(f"{live_stack}/api/loyalty/scans", json=scan, timeout=10).json()["duplicate"] is True

    refreshed = shopper.get(f"{live_stack}{refresh_url}", timeout=10).json()
    assert refreshed["points_balance"] == 5200 and refreshed["tier"] == "Gold"
    assert refreshed["qr_token"].split(".")[1] == qr_token.split(".")[1]  # same card, new token
    card = Card.objects.get(contact=contact)
    assert card.points_balance == card_ledger_sum(card.pk) == 5200
