"""Benchmark `redpacket_1m_reconcile`: BENCH_RP_1M_CLAIMS claims (default 1,000,000) over BENCH_RP_1M_POOLS pools
(default 1,000), with a private redis-server (its own port, no persistence) SIGKILLed and restarted at random while
the claims run; then payouts of BENCH_RP_1M_PAY_POOLS pools through the simulator's pay API by real Celery workers,
one of them SIGKILLed midway; then the exact reconciliation of every pool, timed.

Claims: each pool has 90% as many packets as customers, so every pool runs out (the overspend check bites); every
customer also taps a second time in one pair out of ten (the exactly-once check bites). BENCH_RP_1M_PROCS processes
claim in groups of 64 through the claim server's path (crm.services.claim_batches.claims_take: the throttled claim
script per claim in one pipeline, the group's rows in one transaction), in a shuffled order; a claim whose Redis went
away mid-call is tapped again by its customer. Every restart loses the whole Redis state, which each pool rebuilds
from the database on its next claim.
Payouts: a web server (the simulator mounted in it, as `make run`), two Celery workers (acks_late, a 5 s visibility
timeout); one is SIGKILLed with payouts in flight and another started; a sweep re-queues claims left `received` or
`paying`, as beat's does. A customer gets at most WeChat Pay's 10 packets a day, so at most 10 pools are paid.
Checked: no pool over budget or over its count (overspend 0), no (pool, contact) twice (duplicate claims 0), every
paid claim paid once at the pay API (one red packet per billno, the merchant balance down by exactly the paid sum,
duplicate payouts 0), every pool's reconciliation balanced (budget = paid + paying + failed + refunded + reserved +
claimable, Redis = DB).
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
RESTART_EVERY = float(os.environ.get("BENCH_RP_1M_RESTART_SECONDS", 30))  # mean seconds between Redis kills
PAY_POOLS = min(10, int(os.environ.get("BENCH_RP_1M_PAY_POOLS", 5)))  # WeChat Pay: 10 packets a customer a day
GROUP = 64

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
# The same customers in the simulated WeCom, so the payouts can convert them to openids and pay them.
from wecom_sim.corp import get_corp
from wecom_sim.models import SimShopper
corp = get_corp()
SimShopper.objects.bulk_create([SimShopper(corp=corp, external_userid=c.external_userid, name="B",
                                           openid=f"oBench1m{i:019d}") for i, c in enumerate(contacts)],
                               batch_size=5000)
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
import json, sys, time
import django
django.setup()
import redis
from django.db import close_old_connections
from crm.errors import ApplicationError
from crm.services.claim_batches import ClaimRequest, claims_take
pairs = json.load(open(sys.argv[1]))
group = int(sys.argv[3])
statuses, retries = {}, 0
todo = list(pairs)
while todo:
    batch, todo = todo[:group], todo[group:]
    try:
        answers = claims_take([ClaimRequest(pool, contact, ()) for pool, contact in batch])
    except (redis.RedisError, ApplicationError, OSError):  # Redis restarting: these customers tap again
        retries += len(batch)
        close_old_connections()
        time.sleep(0.05)
        todo = batch + todo
        continue
    for (pool, contact), answer in zip(batch, answers):
        if answer.status in ("retry", "unavailable"):  # a rebuild dropped the reservation: tap again
            retries += 1
            todo.append([pool, contact])
        else:
            statuses[answer.status] = statuses.get(answer.status, 0) + 1
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


QUEUE_PAYOUTS = """
import json, sys
import django
django.setup()
from crm.models import RedPacketClaim
from crm.tasks.redpackets import pay_claims
ids = list(RedPacketClaim.objects.filter(pool_id__in=json.loads(sys.argv[1])).values_list("id", flat=True))
for i in range(0, len(ids), 200):
    pay_claims.delay(ids[i:i + 200])
print(len(ids))
"""
SWEEP = """
import json, sys
import django
django.setup()
from crm.models import RedPacketClaim
from crm.tasks.redpackets import pay_claim
# As beat's stuck-payout sweep (crm.services.payouts.stuck_payout_claim_ids), on a 15 s clock instead of 5 min,
# over the pools being paid: whatever is not settled is queued again (a payout in flight absorbs the duplicate).
for claim_id in RedPacketClaim.objects.filter(pool_id__in=json.loads(sys.argv[1]),
                                              status__in=["received", "paying"]).values_list("id", flat=True):
    pay_claim.delay(claim_id)
