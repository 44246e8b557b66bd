"""Red packets end to end against the simulator: the shopper claims through the link in the campaign message,
the worker pays through the pay API; SYSTEMERROR and a killed payout process never double-pay."""

from __future__ import annotations

import re
import subprocess
import sys
import time

import pytest
from django.db import connection

from crm.models import CampaignRecipient, MassMessage, RedPacketClaim, RedPacketPool
from crm.services import campaign_runs
from crm.services import campaigns as svc
from crm.services import redpackets as rp
from crm.tasks.campaigns import poll_mass_message_results
from crm.tasks.redpackets import pay_claim, refund_expired_pools
from tests.conftest import ROOT, wait_for, worker_env
from tests.crm.campaigns.conftest import befriend, later, make_staff

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.worker]
PAY_PATH = "mch/mmpaymkttransfers/sendworkwxredpack"


def _packs(sim, billno: str | None = None) -> list[dict]:
    packs = sim.call("GET", "pay/redpacks")["redpacks"]
    return [p for p in packs if billno is None or p["mch_billno"] == billno]


def _balance(sim) -> int:
    return sim.call("GET", "pay/redpacks")["merchant_balance_fen"]


def _rp_campaign(sim, staff_userid: str, shoppers: int, **red_packet):
    sim.member(staff_userid)
    staff = make_staff(staff_userid)
    contacts = [befriend(sim, staff, f"Shopper {i}") for i in range(shoppers)]
    red_packet.setdefault("expires_at", later(hours=2))
    campaign = svc.campaign_create(name="11.11 red packets", text="A red packet for you:", red_packet=red_packet)
    return campaign, contacts


def test_shopper_claims_through_the_message_link_and_is_paid_once(sim, celery_worker):
    sim.call("PATCH", "corp", confirm_delay_seconds=0)
    campaign, (s1, _s2) = _rp_campaign(sim, "grace", 2, budget_fen=700, count=2, mode="lucky", max_fen=600)
    balance = _balance(sim)
    campaign_runs.campaign_launch(campaign.id)
    # One link for everyone (WeChat OAuth says who opens it): one task for the sender, both shoppers in it.
    wait_for(lambda: MassMessage.objects.filter(campaign=campaign, status="created").count() == 1,
             message="one task for the sender")

    def delivered():
        poll_mass_message_results.delay()
        return set(CampaignRecipient.objects.filter(campaign=campaign).values_list("status", flat=True)) == {
            "delivered"}

    wait_for(delivered, timeout=30, interval=0.5, message="messages delivered")
    inbox = sim.call("GET", f"shoppers/{s1.external_userid}/inbox")["messages"]
    texts = [m["text"] for m in inbox if m["kind"] == "mass"]
    assert len(texts) == 1, inbox
    others = [m["text"] for m in sim.call("GET", f"shoppers/{_s2.external_userid}/inbox")["messages"]
              if m["kind"] == "mass"]
    assert others == texts  # the very same message
    link = re.search(r"https?://\S+/m/\S+/", texts[0]).group(0)

    page = sim.call("POST", f"shoppers/{s1.external_userid}/open_link", url=link)
    assert page["status"] == 200 and 'method="post"' in page["body"]
    claimed = sim.call("POST", f"shoppers/{s1.external_userid}/open_link", url=link, method="POST",
                       data={"claim": "1"})
    assert claimed["status"] == 200
    amount = int(re.search(r'data-amount-fen="(\d+)"', claimed["body"]).group(1))
    again = sim.call("POST", f"shoppers/{s1.external_userid}/open_link", url=link, method="POST",
                     data={"claim": "1"})
    assert 'data-status="already_claimed"' in again["body"]  # the page speaks Chinese by default; its state does not

    claim = wait_for(lambda: RedPacketClaim.objects.filter(contact=s1, status="paid").first(), timeout=30,
                     message="claim paid")
    assert claim.amount_fen == amount and 100 <= amount <= 600
    packs = _packs(sim, claim.billno)
    assert len(packs) == 1 and packs[0]["total_amount"] == amount
    assert _balance(sim) == balance - amount
    report = rp.redpacket_reconcile(claim.pool_id)
    assert report["balanced"] and report["paid_fen"] == amount and report["claimable_fen"] == 700 - amount


