"""`make run`'s supervisor on a fresh var/ directory: everything comes up, serves, and Ctrl-C stops it all.
Then it runs a second time over the same data (idempotent migrate and seed)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from tests.conftest import free_port

ROOT = Path(__file__).resolve().parents[2]


def port_open(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


def start_run(env: dict, log: Path) -> tuple[subprocess.Popen, object]:
    out = open(log, "w")
    proc = subprocess.Popen([sys.executable, "scripts/run.py"], cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT,
                            start_new_session=True)
    return proc, out


def wait_ready(proc: subprocess.Popen, log: Path, timeout: float = 240) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if "Ctrl-C stops everything" in log.read_text():
            return
        if proc.poll() is not None:
            pytest.fail(f"run.py exited with {proc.returncode}:\n{log.read_text()[-4000:]}")
        time.sleep(0.5)
    pytest.fail(f"run.py not ready in {timeout}s:\n{log.read_text()[-4000:]}")


def wait_healthy(base: str, timeout: float = 60) -> dict:
    deadline = time.monotonic() + timeout
    body = {}
    while time.monotonic() < deadline:
        response = requests.get(f"{base}/healthz", timeout=5)
        body = response.json()
        if response.status_code == 200:
            return body
        time.sleep(0.5)
    pytest.fail(f"/healthz never became 200: {body}")


def stop(proc: subprocess.Popen, ports: list[int]) -> None:
    os.killpg(proc.pid, signal.SIGINT)  # what Ctrl-C in a terminal sends to the foreground group
    assert proc.wait(timeout=60) == 0
    deadline = time.monotonic() + 20
    while any(port_open(p) for p in ports) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not any(port_open(p) for p in ports), "a server outlived Ctrl-C"


@pytest.mark.timeout(600)
def test_make_run_serves_everything_and_stops_on_ctrl_c(tmp_path):
    port, sim_port, ingest_port = free_port(), free_port(), free_port()
    redis_url = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
    # Its own Redis database, so its worker never takes the test suite's tasks.
    if redis_url.startswith("redis://"):
        redis_url = redis_url.rsplit("/", 1)[0] + "/13"
    else:
        redis_url = redis_url.replace("db=0", "db=13")
    env = dict(os.environ, VAR_DIR=str(tmp_path), PORT=str(port), SIM_PORT=str(sim_port),
               INGEST_PORT=str(ingest_port), REDIS_URL=redis_url,
               DATABASE_URL=f"sqlite:///{tmp_path / 'crm.sqlite3'}")
    for key in ("WECOM_API_BASE_URL", "WECOM_PAY_BASE_URL", "WECOM_CALLBACK_URL", "PUBLIC_BASE_URL"):
        env.pop(key, None)
    base = f"http://127.0.0.1:{port}"

    for attempt in (1, 2):
        log = tmp_path / f"run-{attempt}.log"
        proc, out = start_run(env, log)
        try:
            wait_ready(proc, log)
            health = wait_healthy(base)
            assert health["checks"]["worker"]["alive"] >= 1
            session = requests.Session()
            login_page = session.get(f"{base}/admin/login/", timeout=10)
            assert login_page.status_code == 200
            token = session.cookies["csrftoken"]
            logged_in = session.post(f"{base}/admin/login/?next=/admin/",
                                     data={"username": "admin", "password": "admin", "csrfmiddlewaretoken": token},
                                     headers={"Referer": f"{base}/admin/login/"}, timeout=10)
            assert logged_in.status_code == 200 and "Log out" in logged_in.text
            assert session.get(f"{base}/api/docs/", timeout=10).status_code == 200
            assert session.get(f"{base}/api/schema/", timeout=10).status_code == 200
            gettoken = requests.get(f"http://127.0.0.1:{sim_port}/wecom-sim/cgi-bin/gettoken", timeout=10).json()
            assert gettoken["errcode"] != 0  # no credentials given: a WeCom error, in WeCom's envelope
            ingest = requests.get(f"http://127.0.0.1:{ingest_port}/healthz", timeout=10)
            assert ingest.status_code == 200 and ingest.json()["ok"]
            text = log.read_text()
            assert f"{base}/admin/" in text and "admin / admin" in text
            # The demo shoppers were added by callback, and the simulator sends callbacks to the ingest server.
            assert f"http://127.0.0.1:{ingest_port}/wecom/callback" in text
            assert "added 12 customers" in text or attempt == 2
        finally:
            if proc.poll() is None:
                stop(proc, [port, sim_port, ingest_port])
            out.close()
