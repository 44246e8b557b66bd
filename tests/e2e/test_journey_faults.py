"""Faults during the journey: `manage.py simulate --faults 0.1` (about a tenth of WeCom and pay calls answer 45009,
42001, 5xx, a timeout or slowly; the pay API also SYSTEMERROR after paying) with its Redis restarted once in the
middle, against a run of the same seed without either. Every figure the journey reports is the same, and the money
reconciles: the red-packet budget, what the pay API really paid, and the points ledger.

Both runs are the operator's command as a child process (its own CRM server, simulator and Celery worker process)
on the test database, each with a Redis of its own: a private redis-server with an append-only file, so that the
restart is a real Redis restart (the shared Redis of the other tests is never touched)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
from django.core.management import call_command
from django.db.models import Sum

from crm.embedded_redis import die_with_parent
from crm.localstack import ROOT, database_url_for_children
from crm.models import CallbackEvent, RedPacketClaim
from loyalty.models import Card, PointsLedger, Purchase
from tests import redis_server
from tests.redis_server import PrivateRedis
from wecom_sim.models import SimRedPack

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.worker]

CUSTOMERS, SEED = 8, 5
# How long a run took is no figure of the world it built; a pool's id is a database key.
NOT_FIGURES = {"seconds"}


@pytest.fixture
def private_redis(tmp_path):
    yield from redis_server.servers(tmp_path)


def simulate(server: PrivateRedis, log: Path, *options: str, during=None) -> dict:
    """`manage.py simulate` as an operator runs it, on this Redis and the test database; its figures.
    `during(proc)` is called every 0.2 s while it runs."""
    env = dict(
        os.environ,
        DJANGO_SETTINGS_MODULE="crm.settings",
        DATABASE_URL=database_url_for_children(),
        REDIS_URL=server.url,
        WECOM_SIM_ENABLED="1",
        # A timeout fault answers only after the client gave up: short, so a tenth of calls failing stays quick.
        WECOM_HTTP_TIMEOUT="1",
        WECOM_MASS_SEND_TIMEOUT="2",
        WECOM_RETRY_BASE_DELAY="0.05",
        WECOM_RETRY_MAX_DELAY="1",
        PYTHONUNBUFFERED="1",
    )
    argv = [sys.executable, "manage.py", "simulate", "--customers", str(CUSTOMERS), "--seed", str(SEED),
            "--timeout", "60", *options]  # fmt: skip
    with open(log, "wb") as err:
        proc = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=err,
                                preexec_fn=die_with_parent)  # fmt: skip
        while proc.poll() is None:
            if during:
                during(proc)
            time.sleep(0.2)
        out = proc.stdout.read().decode()
    if proc.returncode != 0:
        tail = log.read_text(errors="replace")[-4000:]
        pytest.fail(f"simulate {' '.join(options)} exited with {proc.returncode}:\n{out[-2000:]}\n{tail}")
    return json.loads(out.strip().splitlines()[-1])


def comparable(figures: dict) -> dict:
    out = {k: v for k, v in figures.items() if k not in NOT_FIGURES}
    out["reconciliation"] = {k: v for k, v in figures["reconciliation"].items() if k != "pool_id"}
    return out


def assert_money_reconciles(figures: dict) -> None:
    rec = figures["reconciliation"]
    assert figures["reconciled"] is True and rec["balanced"] is True, rec
    assert rec["mismatched_claims"] == 0
    assert rec["budget_fen"] == rec["paid_fen"] + rec["refunded_fen"] + rec["claimable_fen"], rec
    assert rec["paying_fen"] == rec["pending_fen"] == rec["queued_fen"] == rec["failed_fen"] == 0, rec
    # What the pay API really paid (the simulator's own rows): once per claim, no more, no less.
    paid = RedPacketClaim.objects.filter(status=RedPacketClaim.Status.PAID)
    assert SimRedPack.objects.count() == paid.count() == figures["red_packets_claimed"]
    sim_paid = SimRedPack.objects.aggregate(s=Sum("total_amount"))["s"]
    assert sim_paid == figures["red_packets_paid_fen"] == rec["paid_fen"] == rec["budget_fen"]  # every packet
    # Points: one credit per purchase, every balance the sum of its ledger.
    assert PointsLedger.objects.filter(delta__gt=0).count() == Purchase.objects.count() == figures["scans"]
    assert PointsLedger.objects.aggregate(s=Sum("delta"))["s"] == figures["points_credited"]
    for card in Card.objects.all():
        assert card.points_balance == sum(card.ledger.values_list("delta", flat=True)), card.pk
    assert CallbackEvent.objects.exclude(status=CallbackEvent.Status.APPLIED).count() == 0


@pytest.mark.timeout(300)
def test_faults_and_a_redis_restart_change_no_figure(private_redis, tmp_path):
    baseline = simulate(private_redis("calm"), tmp_path / "calm.log")
    assert baseline["contacts"] == CUSTOMERS and baseline["red_packets_claimed"] >= 1, baseline
    assert_money_reconciles(baseline)

    call_command("flush", interactive=False, verbosity=0)  # the second run starts from an empty database too
    server = private_redis("faults")
    restarted = []

    def restart_in_the_middle(proc) -> None:
        # The first shopper has claimed: the campaign is out, payouts are in flight and claims keep coming.
        if not restarted and RedPacketClaim.objects.exists():
            server.restart(down_seconds=1.0)
            restarted.append(time.monotonic())

    stormy = simulate(server, tmp_path / "faults.log", "--faults", "0.1", during=restart_in_the_middle)
    assert restarted, "the journey ended before Redis could be restarted"
    # Faults really happened: simulate reports what the simulator counted, calls of the CRM's worker included.
    injected = re.search(r"faults injected: (\d+)", (tmp_path / "faults.log").read_text(errors="replace"))
    assert injected and int(injected.group(1)) >= 1, "no fault was injected"
    assert comparable(stormy) == comparable(baseline)
    assert_money_reconciles(stormy)
