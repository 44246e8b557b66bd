"""The customer's red-packet page: GET shows the campaign and a Claim form, POST claims (HTML or JSON)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from crm.models import RedPacketClaim, RedPacketPool
from crm.services import campaign_runs
from crm.services import campaigns as svc
from crm.services.customer_links import sign_contact
from crm.services.redpackets import claim_url
from tests.crm.campaigns.conftest import later, make_contact, make_staff

pytestmark = pytest.mark.django_db(transaction=True)


def _launched_pool(count=2, budget=600):
    staff = make_staff()
    contacts = [make_contact(staff) for _ in range(3)]
    campaign = svc.campaign_create(
        name="Singles Day", text="Grab it",
        red_packet={"budget_fen": budget, "count": count, "mode": "fixed", "expires_at": later(hours=1),
                    "act_name": "11.11 red packet"},
    )
    campaign_runs.campaign_launch(campaign.id, enqueue=False)
    return RedPacketPool.objects.get(campaign=campaign), contacts


def _path(pool, contact):
    return "/m/rp/" + claim_url(pool.id, contact.id).split("/m/rp/")[1]


def test_get_shows_campaign_and_a_form_posting_to_itself(client):
    pool, (c1, *_) = _launched_pool()
    response = client.get(_path(pool, c1))
    assert response.status_code == 200
    html = response.content.decode()
    assert "Singles Day" in html and "11.11 red packet" in html
    assert '<form method="post" action="">' in html
    assert not RedPacketClaim.objects.exists()  # looking is not claiming


def test_post_claims_once_then_reports_already_claimed_and_none_left(client):
    pool, (c1, c2, c3) = _launched_pool(count=2, budget=600)
    client_no_csrf = client  # the signed token is the credential: no CSRF token is needed
    response = client_no_csrf.post(_path(pool, c1), {"claim": "1"})
    assert response.status_code == 200
    assert 'data-amount-fen="300"' in response.content.decode()
    again = client.post(_path(pool, c1), {"claim": "1"}, HTTP_ACCEPT_LANGUAGE="en").content.decode()
    assert "already claimed" in again and 'data-amount-fen="300"' in again
    assert client.post(_path(pool, c2), HTTP_ACCEPT="application/json").json()["status"] == "claimed"
    data = client.post(_path(pool, c3) + "?format=json").json()
    assert data["status"] == "none_left" and data["amount_fen"] == 0
    assert RedPacketClaim.objects.filter(pool=pool).count() == 2
    # GET after claiming shows the amount, not the button.
    assert 'data-amount-fen="300"' in client.get(_path(pool, c1)).content.decode()


def test_expired_pool_says_so(client):
    pool, (c1, *_) = _launched_pool()
    RedPacketPool.objects.filter(id=pool.id).update(expires_at=timezone.now() - timedelta(seconds=1))
    data = client.post(_path(pool, c1), HTTP_ACCEPT="application/json").json()
    assert data["status"] == "expired"
    assert "expired" in client.get(_path(pool, c1)).content.decode()


def test_bad_or_foreign_tokens_are_refused_with_403(client):
    pool, (c1, *_) = _launched_pool()
    assert client.get("/m/rp/garbage/").status_code == 403
    tampered = _path(pool, c1)[:-3] + "xx/"
    assert client.post(tampered, HTTP_ACCEPT="application/json").json()["error"]["field"] == "token"
    card_token = sign_contact(c1.id, "card")  # a valid token for another purpose
    assert client.post(f"/m/rp/{card_token}/").status_code == 403
    assert not RedPacketClaim.objects.exists()
