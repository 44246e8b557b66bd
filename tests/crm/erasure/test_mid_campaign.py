"""A person erased in the middle of a running red-packet campaign: the planned message is not sent to them, the
next run does not plan them, their unpaid packet is not paid (refunded to the pool) and they cannot claim again;
a packet already paid stays on record; the pool's money still reconciles, before and after its refund."""

from __future__ import annotations

import pytest

from crm.errors import NotFound
from crm.models import CampaignRecipient, Contact, MassMessage, RedPacketClaim, RedPacketPool
from crm.services import campaign_runs
from crm.services import campaigns as svc
from crm.services import redpackets as rp
from crm.services.erasure import contact_erase
from crm.services.payouts import claim_payout
from crm.services.pushes import mass_message_send
from crm.wecom.client import get_client
from tests.crm.campaigns.conftest import later
from tests.crm.sending.conftest import sim, world  # noqa: F401 (the fixture)

pytestmark = [pytest.mark.django_db(transaction=True)]


def _packs(simulator, billno: str) -> list[dict]:
    return [p for p in simulator.call("GET", "pay/redpacks")["redpacks"] if p["mch_billno"] == billno]


def test_erased_mid_campaign_gets_no_message_and_no_payout_and_the_pool_reconciles(sim):  # noqa: F811
    sim.call("PATCH", "corp", confirm_delay_seconds=None)
    (_ann,), eids = world(["ann"], 4)
    unpaid, paid, c, d = (Contact.objects.get(external_userid=e) for e in eids)
    campaign = svc.campaign_create(name="11.11", text="A red packet for you:", red_packet={
        "budget_fen": 2000, "count": 4, "mode": "fixed", "expires_at": later(hours=2)})
    campaign_runs.campaign_launch(campaign.id, enqueue=False)
    pool = RedPacketPool.objects.get(campaign=campaign)
    message = MassMessage.objects.get(campaign=campaign)
    assert message.recipients.filter(status="pending").count() == 4

    # Two of them open the pool first: one is paid, the other's payout is still queued.
    assert rp.redpacket_claim(pool_id=pool.id, contact_id=unpaid.id).status == "claimed"
    assert rp.redpacket_claim(pool_id=pool.id, contact_id=paid.id).status == "claimed"
    paid_claim = RedPacketClaim.objects.get(contact=paid)
    assert claim_payout(paid_claim.id) == "paid"
    unpaid_claim = RedPacketClaim.objects.get(contact=unpaid)

    # Both are erased while the campaign runs and the pool is live.
    for person in (unpaid, paid):
        contact_erase(person.id, actor="dpo", reason="customer request")
    assert rp.redpacket_reconcile(pool.id)["balanced"]

    # The queued payout runs now: nothing is paid, the claim was refunded to the pool.
    assert claim_payout(unpaid_claim.id) == "expired"
    assert _packs(sim, unpaid_claim.billno) == []
    unpaid_claim.refresh_from_db()
    assert (unpaid_claim.status, unpaid_claim.amount_fen, unpaid_claim.openid) == ("expired", 500, "")
    # The paid packet stays on record (amount, bill number, the pay API's id), anonymised.
    paid_claim.refresh_from_db()
    assert paid_claim.status == "paid" and paid_claim.amount_fen == 500 and paid_claim.send_listid
    assert len(_packs(sim, paid_claim.billno)) == 1 and paid_claim.openid == ""
    # Their old link or session claims nothing more.
    with pytest.raises(NotFound):
        rp.redpacket_claim(pool_id=pool.id, contact_id=unpaid.id)

    # The planned message goes to the other two only.
    assert mass_message_send(message.id) == "created"
    message.refresh_from_db()
    sent_to = {r["external_userid"] for r in get_client().iter_groupmsg_send_result(message.msgid, "ann")}
    assert sent_to == {c.external_userid, d.external_userid}
    rows = {r.contact_id: r for r in CampaignRecipient.objects.filter(mass_message=message)}
    assert {(rows[p.id].status, rows[p.id].reason) for p in (unpaid, paid)} == {("excluded", "erased")}
    assert {rows[p.id].external_userid for p in (unpaid, paid)} == {f"erased-{unpaid.id}", f"erased-{paid.id}"}

    # The next campaign does not even plan them.
    follow_up = svc.campaign_create(name="11.12", text="One more day")
    campaign_runs.campaign_launch(follow_up.id, enqueue=False)
    assert set(CampaignRecipient.objects.filter(campaign=follow_up).values_list("contact_id", flat=True)) == {
        c.id, d.id}

    # Another customer claims; budget = paid + pending + refunded + claimable, to the fen.
    assert rp.redpacket_claim(pool_id=pool.id, contact_id=d.id).status == "claimed"
    report = rp.redpacket_reconcile(pool.id)
    assert report["balanced"] and report["mismatched_claims"] == 0
    assert (report["paid_fen"], report["pending_fen"], report["expired_claims_fen"], report["claimable_fen"]) == (
        500, 500, 500, 500)
    # And at expiry the rest is refunded: still exact.
    RedPacketPool.objects.filter(id=pool.id).update(expires_at=later(seconds=-1))
    refund = rp.redpacket_refund_expired(pool.id)
    assert refund.amount_fen == 500
    final = rp.redpacket_reconcile(pool.id)
    assert final["balanced"] and final["refunded_fen"] == 1000 and final["paid_fen"] == 500