"""
# The claims' own payout messages (one per group) wait in the broker until the payout phase; the bench pays the
# chosen pools only, so that every red packet at the pay API can be matched with a claim: the rest wait.
PURGE = """
import django
django.setup()
from crm.celery import app
with app.connection_for_write() as conn:
    print(app.amqp.queues["redpackets"].bind(conn.default_channel).purge())
"""
PAY_CHECK = """
import json, sys
import django
django.setup()
from django.db.models import Count, Sum
from crm.models import RedPacketClaim
from wecom_sim.corp import get_corp
from wecom_sim.models import SimRedPack
pools = json.loads(sys.argv[1])
claims = RedPacketClaim.objects.filter(pool_id__in=pools)
by_status = dict(claims.values_list("status").annotate(n=Count("id")))
paid = RedPacketClaim.objects.filter(status="paid")  # every pool's: nothing else may have been paid
billnos = set(paid.values_list("billno", flat=True))
packs = SimRedPack.objects.all()
out = {
    "by_status": by_status, "paid": len(billnos), "paid_fen": paid.aggregate(s=Sum("amount_fen"))["s"] or 0,
    "packs": packs.filter(mch_billno__in=billnos).count(),
    "packs_fen": packs.aggregate(s=Sum("total_amount"))["s"] or 0,
    "all_packs": packs.count(), "balance": get_corp().merchant_balance_fen,
    "attempts": claims.aggregate(s=Sum("attempts"))["s"] or 0,
}
json.dump(out, open(sys.argv[2], "w"))
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


def _sim_balance(env: dict, log) -> int:
    script = ("import django; django.setup(); from wecom_sim.corp import get_corp; "
              "print(get_corp().merchant_balance_fen)")
    out = subprocess.run([sys.executable, "-c", script], cwd=ROOT, env=env, check=True, stdout=subprocess.PIPE,
                         stderr=log, text=True)  # fmt: skip
    return int(out.stdout.strip().splitlines()[-1])


