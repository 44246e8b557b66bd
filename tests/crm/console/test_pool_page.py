"""The console's red-packet pool page: budget = paid + pending + refunded + claimable, claims by status, and a red
banner when the pool does not balance."""

from __future__ import annotations

import re

import pytest
from django.urls import reverse

from crm.models import RedPacketClaim, RedPacketPool
from crm.services import redpackets as rp
from tests.crm.campaigns.conftest import later, make_contact, make_staff

pytestmark = pytest.mark.django_db


def _pool(budget=3000, count=10, **kw) -> RedPacketPool:
    pool = rp.redpacket_pool_create(campaign_id=None, budget_fen=budget, count=count, mode="fixed",
                                    expires_at=later(hours=1), **kw)
    return rp.redpacket_pool_activate(pool.id)


@pytest.fixture
def pool():
    """A 30-yuan pool of ten 3-yuan packets: 4 claimed (1 paid, 1 paying, 1 failed, 1 queued), 6 claimable."""
    pool = _pool()
    staff = make_staff()
    claims = []
    for _ in range(4):
        outcome = rp.redpacket_claim(pool_id=pool.id, contact_id=make_contact(staff).id)
        claims.append(RedPacketClaim.objects.get(pk=outcome.claim_id))
    for claim, status in zip(claims, ("paid", "paying", "failed", "received"), strict=True):
        RedPacketClaim.objects.filter(pk=claim.pk).update(status=status,
                                                          last_error="NOTENOUGH" if status == "failed" else "")
    return pool


def fen(html: str, term: str) -> int:
    return int(re.search(rf'data-term="{term}" data-fen="(-?\d+)"', html).group(1))


def test_reconcile_reports_pending_as_claimed_but_not_paid(pool):
    report = rp.redpacket_reconcile(pool.id)
    assert report["paid_fen"] == 300
    assert report["pending_fen"] == 900 == report["paying_fen"] + report["queued_fen"] + report["failed_fen"]
    assert report["claimable_fen"] == 1800 and report["refunded_fen"] == 0
    assert report["paid_fen"] + report["pending_fen"] + report["refunded_fen"] + report["claimable_fen"] == 3000
    assert report["balanced"]


def test_reserved_but_unwritten_claim_is_pending_too():
    pool = _pool(budget=1000, count=5)
    contact = make_contact(make_staff())
    code, amount = rp._script("claim")(keys=rp.pool_keys(pool.id), args=[str(contact.id)])
    assert code == 1
    report = rp.redpacket_reconcile(pool.id)
    assert report["pending_fen"] == report["in_flight_fen"] == amount and report["balanced"]


def test_page_shows_the_identity_claims_by_status_and_a_balanced_pool(admin_client, pool):
    response = admin_client.get(reverse("console:pool", args=[pool.pk]))
    assert response.status_code == 200
    html = response.content.decode()
    assert "unfold/css/styles.css" in html
    assert 'data-testid="pool-balanced"' in html and 'data-testid="pool-unbalanced"' not in html
    assert fen(html, "budget_fen") == 3000
    assert (fen(html, "paid_fen"), fen(html, "pending_fen"), fen(html, "refunded_fen"), fen(html, "claimable_fen")) \
        == (300, 900, 0, 1800)
    assert (fen(html, "queued_fen"), fen(html, "paying_fen"), fen(html, "failed_fen"), fen(html, "in_flight_fen")) \
        == (300, 300, 300, 0)
    assert fen(html, "total_fen") == 3000
    assert "¥30.00" in html and "¥18.00" in html
    statuses = dict(re.findall(r'data-status="(\w+)" data-count="(\d+)"', html))
    assert statuses == {"received": "1", "paying": "1", "paid": "1", "failed": "1", "expired": "0"}
    assert html.count('data-testid="pool-claim-row"') == 4 and "NOTENOUGH" in html


def test_claims_filter_by_status(admin_client, pool):
    html = admin_client.get(reverse("console:pool", args=[pool.pk]), {"status": "paid"}).content.decode()
    assert re.findall(r'data-testid="pool-claim-row" data-status="(\w+)"', html) == ["paid"]
    junk = admin_client.get(reverse("console:pool", args=[pool.pk]), {"status": "<nope>"})
    assert junk.status_code == 200 and junk.content.decode().count('data-testid="pool-claim-row"') == 4


def test_a_pool_that_does_not_balance_shows_a_red_banner(admin_client, pool):
    # A claim row whose amount no longer matches Redis's reservation (the kind of drift reconciliation exists for).
    claim = RedPacketClaim.objects.filter(pool=pool).first()
    RedPacketClaim.objects.filter(pk=claim.pk).update(amount_fen=claim.amount_fen + 50)
    assert not rp.redpacket_reconcile(pool.id)["balanced"]
    html = admin_client.get(reverse("console:pool", args=[pool.pk])).content.decode()
    assert 'data-testid="pool-unbalanced"' in html and 'data-testid="pool-balanced"' not in html
    banner = html.split('data-testid="pool-unbalanced"')[1].split("</div>")[0]
    assert "¥30.50" in banner and "¥0.50" in banner  # what the parts add up to, and the difference
    assert fen(html, "total_fen") == 3050


def test_draft_pool_is_all_claimable(admin_client):
    pool = rp.redpacket_pool_create(campaign_id=None, budget_fen=1000, count=5, mode="fixed",
                                    expires_at=later(hours=1))
    html = admin_client.get(reverse("console:pool", args=[pool.pk])).content.decode()
    assert fen(html, "claimable_fen") == 1000 and 'data-testid="pool-balanced"' in html


def test_permissions_and_unknown_id(admin_client, staff_client_factory, pool):
    assert admin_client.get(reverse("console:pool", args=[999999])).status_code == 404
    assert staff_client_factory().get(reverse("console:pool", args=[pool.pk])).status_code == 403
    assert staff_client_factory("crm.view_redpacketpool").get(reverse("console:pool", args=[pool.pk])).status_code \
        == 200
