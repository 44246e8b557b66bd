"""Red-packet claims taken by the ingest server (crm.api.claim_ingest) as production runs it: gunicorn, a uvicorn
worker, a child process on the test database. A burst of claims on a plain pool is taken in groups, each answer
committed before it is given, each packet paid once; what the fast path does not take (a gated pool, the HTML page,
a bad link) is answered by Django in the same process, the same way as the web app."""

from __future__ import annotations

import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests
from django.utils import translation

from crm.api.customer_pages import MESSAGES
from crm.api.throttles import ClaimVisitorThrottle
from crm.embedded_redis import die_with_parent
from crm.localstack import ROOT, child_env
from crm.models import RedPacketClaim, RedPacketPool
from crm.services import campaign_runs
from crm.services import redpackets as rp
from tests.conftest import free_port, wait_for
from tests.crm.campaigns.conftest import make_contact, make_staff
from tests.crm.campaigns.test_payout_live import _balance, _packs, _rp_campaign

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.timeout(240)]

GUNICORN = str(Path(sys.executable).parent / "gunicorn")


@pytest.fixture
def ingest(live_stack, tmp_path):
    port = free_port()
    log = open(tmp_path / "ingest.log", "wb")
    proc = subprocess.Popen(
        [GUNICORN, "-c", "python:crm.gunicorn_ingest_conf", "crm.ingest", "-b", f"127.0.0.1:{port}",
         "--workers", "1"],
        cwd=ROOT, env=child_env(live_stack, LOG_LEVEL="WARNING", REDPACKET_CLAIM_VISITOR_RATE="4/min"),
        stdout=log, stderr=subprocess.STDOUT, preexec_fn=die_with_parent,
    )  # fmt: skip

    def healthy() -> bool:
        assert proc.poll() is None, (tmp_path / "ingest.log").read_text()
        try:
            return requests.get(f"http://127.0.0.1:{port}/healthz", timeout=5).status_code == 200
        except requests.RequestException:
            return False

    wait_for(healthy, timeout=60, message="the ingest server to come up")
    yield f"http://127.0.0.1:{port}"
    proc.terminate()
    proc.wait(30)
    log.close()


def _pool(contacts: int, **extra) -> tuple[RedPacketPool, list]:
    staff = make_staff()
    people = [make_contact(staff) for _ in range(contacts)]
    fields = {"budget_fen": 300 * contacts, "count": contacts, "mode": "lucky", "min_fen": 100, "max_fen": 600,
              "expires_at": _later(), **extra}  # fmt: skip
    pool = rp.redpacket_pool_create(campaign_id=None, **fields)
    rp.redpacket_pool_activate(pool.id)
    return pool, people


def _later():
    from datetime import timedelta

    from django.utils import timezone

    return timezone.now() + timedelta(hours=1)


def _path(pool, contact) -> str:
    return "/m/rp/" + rp.claim_url(pool.id, contact.id).split("/m/rp/")[1]


