"""`make run`'s supervisor as a newcomer meets it: a fresh var/ and nothing at REDIS_URL (so it starts the embedded
Redis), everything comes up, serves and seeds, a command beside it shares its Redis, and a stop is total.

Each run gets a marker in its environment, which every process it starts inherits: "nothing of the run is left"
means no process on the machine carries the marker, every port is free and the Redis socket is gone."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
import redis
import requests

from tests.conftest import free_port

ROOT = Path(__file__).resolve().parents[2]
DEAD_REDIS = "redis://127.0.0.1:1/0"  # nothing answers: the supervisor starts the embedded Redis
READY = "Ctrl-C stops everything"
STOP_WITHIN = 20

pytestmark = pytest.mark.timeout(900)


def port_open(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


def marked_pids(marker: str) -> list[int]:
    needle = f"CRM_RUN_MARKER={marker}".encode()
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            with open(f"/proc/{entry}/environ", "rb") as handle:
                if needle in handle.read().split(b"\0"):
                    found.append(int(entry))
        except OSError:
            continue
    return found


class Run:
    """One `make run` (scripts/run.py, or the Makefile target itself) on a given var/ and ports."""

    def __init__(self, var_dir: Path, *, via_make: bool = False):
        self.var_dir = var_dir
        self.port, self.sim_port, self.ingest_port = free_port(), free_port(), free_port()
        self.ports = [self.port, self.sim_port, self.ingest_port]
        self.base = f"http://127.0.0.1:{self.port}"
        self.marker = uuid.uuid4().hex
        self.env = dict(os.environ, VAR_DIR=str(var_dir), PORT=str(self.port), SIM_PORT=str(self.sim_port),
                        INGEST_PORT=str(self.ingest_port), REDIS_URL=DEAD_REDIS, WECOM_SIM_ENABLED="1",
                        DATABASE_URL=f"sqlite:///{var_dir / 'crm.sqlite3'}", CRM_RUN_MARKER=self.marker,
                        DEMO_CUSTOMERS="8")  # a smaller demo: the seed's own test covers the full one
        for key in ("WECOM_API_BASE_URL", "WECOM_PAY_BASE_URL", "WECOM_CALLBACK_URL", "PUBLIC_BASE_URL", "DEMO_SEED"):
            self.env.pop(key, None)
        self.log = var_dir / f"run-{self.marker[:8]}.log"
        self.out = open(self.log, "w")
        argv = ["make", "-s", "run"] if via_make else [sys.executable, "scripts/run.py"]
        self.proc = subprocess.Popen(argv, cwd=ROOT, env=self.env, stdout=self.out, stderr=subprocess.STDOUT,
                                     start_new_session=True)

    def text(self) -> str:
        return self.log.read_text()

    def wait_for_line(self, needle: str, timeout: float = 240) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if needle in self.text():
                return
            if self.proc.poll() is not None:
                pytest.fail(f"run exited with {self.proc.returncode} before {needle!r}:\n{self.text()[-4000:]}")
            time.sleep(0.1)
        pytest.fail(f"no {needle!r} in {timeout}s:\n{self.text()[-4000:]}")

    def signal(self, sig: int, to_group: bool) -> None:
        if to_group:
            os.killpg(self.proc.pid, sig)
        else:
            self.proc.send_signal(sig)

    def assert_all_gone(self) -> None:
        """Within STOP_WITHIN seconds: no process of the run, every port free, no Redis socket."""
        deadline = time.monotonic() + STOP_WITHIN
        while time.monotonic() < deadline:
            left = marked_pids(self.marker)
            busy = [p for p in self.ports if port_open(p)]
            sockets = list(self.var_dir.glob("redis-*.sock"))
            if not left and not busy and not sockets:
                return
            time.sleep(0.2)
        pytest.fail(f"after {STOP_WITHIN}s: processes {left}, ports {busy}, sockets {sockets}\n{self.text()[-3000:]}")

    def finish(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
        for pid in marked_pids(self.marker):  # never leave a server behind for the rest of the suite
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.out.close()


def login(base: str) -> requests.Session:
    session = requests.Session()
    assert session.get(f"{base}/admin/login/", timeout=10).status_code == 200
    token = session.cookies["csrftoken"]
    answer = session.post(f"{base}/admin/login/?next=/admin/",
                          data={"username": "admin", "password": "admin", "csrfmiddlewaretoken": token},
                          headers={"Referer": f"{base}/admin/login/"}, timeout=30)
    assert answer.status_code == 200 and "/admin/logout/" in answer.text, answer.text[:500]
    return session


def assert_no_secrets_in_logs(run: Run, redis_url: str, *more: str) -> None:
    """After the seed and a `simulate` journey (adds, callbacks, scans, a campaign, red-packet payouts, OAuth): no
    process's log holds the corp secret, the callback token or AES key, the pay keys, Django's secret key, or an
    access token the CRM used (read from its token cache), and no URL in a log carries an access_token."""
    probe = subprocess.run(
        [sys.executable, "manage.py", "shell", "-c",
         "import json; from django.conf import settings as s; print(json.dumps([s.WECOM_CORP_SECRET, "
         "s.WECOM_CALLBACK_TOKEN, s.WECOM_ENCODING_AES_KEY, s.WECOM_PAY_API_KEY, s.WECOM_PAY_SECRET, s.SECRET_KEY, "
         "s.WECHAT_OAUTH_SECRET]))"],
        cwd=ROOT, env=run.env, capture_output=True, text=True, timeout=60)
    secrets = json.loads(probe.stdout.strip().splitlines()[-1])
    client = redis.Redis.from_url(redis_url)
    tokens = [client.get(key).decode() for key in client.scan_iter("crm:wecom:token:*")]
    assert tokens, "the CRM cached an access token during the journey"
    logs = {path.name: path.read_text(errors="replace") for path in (run.var_dir / "log").glob("*.log")}
    logs["terminal"] = run.text()
    logs["simulate"] = "".join(more)
    for name, text in logs.items():
        for secret in [*secrets, *tokens]:
            assert secret and secret not in text, f"a secret ({secret[:4]}…) is in the {name} log"
        assert not re.search(r"access_token=[^&\s\"]{6,}", text), f"an access_token in a URL in the {name} log"


def test_make_run_serves_everything_shares_its_redis_and_stops_on_ctrl_c(tmp_path):
    for attempt in (1, 2):  # the second run picks up the first one's data
        run = Run(tmp_path)
        try:
            run.wait_for_line(READY)
            text = run.text()
            health = requests.get(f"{run.base}/healthz", timeout=10)
            assert health.status_code == 200 and health.json()["checks"]["worker"]["alive"] >= 1
            ready = requests.get(f"{run.base}/readyz", timeout=10).json()
            assert ready["ok"] and ready["checks"]["demo_seed"]["state"] == "done"
            session = login(run.base)
            assert session.get(f"{run.base}/api/docs/", timeout=10).status_code == 200
            assert session.get(f"{run.base}/api/schema/", timeout=30).status_code == 200
            gettoken = requests.get(f"http://127.0.0.1:{run.sim_port}/wecom-sim/cgi-bin/gettoken", timeout=10).json()
            assert gettoken["errcode"] != 0  # no credentials given: a WeCom error, in WeCom's envelope
            # The printed simulator admin URL answers, and the key it prints opens the control API.
            sim_admin = f"http://127.0.0.1:{run.sim_port}/wecom-sim/admin/"
            assert f"{sim_admin}  (header X-Sim-Admin-Key: sim-admin)" in text
            assert requests.get(sim_admin, timeout=10).status_code == 200
            stats = requests.get(f"{sim_admin}stats", headers={"X-Sim-Admin-Key": "sim-admin"}, timeout=10)
            assert stats.status_code == 200
            ingest = requests.get(f"http://127.0.0.1:{run.ingest_port}/healthz", timeout=10)
            assert ingest.status_code == 200 and ingest.json()["ok"]
            assert f"{run.base}/admin/" in text and "admin / admin" in text and "marketing / marketing" in text
            # The demo shoppers were added by callback, and the simulator sends callbacks to the ingest server.
            assert f"http://127.0.0.1:{run.ingest_port}/wecom/callback" in text
            # A person reads the terminal; the JSON logs are in var/log/, one file per process.
            assert not [line for line in text.splitlines() if line.startswith("{")]
            for name in ("web", "worker", "beat", "simulator", "ingest", "seed", "migrate"):
                assert (tmp_path / "log" / f"{name}.log").stat().st_size > 0, name
            recorded = (tmp_path / "redis.url").read_text().strip()
            assert recorded.startswith("unix://") and redis.Redis.from_url(recorded).ping()

            if attempt == 1:
                # `make simulate` beside the run: same var/, nothing at REDIS_URL. It uses the run's Redis and,
                # being not its starter, leaves it running.
                simulate = subprocess.run(
                    [sys.executable, "-m", "crm.embedded_redis", "--", sys.executable, "manage.py", "simulate",
                     "--customers", "2", "--seed", "3"],
                    cwd=ROOT, env=dict(run.env, CRM_RUN_MARKER="simulate"), capture_output=True, text=True,
                    timeout=240)
                assert simulate.returncode == 0, simulate.stderr[-3000:]
                assert "started an embedded Redis" not in simulate.stderr
                assert '"reconciled": true' in simulate.stdout
                assert_no_secrets_in_logs(run, recorded, simulate.stdout + simulate.stderr)
                assert redis.Redis.from_url(recorded).ping()
                after = requests.get(f"{run.base}/healthz", timeout=10)
                assert after.status_code == 200, after.text
                # A bare manage.py command beside the run finds the same Redis through var/redis.url.
                env = {k: v for k, v in run.env.items() if k != "REDIS_URL"}
                probe = subprocess.run([sys.executable, "manage.py", "shell", "-c",
                                        "from django.conf import settings; print(settings.REDIS_URL)"],
                                       cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
                socket_path = recorded.split("://", 1)[1].split("?")[0]
                assert socket_path in probe.stdout, probe.stdout + probe.stderr

            run.signal(signal.SIGINT, to_group=True)  # what Ctrl-C in a terminal sends to the foreground group
            assert run.proc.wait(timeout=STOP_WITHIN) == 0
            run.assert_all_gone()
            assert not (tmp_path / "redis.url").exists()
        finally:
            run.finish()


@pytest.fixture(scope="module")
def shared_var(tmp_path_factory):
    """One var/ for the stop cases: migrated once, and each case starts from what the one before left behind
    (killed mid-seed included), which is what a newcomer's second `make run` does."""
    return tmp_path_factory.mktemp("make-run-stops")


