"""Rate limits on the red-packet claim: per visitor and per IP, 429 with Retry-After, nothing reserved."""

from __future__ import annotations

import pytest

from crm.api.throttles import ClaimIPThrottle, ClaimVisitorThrottle
from crm.models import RedPacketClaim
from crm.services.redpackets import get_redis, pool_keys
from tests.crm.campaigns.test_customer_page import _launched_pool, _path

pytestmark = pytest.mark.django_db(transaction=True)


def test_a_visitors_claims_over_the_rate_are_429_with_retry_after(client, monkeypatch):
    monkeypatch.setattr(ClaimVisitorThrottle, "THROTTLE_RATES", {"redpacket_claim_visitor": "3/min"})
    pool, (c1, c2, _) = _launched_pool(count=3, budget=900)
    for _ in range(3):  # the first claims, then "already claimed": all count
        assert client.post(_path(pool, c1) + "?format=json").status_code == 200
    limited = client.post(_path(pool, c1) + "?format=json")
    assert limited.status_code == 429 and limited.json()["error"]["code"] == "throttled"
    assert 0 < int(limited["Retry-After"]) <= 60
    # Another visitor from the same address is not held back by c1's taps.
    assert client.post(_path(pool, c2) + "?format=json").json()["status"] == "claimed"


def test_a_refused_claim_reserves_nothing(client, monkeypatch):
    monkeypatch.setattr(ClaimVisitorThrottle, "THROTTLE_RATES", {"redpacket_claim_visitor": "0/min"})
    pool, (c1, *_) = _launched_pool(count=2, budget=600)
    response = client.post(_path(pool, c1), HTTP_ACCEPT_LANGUAGE="en")
    assert response.status_code == 429 and "Too many attempts" in response.content.decode()
    assert not RedPacketClaim.objects.exists()
    assert get_redis().hlen(pool_keys(pool.id)[1]) == 0 and get_redis().llen(pool_keys(pool.id)[0]) == 2


def test_one_ip_over_its_rate_is_429_whoever_it_claims_for(client, monkeypatch):
    monkeypatch.setattr(ClaimIPThrottle, "THROTTLE_RATES", {"redpacket_claim_ip": "2/min"})
    pool, (c1, c2, c3) = _launched_pool(count=3, budget=900)
    for contact in (c1, c2):
        assert client.post(_path(pool, contact) + "?format=json", REMOTE_ADDR="10.1.1.1").status_code == 200
    limited = client.post(_path(pool, c3) + "?format=json", REMOTE_ADDR="10.1.1.1")
    assert limited.status_code == 429 and int(limited["Retry-After"]) > 0
    assert client.post(_path(pool, c3) + "?format=json", REMOTE_ADDR="10.2.2.2").json()["status"] == "claimed"
    assert RedPacketClaim.objects.filter(pool=pool).count() == 3


def test_looking_at_the_page_is_not_counted(client, monkeypatch):
    monkeypatch.setattr(ClaimVisitorThrottle, "THROTTLE_RATES", {"redpacket_claim_visitor": "1/min"})
    pool, (c1, *_) = _launched_pool()
    for _ in range(5):
        assert client.get(_path(pool, c1)).status_code == 200
    assert client.post(_path(pool, c1) + "?format=json").json()["status"] == "claimed"