def test_a_burst_of_claims_is_committed_before_each_answer_and_paid_once(ingest, sim, celery_worker, tmp_path):
    sim.call("PATCH", "corp", confirm_delay_seconds=0)
    campaign, people = _rp_campaign(sim, "burst", 30, budget_fen=9000, count=30, mode="lucky", max_fen=600)
    campaign_runs.campaign_launch(campaign.id, enqueue=False)
    pool = RedPacketPool.objects.get(campaign=campaign)
    balance = _balance(sim)

    def claim(contact):
        return requests.post(f"{ingest}{_path(pool, contact)}?format=json", timeout=30)

    with ThreadPoolExecutor(16) as workers:
        answers = list(workers.map(claim, people))
    assert {a.status_code for a in answers} == {200}, (tmp_path / "ingest.log").read_text()[-3000:]
    bodies = [a.json() for a in answers]
    assert {b["status"] for b in bodies} == {"claimed"}
    with translation.override("zh-hans"):
        assert bodies[0]["message"] == str(MESSAGES["claimed"])  # Chinese by default, as the web app's page
    rows = dict(RedPacketClaim.objects.filter(pool=pool).values_list("contact_id", "amount_fen"))
    # Each acknowledged amount is the committed row's; together they are the whole budget, nothing over.
    assert {b["contact_id"]: b["amount_fen"] for b in bodies} == rows
    assert sum(rows.values()) == pool.budget_fen
    assert not RedPacketClaim.objects.filter(pool=pool, billno=None).exists()

    # A second tap: the same packet, from the row; no second row.
    again = claim(people[0]).json()
    assert again["status"] == "already_claimed" and again["amount_fen"] == rows[people[0].id]
    assert RedPacketClaim.objects.filter(pool=pool).count() == 30

    # Paid once each through the group's task message (pay_claims fans out in the worker).
    wait_for(lambda: RedPacketClaim.objects.filter(pool=pool, status="paid").count() == 30, timeout=90,
             message="every claim paid")
    packs = [p for p in _packs(sim) if p["mch_billno"] in set(RedPacketClaim.objects.values_list("billno", flat=True))]
    assert len(packs) == len({p["mch_billno"] for p in packs}) == 30
    assert _balance(sim) == balance - pool.budget_fen
    report = rp.redpacket_reconcile(pool.id)
    assert report["balanced"] and report["paid_fen"] == pool.budget_fen, report


def test_the_claim_rules_and_answers_are_the_web_apps(ingest):
    pool, (c1, c2, c3) = _pool(3)
    url = f"{ingest}{_path(pool, c1)}"
    english = {"Accept-Language": "en-US,en;q=0.9"}
    first = requests.post(url + "?format=json", headers=english, timeout=30)
    assert first.status_code == 200 and first.json()["message"] == "You got a red packet!"
    assert first.headers["Content-Language"] == "en"
    chinese = requests.post(url, headers={"Accept": "application/json"}, timeout=30).json()
    assert chinese["status"] == "already_claimed" and chinese["message"] != first.json()["message"]

    # The visitor's window is the web app's (4/min in this server): shared keys, whichever server counts.
    for _ in range(2):
        requests.post(url + "?format=json", timeout=30)
    limited = requests.post(url + "?format=json", headers=english, timeout=30)
    assert limited.status_code == 429 and limited.json()["error"]["code"] == "throttled"
    assert 0 < int(limited.headers["Retry-After"]) <= 60
    key = ClaimVisitorThrottle().cache.make_key(f"throttle_redpacket_claim_visitor_{c1.id}:window")
    assert rp.get_redis().zcard(key) == 4

    # A forged link: 403, nothing reserved.
    forged = requests.post(f"{ingest}/m/rp/{'x' * 40}/?format=json", timeout=30)
    assert forged.status_code == 403 and forged.json()["error"]["code"] == "bad_link"

    # The HTML page, and a gated pool's claim, are Django's (in the same process).
    page = requests.get(f"{ingest}{_path(pool, c2)}", timeout=30)
    assert page.status_code == 200 and "<form" in page.text
    gated, (g1,) = _pool(1, gate_game=True)
    locked = requests.post(f"{ingest}{_path(gated, g1)}?format=json", timeout=30)
    assert locked.status_code == 403 and locked.json()["error"]["code"] == "gate_incomplete"
    assert not RedPacketClaim.objects.filter(pool=gated).exists()

    # Exhausted: the last packet goes, then none_left.
    assert requests.post(f"{ingest}{_path(pool, c2)}?format=json", timeout=30).json()["status"] == "claimed"
    assert requests.post(f"{ingest}{_path(pool, c3)}?format=json", timeout=30).json()["status"] == "claimed"
    extra = make_contact(make_staff())
    assert requests.post(f"{ingest}{_path(pool, extra)}?format=json", timeout=30).json()["status"] == "none_left"
    assert rp.redpacket_reconcile(pool.id)["balanced"]