# (when, signals, to the process group?, via make?)
STOP_CASES = [
    ("startup", [signal.SIGTERM, signal.SIGTERM], True, False),  # make forwards TERM: the supervisor gets two
    ("seed", [signal.SIGKILL], False, False),  # the supervisor dies mid-seed: its children die with it
    ("seed", [signal.SIGINT], False, False),
    ("ready", [signal.SIGTERM, signal.SIGINT, signal.SIGTERM], True, True),  # the real `make run`, to make's group
    ("ready", [signal.SIGKILL], False, False),
]
WHEN = {"startup": "started worker", "seed": "seeding demo data", "ready": READY}


@pytest.mark.parametrize(("when", "signals", "to_group", "via_make"), STOP_CASES,
                         ids=[f"{c[0]}-{'+'.join(s.name for s in c[1])}-{'group' if c[2] else 'supervisor'}"
                              f"{'-make' if c[3] else ''}" for c in STOP_CASES])
def test_stopping_is_total_and_idempotent(shared_var, when, signals, to_group, via_make):
    run = Run(shared_var, via_make=via_make)
    try:
        run.wait_for_line(WHEN[when])
        for sig in signals:
            run.signal(sig, to_group)
            time.sleep(0.05)
        code = run.proc.wait(timeout=STOP_WITHIN)
        if signal.SIGKILL not in signals and not via_make:
            assert code == 0, run.text()[-3000:]
            assert "[run] stopped" in run.text()
        run.assert_all_gone()
    finally:
        run.finish()


def test_a_child_that_dies_during_startup_stops_the_run_and_says_why(tmp_path):
    """The worker dies while the others start: the run stops at once, naming the child and showing its last log
    lines, instead of waiting for a seed that cannot finish."""
    run = Run(tmp_path)
    try:
        run.wait_for_line("started beat")
        worker = next(int(line.split("pid")[1].split()[0]) for line in run.text().splitlines()
                      if line.startswith("[run] started worker"))
        os.kill(worker, signal.SIGKILL)
        assert run.proc.wait(timeout=60) == 1
        text = run.text()
        assert "[run] error: worker exited with code -9; stopping everything" in text
        assert "Last lines of" in text and "worker.log" in text
        run.assert_all_gone()
    finally:
        run.finish()
