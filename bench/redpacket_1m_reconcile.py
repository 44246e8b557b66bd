"""Benchmark `redpacket_1m_reconcile`: BENCH_RP_1M_CLAIMS claims (default 1,000,000) over BENCH_RP_1M_POOLS pools
(default 1,000), with a private redis-server (its own port, no persistence) SIGKILLed and restarted at random while
the claims run; then the exact reconciliation of every pool, timed.

Each pool has 90% as many packets as customers, so every pool runs out (the overspend check bites); every customer
also taps a second time in one pair out of ten (the exactly-once check bites). BENCH_RP_1M_PROCS processes claim
through the service (`redpacket_claim`: the Lua script, then the claim row committed), in a shuffled order; a claim
whose Redis went away mid-call is retried by its customer, as a customer taps again. Every restart loses the whole
Redis state, which each pool rebuilds from the database on its next claim.
Checked: no pool over budget or over its count (overspend 0), no (pool, contact) twice (duplicate claims 0), every
pool's reconciliation balanced (budget = paid + paying + failed + refunded + reserved + claimable, Redis = DB).
NOT covered yet: payouts with a Celery worker killed midway (the payout path needs the simulator stack; its
exactly-once is tests/crm/campaigns/test_payout_live.py's), so duplicate payouts are not measured here.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CLAIMS = int(os.environ.get("BENCH_RP_1M_CLAIMS", 1_000_000))
POOLS = int(os.environ.get("BENCH_RP_1M_POOLS", 1_000))
PROCS = int(os.environ.get("BENCH_RP_1M_PROCS", 4))
RESTART_EVERY = float(os.environ.get("BENCH_RP_1M_RESTART_SECONDS", 8))  # mean seconds between Redis kills

SEED = """
import json, sys
from datetime import timedelta
import django
django.setup()
from django.utils import timezone
from crm.models import Contact
from crm.services.redpackets import redpacket_pool_activate, redpacket_pool_create
pools, per = int(sys.argv[1]), int(sys.argv[2])
contacts = Contact.objects.bulk_create([Contact(external_userid=f"wmBench1m{i:08d}", name="B") for i in range(per)])
count = max(1, per * 9 // 10)
ids = []
for _ in range(pools):
    pool = redpacket_pool_create(campaign_id=None, budget_fen=count * 200, count=count, mode="lucky", min_fen=100,
                                 max_fen=1000, expires_at=timezone.now() + timedelta(hours=6))
    redpacket_pool_activate(pool.id)
    ids.append(pool.id)
json.dump({"pools": ids, "contacts": [c.id for c in contacts]}, open(sys.argv[3], "w"))
"""
CLAIMER = """
import json, random, sys, time
import django
django.setup()
import redis
from django.db import close_old_connections
from crm.errors import ApplicationError
from crm.services.redpackets import redpacket_claim
pairs = json.load(open(sys.argv[1]))
statuses, retries = {}, 0
for pool, contact in pairs:
    while True:
        try:
            outcome = redpacket_claim(pool_id=pool, contact_id=contact)
            statuses[outcome.status] = statuses.get(outcome.status, 0) + 1
            break
        except (redis.RedisError, ApplicationError, OSError):  # Redis restarting: the customer taps again
            retries += 1
            close_old_connections()
            time.sleep(0.05)
json.dump({"statuses": statuses, "retries": retries}, open(sys.argv[2], "w"))
"""
CHECK = """
import json, sys, time
import django
django.setup()
from django.db import connection
from crm.models import RedPacketPool
from crm.services.redpackets import redpacket_reconcile
with connection.cursor() as cur:
    cur.execute("SELECT count(*) FROM (SELECT pool_id, contact_id FROM crm_redpacketclaim GROUP BY 1, 2 "
                "HAVING count(*) > 1) d")
    duplicates = cur.fetchone()[0]
    cur.execute("SELECT count(*) FROM crm_redpacketpool p JOIN (SELECT pool_id, sum(amount_fen) s, count(*) n "
                "FROM crm_redpacketclaim GROUP BY 1) c ON c.pool_id = p.id WHERE c.s > p.budget_fen OR c.n > p.count")
    overspent = cur.fetchone()[0]
    cur.execute("SELECT count(*) FROM crm_redpacketclaim")
    claims = cur.fetchone()[0]
began = time.perf_counter()
reports = [redpacket_reconcile(pid) for pid in RedPacketPool.objects.order_by("id").values_list("id", flat=True)]
seconds = time.perf_counter() - began
json.dump({"duplicates": duplicates, "overspent": overspent, "claims": claims, "seconds": seconds,
           "unbalanced": [r["pool_id"] for r in reports if not r["balanced"]],
           "exhausted": sum(1 for r in reports if r["claimable_fen"] == 0)}, open(sys.argv[1], "w"))
"""


def _redis(port: int, log) -> subprocess.Popen:
    return subprocess.Popen(["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                             "--appendonly", "no"], stdout=log, stderr=log, start_new_session=True)  # fmt: skip


def _wait_redis(port: int) -> None:
    import redis

    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            if redis.Redis(port=port).ping():
                return
        except redis.RedisError:
            time.sleep(0.05)
    raise RuntimeError("redis-server did not start")


def run() -> list[dict]:
    from bench.callback_ingest import _BenchDatabase, _free_port

    tmp = Path(tempfile.mkdtemp(prefix="crm-bench-rp1m-"))
    database = _BenchDatabase(tmp)
    port = _free_port()
    env = dict(os.environ, DJANGO_SETTINGS_MODULE="crm.settings", DATABASE_URL=database.url, VAR_DIR=str(tmp),
               REDIS_URL=f"redis://127.0.0.1:{port}/0", DEBUG="false", LOG_LEVEL="ERROR",
               REDPACKET_APPROVAL_THRESHOLD_FEN=str(10**12))  # fmt: skip
    env.pop("CELERY_TASK_ALWAYS_EAGER", None)
    log = open(tmp / "bench.log", "wb")  # noqa: SIM115  (closed in finally)
    server, claimers, restarts = None, [], 0
    per = max(1, CLAIMS // POOLS)
    try:
        server = _redis(port, log)
        _wait_redis(port)
        database.create(env, log)
        subprocess.run([sys.executable, "-c", SEED, str(POOLS), str(per), str(tmp / "seed.json")], cwd=ROOT, env=env,
                       check=True, stdout=log, stderr=log)  # fmt: skip
        seed = json.loads((tmp / "seed.json").read_text())
        rng = random.Random(11)
        pairs = [(p, c) for p in seed["pools"] for c in seed["contacts"]]
        pairs += rng.sample(pairs, len(pairs) // 10)  # second taps
        rng.shuffle(pairs)
        for i in range(PROCS):
            (tmp / f"pairs{i}.json").write_text(json.dumps(pairs[i::PROCS]))
        began = time.monotonic()
        claimers = [subprocess.Popen([sys.executable, "-c", CLAIMER, str(tmp / f"pairs{i}.json"),
                                      str(tmp / f"out{i}.json")], cwd=ROOT, env=env, stdout=log, stderr=log)
                    for i in range(PROCS)]  # fmt: skip
        next_kill = time.monotonic() + rng.expovariate(1 / RESTART_EVERY)
        while any(c.poll() is None for c in claimers):
            if time.monotonic() >= next_kill:
                os.killpg(server.pid, signal.SIGKILL)  # every key gone: each pool rebuilds from the DB
                server.wait()
                server = _redis(port, log)
                _wait_redis(port)
                restarts += 1
                next_kill = time.monotonic() + rng.expovariate(1 / RESTART_EVERY)
            time.sleep(0.05)
        claim_seconds = time.monotonic() - began
        if any(c.returncode for c in claimers):
            raise RuntimeError("a claimer failed: " + (tmp / "bench.log").read_text(errors="replace")[-2000:])
        outs = [json.loads((tmp / f"out{i}.json").read_text()) for i in range(PROCS)]
        subprocess.run([sys.executable, "-c", CHECK, str(tmp / "check.json")], cwd=ROOT, env=env, check=True,
                       stdout=log, stderr=log)  # fmt: skip
        check = json.loads((tmp / "check.json").read_text())
    finally:
        for c in claimers:
            if c.poll() is None:
                c.kill()
        if server is not None and server.poll() is None:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()
        log.close()
        database.drop()
        shutil.rmtree(tmp, ignore_errors=True)
    statuses: dict[str, int] = {}
    for out in outs:
        for k, v in out["statuses"].items():
            statuses[k] = statuses.get(k, 0) + v
    retries = sum(o["retries"] for o in outs)
    met = check["duplicates"] == 0 and check["overspent"] == 0 and not check["unbalanced"]
    return [{
        "name": "redpacket_1m_reconcile", "value": round(check["seconds"], 2), "unit": "s (reconcile all pools)",
        "baseline": None, "ratio": None,
        "target": "0 overspend, 0 duplicate claims, reconciliation exact (payouts with a killed worker: not yet)",
        "met": met,
        "note": (f"{len(pairs):,} claim attempts ({POOLS:,} pools x {per:,} customers + 10% second taps; "
                 f"BENCH_RP_1M_CLAIMS={CLAIMS:,}), {PROCS} claimer processes, {claim_seconds:.1f} s of claims "
                 f"({len(pairs) / claim_seconds:,.0f}/s), Redis SIGKILLed and restarted {restarts} times "
                 f"({retries} claim calls retried). Outcomes {statuses}. DB: {check['claims']:,} claims, duplicates "
                 f"{check['duplicates']}, pools over budget or count {check['overspent']}, pools exhausted "
                 f"{check['exhausted']}/{POOLS}, unbalanced {check['unbalanced'][:10]}. Reconciling every pool took "
                 f"{check['seconds']:.2f} s. {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}"),
    }]  # fmt: skip
