"""Benchmark `callback_ingest`: signed, encrypted WeCom callbacks acknowledged per second and their p99 latency.

The callback ingest server (crm/ingest.py: gunicorn with uvicorn workers, group commit) serves a throwaway
database of the runner's engine and a separate Redis db, so nothing real is touched. An open-loop client
(epoll, non-blocking sockets, a new connection per request as WeCom makes them) offers requests at a fixed
rate for a few seconds; latency is measured from each request's *scheduled* send time, so a server that falls
behind pays for the queue it builds. The same server's trivial endpoint (`/bench/bare`) is driven the same way
in the same run: the baseline for the ratios. For context, the Django view that answers the same path inside
the web app (gunicorn sync workers) is driven at the same rate too.
"""

from __future__ import annotations

import os
import secrets
import selectors
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlencode, urlparse, urlunparse

ROOT = Path(__file__).resolve().parent.parent
VENV_BIN = Path(sys.executable).parent
RATE = float(os.environ.get("BENCH_CALLBACK_RATE", 1200))  # offered requests/s (target: >= 1000 acknowledged)
SECONDS = float(os.environ.get("BENCH_CALLBACK_SECONDS", 5))
WARMUP = 300
TARGET_ACK_PER_S = 1000.0
TARGET_P99_MS = 100.0
BENCH_REDIS_DB = 15
MAX_OPEN = 256  # concurrent sockets the client keeps open at most
GRACE_SECONDS = 5.0  # after the offered window, requests not yet sent are dropped (counted as not acknowledged)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _bench_redis_url(url: str) -> str:
    """The same Redis, another logical db: the bench's task messages and replay keys stay out of real queues."""
    parsed = urlparse(url)
    if parsed.scheme == "unix":
        query = "&".join(
            [p for p in parsed.query.split("&") if p and not p.startswith("db=")] + [f"db={BENCH_REDIS_DB}"]
        )
        return urlunparse(parsed._replace(query=query))
    return urlunparse(parsed._replace(path=f"/{BENCH_REDIS_DB}"))


def _event_xml(corp_id: str, i: int, created: int) -> str:
    return (
        f"<xml><ToUserName><![CDATA[{corp_id}]]></ToUserName><FromUserName><![CDATA[sys]]></FromUserName>"
        f"<CreateTime>{created}</CreateTime><MsgType><![CDATA[event]]></MsgType>"
        "<Event><![CDATA[change_external_contact]]></Event><ChangeType><![CDATA[add_external_contact]]></ChangeType>"
        f"<UserID><![CDATA[staff{i % 50:03d}]]></UserID>"
        f"<ExternalUserID><![CDATA[wmbench{i:08d}{secrets.token_hex(4)}]]></ExternalUserID>"
        f"<State><![CDATA[store-sh-{i % 20:03d}]]></State>"
        f"<WelcomeCode><![CDATA[{secrets.token_hex(16)}]]></WelcomeCode></xml>"
    )


def _callback_requests(port: int, count: int, offset: int) -> list[bytes]:
    from django.conf import settings

    from crm.wecom.crypto import WXBizMsgCrypt, signature

    crypt = WXBizMsgCrypt(settings.WECOM_CALLBACK_TOKEN, settings.WECOM_ENCODING_AES_KEY, settings.WECOM_CORP_ID)
    created = int(time.time())
    out = []
    for i in range(offset, offset + count):
        encrypt = crypt.encrypt(_event_xml(settings.WECOM_CORP_ID, i, created))
        ts, nonce = str(int(time.time())), secrets.token_hex(8)
        query = urlencode(
            {"msg_signature": signature(crypt.token, ts, nonce, encrypt), "timestamp": ts, "nonce": nonce}
        )
        body = (
            f"<xml><ToUserName><![CDATA[{settings.WECOM_CORP_ID}]]></ToUserName>"
            f"<AgentID><![CDATA[{settings.WECOM_AGENT_ID}]]></AgentID><Encrypt><![CDATA[{encrypt}]]></Encrypt></xml>"
        ).encode()
        out.append(_http_post(port, f"/wecom/callback?{query}", body))
    return out


