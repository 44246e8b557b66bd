"""Rate limits on every customer page and public endpoint (crm/api/throttles.py throttle_page / page_throttles):
per visitor (the signed link, or the contact OAuth put in the session) and per IP, counted in real Redis; past
the limit 429 with Retry-After, before the view does any work."""

from __future__ import annotations

import pytest
from django.conf import settings
from rest_framework.test import APIClient

from crm.api import throttles
from crm.api.draws import entry_url
from crm.services import group_packets as gp
from crm.services.customer_links import sign_contact
from loyalty.services import card_get_or_create
from tests.crm.campaigns.conftest import make_contact, make_staff
from tests.crm.campaigns.test_customer_page import _launched_pool
from tests.crm.campaigns.test_customer_page import _path as rp_path

pytestmark = pytest.mark.django_db


@pytest.fixture
def rates(monkeypatch):
    """rates(kind, visitor=..., ip=...): tight limits for one kind of page (DRF binds its rates at import, so the
    throttle classes' table is replaced, with every other rate as configured)."""

    def set_rates(kind: str, *, visitor: str | None = None, ip: str | None = None) -> None:
        table = dict(settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"])
        if visitor:
            table[f"page_{kind}_visitor"] = visitor
        if ip:
            table[f"page_{kind}_ip"] = ip
        for cls in (throttles._PageVisitorThrottle, throttles._PageIPThrottle):
            monkeypatch.setattr(cls, "THROTTLE_RATES", table)

    return set_rates


def _limited(response, *, json: bool = False) -> None:
    assert response.status_code == 429, response.content[:300]
    assert 0 < int(response["Retry-After"]) <= 60
    if json:
        assert response.json()["error"]["code"] == "throttled"
    else:
        assert 'data-code="throttled"' in response.content.decode()


def _card_path(contact_id: int, suffix: str = "") -> str:
    card_get_or_create(contact_id)
    return f"/m/card/{sign_contact(contact_id, 'card')}/{suffix}"


def test_card_pages_per_visitor_then_per_ip(client, rates):
    rates("card", visitor="3/min", ip="6/min")
    staff = make_staff()
    one, two, three = (make_contact(staff).pk for _ in range(3))
    page = _card_path(one)
    for path in (page, _card_path(one, "qr"), _card_path(one, "consent")):  # one window for the card's pages
        assert client.get(path).status_code == 200
    _limited(client.get(page))
    _limited(client.get(_card_path(one, "qr")), json=True)
    # Another customer on the same address is not held back by the first one's taps...
    assert client.get(_card_path(two)).status_code == 200
    # ...until the address itself is over its rate: it counted all six above, the refused ones too.
    _limited(client.get(_card_path(three)))
    assert client.get(_card_path(three), REMOTE_ADDR="10.9.9.9").status_code == 200


def test_mall_pages(client, rates):
    rates("mall", visitor="2/min")
    contact = make_contact(make_staff()).pk
    mall = _card_path(contact, "mall/")
    assert client.get(mall).status_code == 200
    assert client.post(_card_path(contact, "mall/redeem"), {"reward": "0"}).status_code != 429
    _limited(client.get(mall))
    assert client.get(_card_path(contact)).status_code == 200  # the card page has its own window


def test_group_draw_entry_and_verify_pages(client, rates):
    rates("draw", visitor="2/min", ip="4/min")
    contact = make_contact(make_staff())
    entry = "/" + entry_url(424242, contact.pk).split("/", 3)[3]
    for _ in range(2):  # no such draw: the view answers 404, and each answer counts
        assert client.get(entry).status_code == 404
    _limited(client.get(entry))
    verify = "/m/groupdraw/424242/verify/?format=json"
    assert client.get(verify).status_code == 404  # per IP only: no visitor on the public verify page
    _limited(client.get(verify), json=True)
    assert client.get(verify, REMOTE_ADDR="10.8.8.8").status_code == 404


def test_lucky_draw_page_counts_every_method(client, rates):
    rates("draw", visitor="2/min")
    path = f"/m/draw/{sign_contact(1, 'draw:5')}/?format=json"
    client.get(path)
    client.post(path)
    _limited(client.post(path), json=True)


def test_group_packet_pages_and_open_endpoint(client, rates):
    rates("gp", visitor="3/min")
    member = "/" + gp.group_packet_member_url(515151, 7).split("://", 1)[1].split("/", 1)[1]
    token = member.rstrip("/").rsplit("/", 1)[1]
    for _ in range(2):  # no such packet: the view refuses, and each answer counts
        assert client.get(member).status_code != 429
    # The DRF endpoint the page posts to shares the member link's window: the third request is its last.
    api = APIClient()
    assert api.post("/m/gp/open", {"token": token}, format="json").status_code != 429
    limited = api.post("/m/gp/open", {"token": token}, format="json")
    assert limited.status_code == 429 and 0 < int(limited["Retry-After"]) <= 60
    assert limited.json()["error"]["code"] == "throttled"
    _limited(client.get(member))
    _limited(client.get(f"/m/gp/board/{token}/"))  # the board too
    other = gp.group_packet_member_url(515151, 8).rsplit("/m/gp/t/", 1)[1].rstrip("/")
    assert api.post("/m/gp/open", {"token": other}, format="json").status_code != 429  # another member


@pytest.mark.django_db(transaction=True)
def test_red_packet_and_fission_page_views_but_not_the_claim(client, rates):
    rates("redpacket", visitor="2/min")
    pool, (c1, *_) = _launched_pool()
    for _ in range(2):
        assert client.get(rp_path(pool, c1)).status_code == 200
    _limited(client.get(rp_path(pool, c1)))
    # The claim POST is counted by the claim's own windows only (one Redis call on its hot path).
    assert client.post(rp_path(pool, c1) + "?format=json").json()["status"] == "claimed"


def test_oauth_callback_per_ip(client, rates):
    rates("oauth", ip="2/min")
    for _ in range(2):
        assert client.get("/m/oauth/callback/?code=x&state=y").status_code != 429
    _limited(client.get("/m/oauth/callback/?code=x&state=y"))
    assert client.get("/m/oauth/callback/?code=x&state=y", REMOTE_ADDR="10.7.7.7").status_code != 429


def test_default_rates_are_settings():
    table = settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"]
    for kind in settings.PAGE_THROTTLE_KINDS:
        assert table[f"page_{kind}_ip"]
        assert table[f"page_{kind}_visitor"]
    assert table["page_oauth_ip"] == settings.OAUTH_CALLBACK_IP_RATE
