"""A claimed packet not paid within its pool's claim expiry (24 h by default) is refunded; one whose payout is in
flight waits; the books stay exact (the amount moves from pending to refunded) and the payout never pays it."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from crm.models import RedPacketClaim
from crm.services import redpackets as rp
from crm.services.claim_expiry import expire_unpaid_claims
from crm.services.payouts import claim_payout, claim_payout_give_up, claim_payout_retry
from crm.tasks.redpackets import pay_claim, refund_expired_pools
from tests.crm.campaigns.conftest import later, make_contact, make_staff

pytestmark = pytest.mark.django_db(transaction=True)


def _aged(claim_id: int, hours: float, **fields) -> None:
    RedPacketClaim.objects.filter(id=claim_id).update(claimed_at=timezone.now() - timedelta(hours=hours), **fields)


def test_unpaid_claims_past_the_claim_expiry_are_refunded_exactly_once(monkeypatch):
    # The payouts are this test's to drive: a session worker left running by an earlier test would pay them.
    monkeypatch.setattr(pay_claim, "delay", lambda *args, **kwargs: None)
    staff = make_staff()
    queued, recent, paying, failed = (make_contact(staff) for _ in range(4))
    pool = rp.redpacket_pool_create(campaign_id=None, budget_fen=1200, count=4, mode="fixed",
                                    expires_at=later(days=3))  # fmt: skip
    assert pool.claim_expiry_hours == 24
    rp.redpacket_pool_activate(pool.id)
    ids = {c: rp.redpacket_claim(pool_id=pool.id, contact_id=c.id).claim_id for c in (queued, recent, paying, failed)}
    _aged(ids[queued], 25)
    _aged(ids[recent], 23)
    _aged(ids[paying], 25, status=RedPacketClaim.Status.PAYING)  # the pay API may still pay this billno
    _aged(ids[failed], 30, status=RedPacketClaim.Status.FAILED)
    before = rp.redpacket_reconcile(pool.id)
    assert before["balanced"] and before["pending_fen"] == 1200

    assert refund_expired_pools()["claims_expired"] == 2  # the beat that already refunds pools does it
    assert sorted(expire_unpaid_claims()) == []  # once
    statuses = dict(RedPacketClaim.objects.filter(pool=pool).values_list("id", "status"))
    assert statuses == {ids[queued]: "expired", ids[recent]: "received", ids[paying]: "paying",
                        ids[failed]: "expired"}  # fmt: skip
    after = rp.redpacket_reconcile(pool.id)
    assert after["balanced"], after
    assert (after["refunded_fen"], after["expired_claims_fen"], after["pending_fen"]) == (600, 600, 600)

    # The payout leaves a refunded claim alone (no pay API call: it returns before one), as do give-up and retry.
    assert claim_payout(ids[queued]) == "expired"
    assert claim_payout_give_up(ids[failed], "late") == "expired"
    assert claim_payout_retry(ids[failed]) is False
    assert RedPacketClaim.objects.get(id=ids[failed]).status == "expired"
    assert rp.redpacket_reconcile(pool.id)["balanced"]


def test_the_claim_expiry_is_a_pool_field_validated_with_its_name(monkeypatch):
    monkeypatch.setattr(pay_claim, "delay", lambda *args, **kwargs: None)  # as above: this test's claim stays unpaid
    staff = make_staff()
    contact = make_contact(staff)
    pool = rp.redpacket_pool_create(campaign_id=None, budget_fen=300, count=1, mode="fixed", expires_at=later(days=1),
                                    claim_expiry_hours=2)  # fmt: skip
    rp.redpacket_pool_activate(pool.id)
    claim_id = rp.redpacket_claim(pool_id=pool.id, contact_id=contact.id).claim_id
    _aged(claim_id, 1.5)
    assert expire_unpaid_claims() == []
    _aged(claim_id, 2.5)
    assert expire_unpaid_claims() == [claim_id]
    assert rp.redpacket_reconcile(pool.id)["balanced"]
    for bad in (0, 1000, "24"):
        with pytest.raises(rp.ApplicationError) as refused:
            rp.redpacket_pool_create(campaign_id=None, budget_fen=300, count=1, mode="fixed",
                                     expires_at=later(days=1), claim_expiry_hours=bad)  # fmt: skip
        assert refused.value.field == "claim_expiry_hours"