def test_systemerror_is_retried_with_the_same_billno_and_pays_once(sim, celery_worker):
    campaign, (s1,) = _rp_campaign(sim, "heidi", 1, budget_fen=500, count=1, mode="fixed")
    campaign_runs.campaign_launch(campaign.id, enqueue=False)
    pool = RedPacketPool.objects.get(campaign=campaign)
    balance = _balance(sim)
    # The pay API pays, then answers SYSTEMERROR: four times in a row.
    sim.call("POST", "faults", path=PAY_PATH, kind="SYSTEMERROR", count=4)
    assert rp.redpacket_claim(pool_id=pool.id, contact_id=s1.id).status == "claimed"

    claim = wait_for(lambda: RedPacketClaim.objects.filter(pool=pool, status="paid").first(), timeout=40,
                     message="claim paid after SYSTEMERRORs")
    calls = sim.call("GET", "stats")["calls"]
    assert calls.get(PAY_PATH, 0) >= 5, calls  # 4 answered SYSTEMERROR, then the same billno succeeded
    assert len(_packs(sim, claim.billno)) == 1
    assert len(_packs(sim)) == 1
    assert _balance(sim) == balance - 500

    pay_claim.delay(claim.id)  # a duplicate task (e.g. the stuck-payout sweeper): nothing more is paid
    time.sleep(1.5)
    assert len(_packs(sim)) == 1 and _balance(sim) == balance - 500


def test_a_payout_process_killed_mid_call_never_double_pays(sim, celery_worker, live_stack):
    campaign, (s1,) = _rp_campaign(sim, "ivan", 1, budget_fen=800, count=1, mode="fixed")
    campaign_runs.campaign_launch(campaign.id, enqueue=False)
    pool = RedPacketPool.objects.get(campaign=campaign)
    balance = _balance(sim)
    # The pay API is slow: the payout process will be inside the call when it dies.
    sim.call("POST", "faults", path=PAY_PATH, kind="slow", delay_ms=3000, count=2)
    # Claim without the queued payout reaching the worker first: the claim row, written as the service does.
    outcome = rp.redpacket_claim(pool_id=pool.id, contact_id=s1.id)
    claim_id = outcome.claim_id
    # Whatever the worker does with its queued task, a separate process runs the payout and is killed mid-call.
    env = worker_env(live_stack)
    code = ("import django; django.setup(); from crm.services.payouts import claim_payout; "
            f"claim_payout({claim_id})")
    proc = subprocess.Popen([sys.executable, "-c", code], cwd=ROOT, env=env)
    try:
        wait_for(lambda: RedPacketClaim.objects.get(id=claim_id).status in ("paying", "paid"), timeout=20,
                 message="payout started")
        time.sleep(0.8)
        proc.kill()
        proc.wait()
    finally:
        if proc.poll() is None:
            proc.kill()
    wait_for(lambda: len(_packs(sim)) >= 1, timeout=20, message="the pay API finished the killed call")

    pay_claim.delay(claim_id)  # redelivery / the sweeper: same billno
    claim = wait_for(lambda: RedPacketClaim.objects.filter(id=claim_id, status="paid").first(), timeout=30,
                     message="claim paid")
    assert len(_packs(sim)) == 1 and _packs(sim)[0]["mch_billno"] == claim.billno
    assert _balance(sim) == balance - 800
    assert rp.redpacket_reconcile(pool.id)["balanced"]
    connection.close()