def _payouts(env: dict, tmp: Path, log, pools: list[int]) -> dict:
    """Pay every claim of `pools` through the simulator's pay API with two real workers, one SIGKILLed midway."""
    import psycopg

    from bench.callback_ingest import _free_port, _start, _stop, _wait_listening

    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    env = dict(env, PUBLIC_BASE_URL=base, WECOM_API_BASE_URL=f"{base}/wecom-sim/cgi-bin",
               WECOM_PAY_BASE_URL=f"{base}/wecom-sim/mch", CELERY_VISIBILITY_TIMEOUT="5",
               CELERY_TASK_ALWAYS_EAGER="false")  # fmt: skip
    web = _start([str(Path(sys.executable).parent / "gunicorn"), "crm.wsgi:application", "--bind", f"127.0.0.1:{port}",
                  "--workers", "3", "--log-level", "warning"], env, log)  # fmt: skip
    workers: list[subprocess.Popen] = []

    def worker() -> subprocess.Popen:
        return subprocess.Popen([sys.executable, "-m", "celery", "-A", "crm", "worker", "-Q", "redpackets", "--pool",
                                 "threads", "--concurrency", "8", "--loglevel", "WARNING", "--without-gossip",
                                 "--without-mingle", "--hostname", f"bench{len(workers)}@localhost"],
                                cwd=ROOT, env=env, stdout=log, stderr=log)  # fmt: skip

    db = psycopg.connect(env["DATABASE_URL"].replace("postgres://", "postgresql://"), autocommit=True)

    def settled() -> tuple[int, int]:
        row = db.execute("SELECT count(*) FILTER (WHERE status = 'paid'), count(*) FILTER (WHERE status IN "
                         "('received', 'paying')) FROM crm_redpacketclaim WHERE pool_id = ANY(%s)", [pools]).fetchone()
        return row[0], row[1]

    try:
        _wait_listening(port, web)
        subprocess.run([sys.executable, "-c", PURGE], cwd=ROOT, env=env, check=True, stdout=log, stderr=log)
        workers += [worker(), worker()]
        began = time.monotonic()
        total = int(subprocess.run([sys.executable, "-c", QUEUE_PAYOUTS, json.dumps(pools)], cwd=ROOT, env=env,
                                   check=True, stdout=subprocess.PIPE, stderr=log, text=True).stdout.split()[-1])
        killed_at, sweeps, last_sweep = None, 0, time.monotonic()
        deadline = time.monotonic() + 900
        while time.monotonic() < deadline:
            paid, open_ = settled()
            if killed_at is None and paid >= total * 0.3:
                workers[0].send_signal(signal.SIGKILL)  # payouts in flight: their messages are unacknowledged
                workers[0].wait()
                killed_at = paid
                workers.append(worker())
            if not open_:
                break
            if time.monotonic() - last_sweep > 15:  # as beat's stuck-payout sweep, on a shorter clock
                subprocess.run([sys.executable, "-c", SWEEP, json.dumps(pools)], cwd=ROOT, env=env, check=True,
                               stdout=log, stderr=log)  # fmt: skip
                sweeps += 1
                last_sweep = time.monotonic()
            time.sleep(0.5)
        seconds = time.monotonic() - began
        subprocess.run([sys.executable, "-c", PAY_CHECK, json.dumps(pools), str(tmp / "pay.json")], cwd=ROOT,
                       env=env, check=True, stdout=log, stderr=log)  # fmt: skip
        check = json.loads((tmp / "pay.json").read_text())
    finally:
        db.close()
        for w in workers:
            if w.poll() is None:
                w.terminate()
                try:
                    w.wait(20)
                except subprocess.TimeoutExpired:
                    w.kill()
        _stop(web)
    return {"check": check, "killed_at": killed_at or 0, "sweeps": sweeps, "seconds": seconds}


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
        balance_before = _sim_balance(env, log)
        began = time.monotonic()
        claimers = [subprocess.Popen([sys.executable, "-c", CLAIMER, str(tmp / f"pairs{i}.json"),
                                      str(tmp / f"out{i}.json"), str(GROUP)], cwd=ROOT, env=env, stdout=log,
                                     stderr=log)
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
        pay_pools = seed["pools"][:PAY_POOLS]
        payouts = _payouts(env, tmp, log, pay_pools)
        payouts["balance_before"] = balance_before
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
    pay = payouts["check"]
    duplicate_payouts = pay["all_packs"] - pay["packs"] + abs(pay["packs"] - pay["paid"])
    balance_moved = payouts["balance_before"] - pay["balance"]
    payouts_ok = (duplicate_payouts == 0 and pay["packs_fen"] == pay["paid_fen"] == balance_moved
                  and set(pay["by_status"]) == {"paid"})  # fmt: skip
    met = check["duplicates"] == 0 and check["overspent"] == 0 and not check["unbalanced"] and payouts_ok
    return [{
        "name": "redpacket_1m_reconcile", "value": round(check["seconds"], 2), "unit": "s (reconcile all pools)",
        "baseline": None, "ratio": None,
        "target": "0 overspend, 0 duplicate claims, 0 duplicate payouts, reconciliation exact",
        "met": met,
        "note": (f"{len(pairs):,} claim attempts ({POOLS:,} pools x {per:,} customers + 10% second taps; "
                 f"BENCH_RP_1M_CLAIMS={CLAIMS:,}), {PROCS} claimer processes (groups of {GROUP}), "
                 f"{claim_seconds:.1f} s of claims "
                 f"({len(pairs) / claim_seconds:,.0f}/s), Redis SIGKILLed and restarted {restarts} times "
                 f"({retries} claim calls retried). Outcomes {statuses}. DB: {check['claims']:,} claims, duplicates "
                 f"{check['duplicates']}, pools over budget or count {check['overspent']}, pools exhausted "
                 f"{check['exhausted']}/{POOLS}, unbalanced {check['unbalanced'][:10]}. Reconciling every pool took "
                 f"{check['seconds']:.2f} s. Payouts of {PAY_POOLS} pools ({pay['paid']:,} claims) by 2 Celery "
                 f"workers, one SIGKILLed at {payouts['killed_at']:,} paid, {payouts['seconds']:.0f} s, "
                 f"{payouts['sweeps']} sweeps: statuses {pay['by_status']}, {pay['attempts']:,} pay attempts, "
                 f"{pay['packs']:,} red packets at the pay API for {pay['paid']:,} paid claims (duplicate payouts "
                 f"{duplicate_payouts}), {pay['packs_fen']:,} fen sent = {pay['paid_fen']:,} fen paid = "
                 f"{balance_moved:,} fen off the merchant balance. {os.cpu_count()} CPUs, load average "
                 f"{os.getloadavg()[0]:.1f}"),
    }]  # fmt: skip
