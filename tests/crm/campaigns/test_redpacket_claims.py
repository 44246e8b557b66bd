"""Claims are atomic in Redis: one per customer, never over budget, also under concurrency and Redis loss."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from crm.models import RedPacketClaim, RedPacketPool, RedPacketRefund
from crm.services import redpackets as rp
from tests.crm.campaigns.conftest import later, make_contact, make_staff

pytestmark = pytest.mark.django_db(transaction=True)


def _pool(budget=3000, count=15, mode="lucky", **kw) -> RedPacketPool:
    pool = rp.redpacket_pool_create(campaign_id=None, budget_fen=budget, count=count, mode=mode,
                                    expires_at=later(hours=1), **kw)
    return rp.redpacket_pool_activate(pool.id)


def _claim(pool_id: int, contact_id: int) -> rp.ClaimOutcome:
    try:
        return rp.redpacket_claim(pool_id=pool_id, contact_id=contact_id)
    finally:
        connection.close()


def _claim_all(pool_id: int, contact_ids: list[int], threads: int = 16) -> list[rp.ClaimOutcome]:
    with ThreadPoolExecutor(threads) as ex:
        return list(ex.map(lambda cid: _claim(pool_id, cid), contact_ids))


def test_concurrent_claims_never_exceed_budget_nor_claim_twice():
    staff = make_staff()
    contacts = [make_contact(staff).id for _ in range(40)]
    pool = _pool(budget=3000, count=15, max_fen=400)
    # Every customer taps twice, all at once.
    outcomes = _claim_all(pool.id, contacts + contacts, threads=24)

    claims = RedPacketClaim.objects.filter(pool=pool)
    assert claims.count() == 15
    assert len({c.contact_id for c in claims}) == 15
    assert sum(c.amount_fen for c in claims) == 3000
    assert all(100 <= c.amount_fen <= 400 for c in claims)
    assert sorted(c.amount_fen for c in claims) == sorted(RedPacketPool.objects.get(id=pool.id).amounts)
    assert sum(1 for o in outcomes if o.status == "claimed") == 15
    assert {o.status for o in outcomes} <= {"claimed", "already_claimed", "none_left"}
    # A customer who got one sees the same amount on the second tap.
    by_contact = {c.contact_id: c.amount_fen for c in claims}
    for cid, outcome in zip(contacts + contacts, outcomes, strict=True):
        if outcome.status == "already_claimed":
            assert outcome.amount_fen == by_contact[cid]
    # Billnos: unique, derived from the claim, WeChat Pay's shape.
    billnos = [c.billno for c in claims]
    assert len(set(billnos)) == 15
    assert all(len(b) == 28 and b.isalnum() and b.endswith(f"{c.id:010d}") for b, c in zip(billnos, claims,
                                                                                              strict=True))
    report = rp.redpacket_reconcile(pool.id)
    assert report["balanced"] and report["claimable_fen"] == 0 and report["claimed_fen"] == 3000


def test_redis_state_lost_mid_campaign_is_rebuilt_from_the_database(redis_client):
    staff = make_staff()
    contacts = [make_contact(staff).id for _ in range(30)]
    pool = _pool(budget=2000, count=10, max_fen=500)
    first = _claim_all(pool.id, contacts[:4])
    assert [o.status for o in first] == ["claimed"] * 4

    for key in redis_client.scan_iter(match=f"crm:rp:{pool.id}:*"):
        redis_client.delete(key)

    again = _claim_all(pool.id, contacts, threads=12)
    assert [o.status for o in again[:4]] == ["already_claimed"] * 4
    assert [o.amount_fen for o in again[:4]] == [o.amount_fen for o in first]
    claims = RedPacketClaim.objects.filter(pool=pool)
    assert claims.count() == 10
    assert sum(c.amount_fen for c in claims) == 2000
    assert sorted(c.amount_fen for c in claims) == sorted(RedPacketPool.objects.get(id=pool.id).amounts)
    assert rp.redpacket_reconcile(pool.id)["balanced"]


def test_fixed_pool_pays_equal_amounts():
    staff = make_staff()
    contacts = [make_contact(staff).id for _ in range(6)]
    pool = _pool(budget=1000, count=5, mode="fixed")
    outcomes = _claim_all(pool.id, contacts)
    assert sorted(o.status for o in outcomes) == ["claimed"] * 5 + ["none_left"]
    assert {c.amount_fen for c in RedPacketClaim.objects.filter(pool=pool)} == {200}


def test_a_claim_that_died_between_redis_and_the_database_shows_in_flight_and_heals():
    staff = make_staff()
    contact = make_contact(staff)
    pool = _pool(budget=1000, count=5)
    # The Redis half of a claim whose process died before writing the row.
    code, amount = rp._script("claim")(keys=rp.pool_keys(pool.id), args=[str(contact.id)])
    assert code == 1
    report = rp.redpacket_reconcile(pool.id)
    assert report["in_flight_fen"] == amount and report["balanced"]
    assert report["claimable_fen"] == 1000 - amount

    outcome = rp.redpacket_claim(pool_id=pool.id, contact_id=contact.id)
    assert outcome.status == "already_claimed" and outcome.amount_fen == amount
    assert RedPacketClaim.objects.get(pool=pool, contact=contact).amount_fen == amount
    report = rp.redpacket_reconcile(pool.id)
    assert report["in_flight_fen"] == 0 and report["claimed_fen"] == amount and report["balanced"]


def test_expired_pool_refunds_what_is_left_and_reconciles():
    staff = make_staff()
    contacts = [make_contact(staff).id for _ in range(3)]
    pool = _pool(budget=2500, count=10)
    _claim_all(pool.id, contacts)
    claimed = sum(RedPacketClaim.objects.filter(pool=pool).values_list("amount_fen", flat=True))

    # Not expired yet: refusing is an error naming expires_at.
    with pytest.raises(Exception) as err:
        rp.redpacket_refund_expired(pool.id)
    assert getattr(err.value, "field", None) == "expires_at"

    RedPacketPool.objects.filter(id=pool.id).update(expires_at=timezone.now() - timedelta(seconds=1))
    assert rp.redpacket_claim(pool_id=pool.id, contact_id=make_contact(staff).id).status == "expired"
    assert rp.redpacket_claim(pool_id=pool.id, contact_id=contacts[0]).status == "already_claimed"

    refund = rp.redpacket_refund_expired(pool.id)
    assert refund.amount_fen == 2500 - claimed and refund.packets == 7
    assert rp.redpacket_refund_expired(pool.id).id == refund.id  # idempotent
    assert rp.redpacket_refund_all_expired() == []
    assert RedPacketRefund.objects.filter(pool=pool).count() == 1
    report = rp.redpacket_reconcile(pool.id)
    assert report["status"] == "refunded"
    assert report["refunded_fen"] == 2500 - claimed and report["claimable_fen"] == 0
    assert report["balanced"]


def test_refund_after_redis_loss_still_balances(redis_client):
    staff = make_staff()
    contacts = [make_contact(staff).id for _ in range(2)]
    pool = _pool(budget=1500, count=5)
    _claim_all(pool.id, contacts)
    RedPacketPool.objects.filter(id=pool.id).update(expires_at=timezone.now() - timedelta(seconds=1))
    for key in redis_client.scan_iter(match=f"crm:rp:{pool.id}:*"):
        redis_client.delete(key)
    refund = rp.redpacket_refund_expired(pool.id)
    claimed = sum(RedPacketClaim.objects.filter(pool=pool).values_list("amount_fen", flat=True))
    assert refund.amount_fen == 1500 - claimed
    assert rp.redpacket_reconcile(pool.id)["balanced"]
