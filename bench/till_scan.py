"""Benchmark `till_scan`: till scans over HTTP at a fixed offered rate, and the most the server answers.

Each scan is the real `POST /api/loyalty/scans` (token auth, throttles checked in Redis, the QR nonce consumed,
earning rules evaluated, a lot written when the lots code is in, the tier re-evaluated, velocity rules checked),
each for another card so the velocity and per-card limits do not refuse the load (per-till rate raised for the
bench: one till stands for many). gunicorn, 4 sync workers, on a throwaway database of the runner's engine
(PostgreSQL for the real figure) and a separate Redis db. The same server answers the baselines in the same run
(bench/_till_wsgi.py): a bare JSON endpoint, and a minimal write (one transaction: insert a row, update a balance).
An open-loop client (bench/callback_ingest.py's way: one thread, epoll) measures latency from each request's
scheduled time. Targets: p99 <= 50 ms at 300 scans/s; max scans/s >= 60 % of the minimal write's.
"""

from __future__ import annotations

import json
import os
import selectors
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlparse, urlunparse

from bench.callback_ingest import (
    _bench_redis_url,
    _BenchDatabase,
    _clean_redis,
    _free_port,
    _start,
    _stop,
    _wait_listening,
)

ROOT = Path(__file__).resolve().parent.parent
VENV_BIN = Path(sys.executable).parent
RATE = float(os.environ.get("BENCH_TILL_RATE", 300))  # the fixed offered rate of the p99 target
SECONDS = float(os.environ.get("BENCH_TILL_SECONDS", 4))
MAX_RATE = float(os.environ.get("BENCH_TILL_MAX_RATE", 700))  # offered to find the most each endpoint answers
MAX_SECONDS = float(os.environ.get("BENCH_TILL_MAX_SECONDS", 3))
# The most answered is measured in rounds, scans and minimal writes alternating, and each side's best round
# counts: on a shared VM a single pair of phases swung the ratio from 0.50 to 0.70 between two runs minutes apart
# (the machine's own pace drifting), and alternating gives both sides the same moments.
ROUNDS = int(os.environ.get("BENCH_TILL_ROUNDS", 3))
WARMUP = 100
WORKERS = 4
MAX_OPEN = 256
TARGET_P99_MS, TARGET_RATIO = 50.0, 0.6

SEED = """
import json, sys
import django
django.setup()
from crm.models import Contact
from loyalty.services import card_get_or_create, cashier_ensure, store_upsert, tiers_ensure_defaults
tiers_ensure_defaults()
store = store_upsert(code="store-bench-001", name="Bench store", city="Shanghai")
_, key = cashier_ensure(username="till-bench", store_codes=[store.code])
contacts = Contact.objects.bulk_create(
    [Contact(external_userid=f"wmBenchTill{i:07d}", name=f"Bench {i}") for i in range(int(sys.argv[1]))]
)
cards = [card_get_or_create(c.pk) for c in contacts]
json.dump({"key": key, "store": store.code, "numbers": [c.number for c in cards], "ids": [c.pk for c in cards]},
          open(sys.argv[2], "w"))
"""


def _request(port: int, method: str, target: str, body: bytes = b"", headers: str = "") -> bytes:
    head = (
        f"{method} {target} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\n{headers}"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    )
    return head.encode() + body


def _drive(port: int, requests: list[bytes], rate: float) -> dict:
    """Request i at start + i/rate (open loop), a new connection each; -> answered (2xx) per s, p50, p99."""
    sel = selectors.DefaultSelector()
    start = time.monotonic() + 0.1
    give_up = start + len(requests) / rate + 5.0
    results: list = [None] * len(requests)
    pending: dict[socket.socket, list] = {}
    following = 0

    def finish(sock: socket.socket, status: int) -> None:
        index = pending.pop(sock)[0]
        sel.unregister(sock)
        sock.close()
        now = time.monotonic()
        results[index] = (status, now - (start + index / rate), now)

    while following < len(requests) or pending:
        now = time.monotonic()
        while following < len(requests) and start + following / rate <= now and len(pending) < MAX_OPEN:
            if now > give_up:
                results[following] = (-1, now - (start + following / rate), now)
                following += 1
                continue
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.setblocking(False)
            sock.connect_ex(("127.0.0.1", port))
            pending[sock] = [following, requests[following], b""]
            sel.register(sock, selectors.EVENT_WRITE)
            following += 1
        timeout = (
            max(0.0, start + following / rate - time.monotonic())
            if following < len(requests) and len(pending) < MAX_OPEN
            else 0.05
        )
        for key, mask in sel.select(timeout):
            sock, state = key.fileobj, pending[key.fileobj]
            try:
                if mask & selectors.EVENT_WRITE:
                    state[1] = state[1][sock.send(state[1]) :]
                    if not state[1]:
                        sel.modify(sock, selectors.EVENT_READ)
                    continue
                chunk = sock.recv(65536)
            except OSError:
                finish(sock, 0)
                continue
            if chunk:
                state[2] += chunk
                continue
            finish(sock, int(state[2][9:12]) if state[2].startswith(b"HTTP/1.") else 0)
        now = time.monotonic()
        for sock, state in list(pending.items()):
            if now - (start + state[0] / rate) > 15:
                finish(sock, 0)
    sel.close()
    ok = [r for r in results if 200 <= r[0] < 300]
    sent = [r for r in results if r[0] != -1]
    latencies = sorted(r[1] for r in sent) or [0.0]
    elapsed = max((r[2] for r in sent), default=start) - start
    return {
        "offered": len(requests),
        "ok": len(ok),
        "per_s": len(ok) / elapsed if elapsed > 0 else 0.0,
        "p50_ms": latencies[len(latencies) // 2] * 1000,
        "p99_ms": latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))] * 1000,
        "statuses": sorted({r[0] for r in results}),
    }


