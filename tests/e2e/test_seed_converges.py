"""`manage.py seed_demo` converges: killed at several points (once with the worker down too, as when a whole
`make run` dies), the next run finishes with the demo's state, makes no second shopper, and reaches the card page
of shoppers whose welcome code expired meanwhile another way. A run over a finished seed changes nothing.

The seed runs as a subprocess against the live stack (CRM and simulator over HTTP, a real Celery worker), pointed
at the test database and Redis, as `make run` runs it."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from datetime import timedelta

import pytest
from django.conf import settings
from django.utils import timezone

from crm.models import (
    CallbackEvent,
    Campaign,
    CampaignRecipient,
    ConsentRecord,
    Contact,
    FollowRelation,
    GroupMember,
    RedPacketClaim,
    RedPacketPool,
    VipInvite,
    WelcomeMessage,
)
from crm.services.readiness import seed_state
from loyalty.demo import FINISHED_CAMPAIGN, TONIGHT_CAMPAIGN, demo_plan
from loyalty.models import Purchase
from loyalty.sim_admin import SimAdmin
from tests.conftest import ROOT, worker_env
from wecom_sim.models import SimFriendship, SimShopper

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.worker]

CUSTOMERS = 12
LOG = ROOT / "var" / "test-seed-converges.log"


class Seed:
    def __init__(self, base_url: str) -> None:
        self.env = worker_env(base_url)
        self.cmd = [sys.executable, "manage.py", "seed_demo", "--base-url", base_url,
                    "--customers", str(CUSTOMERS), "--timeout", "60"]
        LOG.parent.mkdir(parents=True, exist_ok=True)

    def start(self) -> subprocess.Popen:
        with open(LOG, "ab") as log:  # the child keeps its own copy of the descriptor
            log.write(f"\n--- seed_demo started at {time.strftime('%X')}\n".encode())
            log.flush()
            return subprocess.Popen(self.cmd, cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT)

    def kill_when(self, proc: subprocess.Popen, predicate, what: str, timeout: float = 60) -> None:
        """SIGKILL the seed as soon as predicate() holds (it must still be running then)."""
        deadline = time.monotonic() + timeout
        while not predicate():
            assert proc.poll() is None, f"the seed ended (rc {proc.returncode}) before {what}; see {LOG}"
            assert time.monotonic() < deadline, f"timed out waiting for {what}; see {LOG}"
            time.sleep(0.05)
        proc.kill()
        proc.wait()

    def run(self, timeout: float = 150) -> tuple[str, dict]:
        done = subprocess.run(self.cmd, cwd=ROOT, env=self.env, capture_output=True, text=True, timeout=timeout)
        with open(LOG, "a") as log:
            log.write(f"\n--- seed_demo to the end\n{done.stdout}{done.stderr}")
        tail = (done.stdout + done.stderr)[-4000:]
        assert done.returncode == 0, f"seed_demo failed ({done.returncode}):\n{tail}"
        ready = [line for line in done.stdout.splitlines() if line.startswith("demo data ready: ")]
        assert ready, done.stdout
        return done.stdout, json.loads(ready[-1].removeprefix("demo data ready: "))


def _plan_contacts():
    return Contact.objects.filter(external_userid__in=[s.external_userid for s in demo_plan(CUSTOMERS)])


@pytest.mark.timeout(400)
def test_seed_converges_after_kills_and_reruns_as_a_no_op(live_stack, celery_worker, redis_client):
    plan = demo_plan(CUSTOMERS)
    sim = SimAdmin(live_stack, settings.WECOM_SIM["ADMIN_KEY"])
    seed = Seed(live_stack)
    try:
        # 1. The whole run dies while shoppers add the brand: the worker is down, so their add callbacks are
        #    stored but not processed. A minute passes before the next start: their welcome codes expire.
        celery_worker.stop()
        proc = seed.start()
        seed.kill_when(proc, lambda: SimFriendship.objects.count() >= CUSTOMERS // 2, "shoppers adding the brand")
        assert Contact.objects.filter(channel__isnull=False).count() == 0  # nothing was processed
        assert seed_state()["state"] == "seeding"
        offset = sim.get("clock")["now"] - time.time()
        sim.post("clock/advance", {"seconds": 60 - offset})
        celery_worker.start(redis_client)

        # 2. Killed again while shoppers open their cards (consent, till scans). It must not add shoppers for the
        #    adds whose callbacks are still being applied.
        proc = seed.start()
        seed.kill_when(proc, lambda: ConsentRecord.objects.filter(purpose="marketing").count() >= 3,
                       "consent decisions on the card page")

        # 3. Killed once the purchases are made, while VIPs are invited to the VIP group.
        receipts = sum(len(s.amounts_fen) for s in plan)
        proc = seed.start()
        seed.kill_when(proc, lambda: Purchase.objects.count() == receipts and VipInvite.objects.exists(),
                       "all purchases and a VIP invite")

        # 4. Killed while the finished campaign is on its way.
        proc = seed.start()
        seed.kill_when(proc, lambda: Campaign.objects.filter(name=FINISHED_CAMPAIGN).exists(),
                       "the demo campaign launched")

        output, figures = seed.run()
    finally:
        if not celery_worker.alive:
            celery_worker.start(redis_client)

    # The demo's state, each shopper once.
    eids = {s.external_userid for s in plan}
    assert set(SimShopper.objects.values_list("external_userid", flat=True)) == eids, "no extra shopper in WeCom"
    assert SimFriendship.objects.count() == CUSTOMERS, "each shopper added one staff member, once"
    assert set(_plan_contacts().filter(channel__isnull=False).values_list("external_userid", flat=True)) == eids
    assert Contact.objects.count() == CUSTOMERS
    days = {c.first_added_at.date() for c in Contact.objects.all()}
    assert len(days) >= 5, f"adds spread over the last 30 days, got {sorted(days)}"
    assert len(set(Contact.objects.values_list("channel", flat=True))) >= 3

    # Welcome codes that expired while everything was down are recorded as expired; those shoppers still
    # opened their card (through the link staff send) and decided on consent.
    expired = WelcomeMessage.objects.filter(status=WelcomeMessage.Status.EXPIRED, errcode=41050)
    assert expired.count() >= CUSTOMERS // 2
    assert not WelcomeMessage.objects.filter(status__in=["pending", "sending"]).exists()
    marketing = ConsentRecord.objects.filter(purpose="marketing")
    staying = [s for s in plan if s.leaves_after_days is None]
    assert marketing.count() == len(staying), "one decision per shopper, none repeated by a re-run"
    assert set(marketing.filter(granted=True).values_list("contact__external_userid", flat=True)) == {
        s.external_userid for s in staying if s.marketing}
    # Those who deleted the staff member again did so days ago (the dashboard's losses).
    leavers = {s.external_userid for s in plan if s.leaves_after_days is not None}
    left = FollowRelation.objects.filter(deleted_by_customer_at__lt=timezone.now() - timedelta(days=1))
    assert leavers and set(left.values_list("contact__external_userid", flat=True)) == leavers

    # Every receipt once; VIPs in the VIP group.
    assert sorted(Purchase.objects.values_list("receipt_id", flat=True)) == sorted(
        s.receipt(k) for s in plan for k in range(len(s.amounts_fen)))
    vips = {s.external_userid for s in plan if s.vip}
    assert vips and set(GroupMember.objects.filter(group__is_vip=True, left_at__isnull=True, contact__isnull=False)
                        .values_list("contact__external_userid", flat=True)) == vips

    # One finished campaign with its results and a live pool; one scheduled for tonight.
    finished = Campaign.objects.get(name=FINISHED_CAMPAIGN)
    assert finished.status == Campaign.Status.DONE
    recipients = {s.external_userid for s in plan if s.vip and s.marketing}
    assert set(CampaignRecipient.objects.filter(campaign=finished, status="delivered")
               .values_list("external_userid", flat=True)) == recipients
    claims = RedPacketClaim.objects.filter(pool__campaign=finished)
    assert set(claims.values_list("contact__external_userid", flat=True)) == {s.external_userid for s in plan
                                                                            if s.claims}
    assert set(claims.values_list("status", flat=True)) == {"paid"}
    assert finished.red_packet_pool.status == RedPacketPool.Status.ACTIVE
    tonight = Campaign.objects.get(name=TONIGHT_CAMPAIGN)
    assert tonight.status == Campaign.Status.SCHEDULED and tonight.scheduled_at.hour == 12  # 20:00 in Shanghai
    assert CallbackEvent.objects.exclude(status=CallbackEvent.Status.APPLIED).count() == 0
    assert seed_state()["state"] == "done"
    assert sim.get("clock")["now"] - time.time() > 0, "the simulated clock is not left in the past"
    assert figures["shoppers"] == CUSTOMERS and figures["vip_in_group"] == len(vips)

    # A run over a finished seed is a quick no-op.
    counts = _counts()
    output, figures = seed.run(timeout=60)
    assert _counts() == counts
    assert [line for line in output.splitlines() if line.strip()] == [output.strip().splitlines()[-1]], output
    assert figures["seconds"] < 5, figures


def _counts() -> dict:
    return {model.__name__: model.objects.count() for model in (
        Contact, ConsentRecord, Purchase, WelcomeMessage, CallbackEvent, VipInvite, GroupMember, Campaign,
        CampaignRecipient, RedPacketClaim, SimShopper, SimFriendship)}