def _http_post(port: int, target: str, body: bytes) -> bytes:
    head = (
        f"POST {target} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: text/xml\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    )
    return head.encode() + body


def _drive(port: int, requests: list[bytes], rate: float) -> dict:
    """Send request i at start + i/rate (open loop); -> acknowledged/s and latency percentiles.

    One thread, non-blocking sockets and epoll: a new connection per request (as WeCom makes them), a few tens
    of microseconds of client CPU each, so the client takes as little as it can from the cores the server uses."""
    sel = selectors.DefaultSelector()
    start = time.monotonic() + 0.1
    give_up = start + len(requests) / rate + GRACE_SECONDS
    results: list[tuple[int, float, float] | None] = [None] * len(requests)
    pending: dict[socket.socket, list] = {}  # socket -> [index, request bytes left to send, response so far]
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
            if now > give_up:  # the server fell far behind: stop offering, keep the run bounded
                results[following] = (-1, now - (start + following / rate), now)
                following += 1
                continue
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.setblocking(False)
            sock.connect_ex(("127.0.0.1", port))
            pending[sock] = [following, requests[following], b""]
            sel.register(sock, selectors.EVENT_WRITE)
            following += 1
        if following < len(requests) and len(pending) < MAX_OPEN:
            timeout = max(0.0, start + following / rate - time.monotonic())
        else:
            timeout = 0.05
        for key, mask in sel.select(timeout):
            sock = key.fileobj
            state = pending[sock]
            try:
                if mask & selectors.EVENT_WRITE:
                    sent = sock.send(state[1])
                    state[1] = state[1][sent:]
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
            data = state[2]  # the server closed: the whole response is in
            finish(sock, int(data[9:12]) if data.startswith(b"HTTP/1.") else 0)
        now = time.monotonic()
        for sock, state in list(pending.items()):  # a request unanswered for 10 s counts as failed
            if now - (start + state[0] / rate) > 10 + GRACE_SECONDS:
                finish(sock, 0)
    sel.close()

    ok = [r for r in results if r[0] == 200]
    sent = [r for r in results if r[0] != -1]
    latencies = sorted(r[1] for r in sent)
    elapsed = max(r[2] for r in sent) - start
    return {
        "sent": len(sent),
        "abandoned": len(results) - len(sent),
        "ok": len(ok),
        "ack_per_s": len(ok) / elapsed if elapsed > 0 else 0.0,
        "p50_ms": latencies[len(latencies) // 2] * 1000,
        "p99_ms": latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))] * 1000,
        "statuses": sorted({r[0] for r in results}),
    }