def _drain(port: int, limit: float = 30.0) -> None:
    """Wait until the server has worked off the previous phase's queue (a bare request answers quickly), so
    each phase measures itself and not the backlog of the one before."""
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        began = time.monotonic()
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=limit) as sock:
                sock.sendall(_request(port, "GET", "/bench/bare"))
                while sock.recv(65536):
                    pass
        except OSError:
            pass
        if time.monotonic() - began < 0.05:
            return
        time.sleep(0.2)


def run() -> list[dict]:
    from django.conf import settings

    from loyalty.qr import qr_token_mint

    tmp = Path(tempfile.mkdtemp(prefix="crm-bench-till-"))
    database = _BenchDatabase(tmp)
    redis_url = _bench_redis_url(settings.REDIS_URL)  # db 15, or BENCH_TILL_REDIS_DB on a TCP Redis
    if os.environ.get("BENCH_TILL_REDIS_DB") and urlparse(settings.REDIS_URL).scheme.startswith("redis"):
        redis_url = urlunparse(urlparse(settings.REDIS_URL)._replace(path=f"/{os.environ['BENCH_TILL_REDIS_DB']}"))
    env = dict(
        os.environ,
        DJANGO_SETTINGS_MODULE="crm.settings",
        DATABASE_URL=database.url,
        REDIS_URL=redis_url,
        VAR_DIR=str(tmp),
        DEBUG="false",
        LOG_LEVEL=os.environ.get("BENCH_LOG_LEVEL", "WARNING"),
        SECRET_KEY=settings.SECRET_KEY,  # the bench mints the tokens the server checks
        LOYALTY_TILL_RATE="10000000/min",  # one bench till stands for many tills; per-card limits stay on
    )
    n_fixed, n_max = int(RATE * SECONDS), int(MAX_RATE * MAX_SECONDS)
    n_cards = WARMUP + n_fixed + n_max * ROUNDS
    log = open(tmp / "servers.log", "wb")  # noqa: SIM115  (closed in finally)
    server = None
    try:
        # The migrations, not the models' tables alone: a purchase's and a line's triggers (the segment and spend
        # rollups) are part of what a scan costs PostgreSQL in production.
        database.create(env, log, migrations=True)
        seed_out = tmp / "seed.json"
        subprocess.run(
            [sys.executable, "-c", SEED, str(n_cards), str(seed_out)],
            cwd=ROOT, env=env, check=True, stdout=log, stderr=log,
        )  # fmt: skip
        seed = json.loads(seed_out.read_text())
        port = _free_port()
        server = _start(
            [str(VENV_BIN / "gunicorn"), "--pythonpath", str(ROOT / "bench"), "_till_wsgi:application",
             "--bind", f"127.0.0.1:{port}", "--workers", str(WORKERS), "--backlog", "4096", "--log-level", "warning"],
            env, log,
        )  # fmt: skip
        _wait_listening(port, server)
        auth = f"Authorization: Token {seed['key']}\r\n"
        numbers, ids = iter(seed["numbers"]), seed["ids"]

        def scans(count: int, prefix: str) -> list[bytes]:
            # Minted just before they are offered: each token is fresh and used once.
            return [
                _request(port, "POST", "/api/loyalty/scans", json.dumps({
                    "qr_token": qr_token_mint(next(numbers)).token, "receipt_id": f"{prefix}-{i}",
                    "store": seed["store"], "amount_fen": 5_000 + (i * 37) % 40_000,
                    "items": [{"sku": "SKU-1", "name": "Tea", "qty": 1, "amount_fen": 5_000 + (i * 37) % 40_000}],
                }).encode(), auth)
                for i in range(count)
            ]  # fmt: skip

        def writes(count: int) -> list[bytes]:
            return [_request(port, "POST", f"/bench/write?card={ids[i % len(ids)]}") for i in range(count)]

        bares = [_request(port, "GET", "/bench/bare") for _ in range(max(n_fixed, n_max))]
        phases = []
        for name, make, rate in [
            ("warmup", lambda: scans(WARMUP, "W") + writes(WARMUP) + bares[:WARMUP], RATE / 2),
            ("fixed", lambda: scans(n_fixed, "F"), RATE),
            ("bare_fixed", lambda: bares[:n_fixed], RATE),
            ("write_fixed", lambda: writes(n_fixed), RATE),
            *[phase for r in range(ROUNDS) for phase in (
                (f"most_{r}", lambda r=r: scans(n_max, f"M{r}"), MAX_RATE),
                (f"write_most_{r}", lambda: writes(n_max), MAX_RATE * 2),
            )],
            ("bare_most", lambda: bares[:n_max], MAX_RATE * 4),
        ]:  # fmt: skip
            _drain(port)
            phases.append((name, _drive(port, make(), rate)))
        results = dict(phases)
        fixed, bare_fixed, write_fixed = results["fixed"], results["bare_fixed"], results["write_fixed"]
        rounds = [(results[f"most_{r}"], results[f"write_most_{r}"]) for r in range(ROUNDS)]
        most = max((scan for scan, _ in rounds), key=lambda x: x["per_s"])
        write_most = max((write for _, write in rounds), key=lambda x: x["per_s"])
        bare_most = results["bare_most"]
    finally:
        _stop(server)
        log.close()
        database.drop()
        _clean_redis(redis_url)
        if os.environ.get("BENCH_TILL_KEEP_LOG"):
            shutil.copy(tmp / "servers.log", os.environ["BENCH_TILL_KEEP_LOG"])
        shutil.rmtree(tmp, ignore_errors=True)

    engine = "PostgreSQL" if database.postgres else "SQLite"
    load = os.getloadavg()[0]
    note = (
        f"gunicorn {WORKERS} sync workers, {engine}, {os.cpu_count()} CPUs, load average {load:.1f} at the end "
        f"(a loaded machine when > {os.cpu_count()}). At {RATE:.0f}/s: scans {fixed['ok']}/{fixed['offered']} "
        f"answered 2xx (statuses {fixed['statuses']}), p50 {fixed['p50_ms']:.1f} ms p99 {fixed['p99_ms']:.1f} ms; "
        f"bare p99 {bare_fixed['p99_ms']:.1f} ms; minimal write p99 {write_fixed['p99_ms']:.1f} ms. Most answered, "
        f"the best of {ROUNDS} alternating rounds: scans {most['per_s']:.0f}/s (offered {MAX_RATE:.0f}/s, statuses "
        f"{most['statuses']}), minimal write {write_most['per_s']:.0f}/s (offered {MAX_RATE * 2:.0f}/s), bare JSON "
        f"{bare_most['per_s']:.0f}/s (offered {MAX_RATE * 4:.0f}/s); rounds (scans/s, writes/s): "
        + ", ".join(f"({scan['per_s']:.0f}, {write['per_s']:.0f})" for scan, write in rounds)
    )
    ratio = most["per_s"] / write_most["per_s"] if write_most["per_s"] else None
    return [
        {
            "name": "till_scan.p99_at_300",
            "value": round(fixed["p99_ms"], 1),
            "unit": "ms",
            "baseline": round(write_fixed["p99_ms"], 1),
            "ratio": round(fixed["p99_ms"] / write_fixed["p99_ms"], 3) if write_fixed["p99_ms"] else None,
            "target": f"<= {TARGET_P99_MS:.0f} ms at {RATE:.0f} scans/s",
            "met": fixed["p99_ms"] <= TARGET_P99_MS and fixed["ok"] == fixed["offered"],
            "note": note,
        },
        {
            "name": "till_scan.max_per_s",
            "value": round(most["per_s"], 1),
            "unit": "scans/s",
            "baseline": round(write_most["per_s"], 1),
            "ratio": round(ratio, 3) if ratio is not None else None,
            "target": f">= {TARGET_RATIO:.0%} of the minimal write endpoint's",
            "met": ratio is not None and ratio >= TARGET_RATIO,
            "note": note,
        },
    ]