def test_expired_pool_is_refunded_by_the_beat_task(sim, celery_worker):
    campaign, contacts = _rp_campaign(sim, "judy", 2, budget_fen=1000, count=4, mode="fixed")
    campaign_runs.campaign_launch(campaign.id, enqueue=False)
    pool = RedPacketPool.objects.get(campaign=campaign)
    rp.redpacket_claim(pool_id=pool.id, contact_id=contacts[0].id)
    RedPacketPool.objects.filter(id=pool.id).update(expires_at=later(seconds=-1))
    refund_expired_pools.delay()
    wait_for(lambda: RedPacketPool.objects.get(id=pool.id).status == "refunded", message="pool refunded")
    wait_for(lambda: RedPacketClaim.objects.filter(pool=pool, status="paid").exists(), message="claim paid")
    report = rp.redpacket_reconcile(pool.id)
    assert report["refunded_fen"] == 750 and report["paid_fen"] == 250 and report["balanced"]


def test_a_refused_payout_fails_and_can_be_retried_with_the_same_billno(sim, celery_worker):
    from crm.services.payouts import claim_payout_retry

    campaign, (s1,) = _rp_campaign(sim, "leo", 1, budget_fen=300, count=1, mode="fixed")
    campaign_runs.campaign_launch(campaign.id, enqueue=False)
    pool = RedPacketPool.objects.get(campaign=campaign)
    sim.call("PATCH", "corp", merchant_balance_fen=0)  # NOTENOUGH: retrying the same request cannot help
    claim_id = rp.redpacket_claim(pool_id=pool.id, contact_id=s1.id).claim_id
    claim = wait_for(lambda: RedPacketClaim.objects.filter(id=claim_id, status="failed").first(), timeout=30,
                     message="payout failed")
    assert "NOTENOUGH" in claim.last_error and _packs(sim) == []
    report = rp.redpacket_reconcile(pool.id)
    assert report["failed_fen"] == 300 and report["balanced"]

    sim.call("PATCH", "corp", merchant_balance_fen=1_000_000)
    assert claim_payout_retry(claim_id)
    claim = wait_for(lambda: RedPacketClaim.objects.filter(id=claim_id, status="paid").first(), timeout=30,
                     message="paid after top-up")
    assert [p["mch_billno"] for p in _packs(sim)] == [claim.billno]


def test_a_payout_out_of_retries_fails_with_its_reason_and_is_retried_with_the_same_billno(sim):
    campaign, (s1,) = _rp_campaign(sim, "judy", 1, budget_fen=300, count=1, mode="fixed")
    campaign_runs.campaign_launch(campaign.id, enqueue=False)
    pool = RedPacketPool.objects.get(campaign=campaign)
    balance = _balance(sim)
    # WeChat Pay stays busy, through the task's last retry (run here; a worker may also be trying it).
    sim.call("POST", "faults", path=PAY_PATH, kind="SYSTEMERROR", count=1000)
    claim_id = rp.redpacket_claim(pool_id=pool.id, contact_id=s1.id).claim_id
    billno = RedPacketClaim.objects.get(id=claim_id).billno
    result = pay_claim.apply(args=[claim_id], retries=pay_claim.max_retries)
    sim.call("DELETE", "faults")
    claim = RedPacketClaim.objects.get(id=claim_id)
    assert result.get() == "failed" and claim.status == "failed"  # not "paying" forever
    assert "gave up after 13 tries" in claim.last_error and "SYSTEMERROR" in claim.last_error
    assert rp.redpacket_reconcile(pool.id)["failed_fen"] == 300

    # The console's retry (the merchant account is fine again): queued, then paid once, with the same billno.
    from crm.services.payouts import claim_payout, claim_payout_retry

    assert claim_payout_retry(claim_id)
    assert RedPacketClaim.objects.get(id=claim_id).status == "received"
    assert claim_payout(claim_id) == "paid"
    claim = RedPacketClaim.objects.get(id=claim_id)
    assert claim.billno == billno and claim.last_error == ""
    assert len(_packs(sim, billno)) == 1 and _balance(sim) == balance - 300