def _wait_listening(port: int, proc: subprocess.Popen, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"gunicorn exited with {proc.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError("gunicorn did not start listening")


class _BenchDatabase:
    """A throwaway database of the runner's engine: a temporary PostgreSQL database on the same server, or a
    SQLite file. Tables come from the models directly (works with or without migrations)."""

    def __init__(self, tmp: Path) -> None:
        from django.conf import settings

        self.db = settings.DATABASES["default"]
        self.postgres = "postgresql" in self.db["ENGINE"]
        self.name = f"crm_bench_{os.getpid()}_{secrets.token_hex(3)}"
        self.path = tmp / "bench.sqlite3"
        self._hold = None

    @property
    def url(self) -> str:
        if not self.postgres:
            return f"sqlite:///{self.path}"
        auth = self.db.get("USER") or ""
        if self.db.get("PASSWORD"):
            auth += f":{self.db['PASSWORD']}"
        port = f":{self.db['PORT']}" if self.db.get("PORT") else ""
        return f"postgres://{auth}{'@' if auth else ''}{self.db.get('HOST') or '127.0.0.1'}{port}/{self.name}"

    def _admin(self):
        import psycopg

        return psycopg.connect(
            dbname="postgres", user=self.db.get("USER") or None, password=self.db.get("PASSWORD") or None,
            host=self.db.get("HOST") or "127.0.0.1", port=self.db.get("PORT") or None, autocommit=True,
        )  # fmt: skip

    def create(self, env: dict, log, migrations: bool = False) -> None:
        """`migrations`: the project's migrations (their triggers and indexes, as production has them) instead of
        the models' tables alone."""
        if self.postgres:
            with self._admin() as conn:
                conn.execute(f'CREATE DATABASE "{self.name}"')
        argv = [sys.executable, "manage.py", "migrate", "-v0"] if migrations else [sys.executable, "-c", CREATE_TABLES]
        subprocess.run(argv, cwd=ROOT, env=env, check=True, stdout=log, stderr=log)
        if not self.postgres:
            import sqlite3

            # The project closes SQLite connections after each request (CONN_MAX_AGE=0); without one open
            # connection, every close by the last process would checkpoint and fsync the WAL.
            self._hold = sqlite3.connect(self.path)
            self._hold.execute("SELECT COUNT(*) FROM sqlite_master").fetchall()  # opens the WAL index

    def count_stored(self) -> int:
        if self.postgres:
            import psycopg

            with psycopg.connect(self.url.replace("postgres://", "postgresql://", 1)) as conn:
                return conn.execute("SELECT COUNT(*) FROM crm_callbackevent").fetchone()[0]
        return self._hold.execute("SELECT COUNT(*) FROM crm_callbackevent").fetchone()[0]

    def drop(self) -> None:
        if self._hold is not None:
            self._hold.close()
        if self.postgres:
            try:
                with self._admin() as conn:
                    conn.execute(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')
            except Exception:  # best effort
                pass


CREATE_TABLES = """
import django
django.setup()
from django.conf import settings
from django.core.management import call_command

class NoMigrations(dict):
    def __contains__(self, key):
        return True

    def __getitem__(self, key):
        return None

settings.MIGRATION_MODULES = NoMigrations()
call_command("migrate", run_syncdb=True, verbosity=0, interactive=False)
"""


def _start(argv: list[str], env: dict, log) -> subprocess.Popen:
    return subprocess.Popen(argv, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)


def _stop(proc: subprocess.Popen | None) -> None:
    if proc is None:
        return
    proc.terminate()
    try:
        proc.wait(15)
    except subprocess.TimeoutExpired:
        proc.kill()


def run() -> list[dict]:
    from django.conf import settings

    tmp = Path(tempfile.mkdtemp(prefix="crm-bench-callbacks-"))
    database = _BenchDatabase(tmp)
    redis_url = _bench_redis_url(settings.REDIS_URL)
    env = dict(
        os.environ,
        DJANGO_SETTINGS_MODULE="crm.settings",
        DATABASE_URL=database.url,
        REDIS_URL=redis_url,
        VAR_DIR=str(tmp),
        DEBUG="false",
        LOG_LEVEL=os.environ.get("BENCH_LOG_LEVEL", "WARNING"),
    )
    workers = int(os.environ.get("BENCH_INGEST_WORKERS", os.cpu_count() or 1))
    web_workers = (os.cpu_count() or 1) + 1
    log = open(tmp / "servers.log", "wb")  # noqa: SIM115  (closed in finally)
    ingest = web = None
    count = int(RATE * SECONDS)
    try:
        database.create(env, log)
        port = _free_port()
        ingest = _start(
            [str(VENV_BIN / "gunicorn"), "-c", "python:crm.gunicorn_ingest_conf", "--pythonpath", str(ROOT / "bench"),
             "_callback_asgi:application", "--bind", f"127.0.0.1:{port}", "--workers", str(workers),
             "--log-level", "warning"],
            env, log,
        )  # fmt: skip
        _wait_listening(port, ingest)
        bare_requests = [_http_post(port, "/bench/bare", b"<xml/>") for _ in range(count)]
        warm = _drive(port, _callback_requests(port, WARMUP, 0) + bare_requests[:WARMUP], RATE / 2)
        cb = _drive(port, _callback_requests(port, count, WARMUP), RATE)
        bare = _drive(port, bare_requests, RATE)
        _stop(ingest)
        ingest = None
        stored = database.count_stored()

        # Context: the same callbacks through the Django view in the web app's sync workers.
        web_port = _free_port()
        web = _start(
            [str(VENV_BIN / "gunicorn"), "--pythonpath", str(ROOT / "bench"), "_callback_wsgi:application",
             "--bind", f"127.0.0.1:{web_port}", "--workers", str(web_workers), "--backlog", "4096",
             "--log-level", "warning"],
            env, log,
        )  # fmt: skip
        _wait_listening(web_port, web)
        _drive(web_port, _callback_requests(web_port, WARMUP, WARMUP + count), RATE / 2)
        django_view = _drive(web_port, _callback_requests(web_port, count, 2 * WARMUP + count), RATE)
    finally:
        _stop(ingest)
        _stop(web)
        log.close()
        database.drop()
        _clean_redis(redis_url)
        shutil.rmtree(tmp, ignore_errors=True)

    # Warm-up requests mix callbacks and bare calls: only callbacks are stored, so bound by what was stored.
    lost = max(0, cb["ok"] + min(warm["ok"], WARMUP) - stored)
    engine = "PostgreSQL" if database.postgres else "SQLite"
    note = (
        f"ingest server: offered {RATE:.0f}/s x {SECONDS:.0f}s to {workers} uvicorn workers under gunicorn on "
        f"{os.cpu_count()} CPUs, {engine}; {cb['ok']} acknowledged, {cb['abandoned']} not sent (server behind), "
        f"statuses {cb['statuses']}, {lost} acknowledged but not stored. The Django view in {web_workers} sync "
        f"workers, same rate, same run: {django_view['ack_per_s']:.0f}/s, p99 {django_view['p99_ms']:.0f} ms"
    )
    return [
        {
            "name": "callback_ingest.ack_per_s",
            "value": round(cb["ack_per_s"], 1),
            "unit": "req/s",
            "baseline": round(bare["ack_per_s"], 1),
            "ratio": round(cb["ack_per_s"] / bare["ack_per_s"], 3) if bare["ack_per_s"] else None,
            "target": f">= {TARGET_ACK_PER_S:.0f}/s, every acknowledged callback stored",
            "met": cb["ack_per_s"] >= TARGET_ACK_PER_S and lost == 0,
            "note": note,
        },
        {
            "name": "callback_ingest.p99_latency",
            "value": round(cb["p99_ms"], 1),
            "unit": "ms",
            "baseline": round(bare["p99_ms"], 1),
            "ratio": round(cb["p99_ms"] / bare["p99_ms"], 3) if bare["p99_ms"] else None,
            "target": f"< {TARGET_P99_MS:.0f} ms",
            "met": cb["p99_ms"] < TARGET_P99_MS,
            "note": f"p50 {cb['p50_ms']:.1f} ms (bare {bare['p50_ms']:.1f} ms); {note}",
        },
    ]


def _clean_redis(url: str) -> None:
    import redis

    try:
        client = redis.Redis.from_url(url)
        keys = [*client.scan_iter(match="crm:*", count=1000), b"callbacks"]
        client.delete(*keys)
    except Exception:  # cleaning up is best effort
        pass


if __name__ == "__main__":
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "crm.settings")
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    for row in run():
        print(row)
