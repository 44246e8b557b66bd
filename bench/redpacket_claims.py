"""Benchmark `redpacket_claims`: red-packet claims per second, in Redis alone and through the whole service.

1. `redpacket_claim_lua_per_s`: the atomic claim script (already claimed? closed? pop, record) run by 16 threads,
   one round trip per claim, against a pool of 20,000 packets. Baseline, same run, same threads and connection
   pool: plain Redis INCR round trips. Target: at least half the INCR rate (a claim is one round trip too).
   Correctness is checked on the way: every packet claimed once, the sum equals the budget.
2. `redpacket_claim_service_per_s`: `redpacket_claim` end to end (Lua + claim row + billno + payout queued) on a
   throwaway SQLite database (the embedded default) in a subprocess. Baseline, same process and threads: a bare
   ORM insert of a contact. Target: >= 50 claims/s, i.e. a 10,000-recipient campaign fully claimed in under
   3.5 minutes on one web process. A claim costs about four Redis round trips (Lua, the reservation check, the
   Celery publish of its payout) plus two writes under SQLite's single write lock, so the ratio to a bare insert
   is low by construction; the Lua gate (1.) is what bounds correctness, not throughput.
A separate Redis db (14) keeps the bench's keys and task messages out of real queues; it is flushed after.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import urlparse, urlunparse

ROOT = Path(__file__).resolve().parent.parent
BENCH_REDIS_DB = 14
THREADS = int(os.environ.get("BENCH_RP_THREADS", 16))
PACKETS = int(os.environ.get("BENCH_RP_PACKETS", 20_000))
SERVICE_CLAIMS = int(os.environ.get("BENCH_RP_SERVICE_CLAIMS", 1500))


def _bench_redis_url(url: str) -> str:
    parsed = urlparse(url)
    if parsed.scheme == "unix":
        parts = [p for p in parsed.query.split("&") if p and not p.startswith("db=")]
        query = "&".join([*parts, f"db={BENCH_REDIS_DB}"])
        return urlunparse(parsed._replace(query=query))
    return urlunparse(parsed._replace(path=f"/{BENCH_REDIS_DB}"))


def _rate(ops: int, threads: int, op) -> float:
    counter = iter(range(ops))
    lock = threading.Lock()

    def work():
        while True:
            with lock:
                i = next(counter, None)
            if i is None:
                return
            op(i)

    started = time.perf_counter()
    with ThreadPoolExecutor(threads) as ex:
        for f in [ex.submit(work) for _ in range(threads)]:
            f.result()
    return ops / (time.perf_counter() - started)


def _lua_bench(redis_url: str) -> list[dict]:
    import redis

    from crm.services.redpackets import _CLAIM_LUA, lucky_split

    client = redis.Redis.from_url(redis_url, max_connections=THREADS * 2)
    client.flushdb()
    keys = ["crm:rp:bench:left", "crm:rp:bench:claimed", "crm:rp:bench:state"]
    amounts = lucky_split(PACKETS * 500, PACKETS, 100, 2000)
    client.rpush(keys[0], *amounts)
    client.set(keys[2], "open")
    claim = client.register_script(_CLAIM_LUA)
    rate = _rate(PACKETS, THREADS, lambda i: claim(keys=keys, args=[str(i)]))
    claimed = {int(k): int(v) for k, v in client.hgetall(keys[1]).items()}
    assert len(claimed) == PACKETS and sum(claimed.values()) == sum(amounts) and client.llen(keys[0]) == 0
    baseline = _rate(PACKETS, THREADS, lambda i: client.incr("crm:rp:bench:incr"))
    client.flushdb()
    ratio = rate / baseline
    return [{
        "name": "redpacket_claim_lua_per_s", "value": round(rate, 1), "unit": "claims/s",
        "baseline": round(baseline, 1), "ratio": round(ratio, 3), "target": "ratio >= 0.5 (vs Redis INCR)",
        "met": ratio >= 0.5,
    }]


_SERVICE_CODE = r"""
import json, os, sys, time, threading
from concurrent.futures import ThreadPoolExecutor
import django
django.setup()
from django.core.management import call_command
from django.db import connection
from django.utils import timezone
call_command("migrate", run_syncdb=True, verbosity=0, interactive=False)
from crm.models import Contact
from crm.services.redpackets import redpacket_claim, redpacket_pool_activate, redpacket_pool_create
from crm.services.redpackets import redpacket_pool_approve
from django.contrib.auth import get_user_model
from datetime import timedelta
n, threads = int(sys.argv[1]), int(sys.argv[2])
Contact.objects.bulk_create([Contact(external_userid=f"wmbench{i:08d}") for i in range(n)])
ids = list(Contact.objects.order_by("id").values_list("id", flat=True))
pool = redpacket_pool_create(campaign_id=None, budget_fen=n * 300, count=n, mode="lucky", min_fen=100,
                             max_fen=1000, expires_at=timezone.now() + timedelta(hours=1))
# Over the approval threshold: a second admin approves it, as in the console.
approver = get_user_model().objects.create_superuser("bench-approver", "a@example.com", "x")
redpacket_pool_approve(pool.id, approver=approver)
redpacket_pool_activate(pool.id)
def timed(ops, fn):
    it, lock = iter(range(ops)), threading.Lock()
    def work():
        try:
            while True:
                with lock:
                    i = next(it, None)
                if i is None:
                    return
                fn(i)
        finally:
            connection.close()
    t = time.perf_counter()
    with ThreadPoolExecutor(threads) as ex:
        for f in [ex.submit(work) for _ in range(threads)]:
            f.result()
    return ops / (time.perf_counter() - t)
statuses = []
rate = timed(n, lambda i: statuses.append(redpacket_claim(pool_id=pool.id, contact_id=ids[i]).status))
assert statuses.count("claimed") == n, set(statuses)
base = timed(n, lambda i: Contact.objects.create(external_userid=f"wmbase{i:08d}"))
print(json.dumps({"rate": rate, "baseline": base}))
"""


def _service_bench(redis_url: str) -> list[dict]:
    with tempfile.TemporaryDirectory(prefix="bench-rp-") as tmp:
        env = dict(os.environ, DJANGO_SETTINGS_MODULE="crm.settings", VAR_DIR=tmp, REDIS_URL=redis_url,
                   DATABASE_URL=f"sqlite:///{tmp}/bench.sqlite3", LOG_LEVEL="WARNING")
        env.pop("CELERY_TASK_ALWAYS_EAGER", None)
        out = subprocess.run([sys.executable, "-c", _SERVICE_CODE, str(SERVICE_CLAIMS), str(THREADS)], cwd=ROOT,
                             env=env, capture_output=True, text=True, timeout=600)
    if out.returncode != 0:
        raise RuntimeError(out.stderr[-2000:])
    data = json.loads(out.stdout.strip().splitlines()[-1])
    ratio = data["rate"] / data["baseline"]
    return [{
        "name": "redpacket_claim_service_per_s", "value": round(data["rate"], 1), "unit": "claims/s",
        "baseline": round(data["baseline"], 1), "ratio": round(ratio, 3),
        "target": ">= 50 claims/s (SQLite, 16 threads)", "met": data["rate"] >= 50,
    }]


def run() -> list[dict]:
    from django.conf import settings

    redis_url = _bench_redis_url(settings.REDIS_URL)
    try:
        return _lua_bench(redis_url) + _service_bench(redis_url)
    finally:
        import redis

        redis.Redis.from_url(redis_url).flushdb()
