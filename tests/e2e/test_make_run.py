"""`make run`'s supervisor as a newcomer meets it: a fresh var/ and nothing at REDIS_URL (so it starts the embedded
Redis), everything comes up, serves and seeds, a command beside it shares its Redis, no secret reaches a log, and
Ctrl-C stops all of it. How it stops in other ways, and runs again on what an earlier run left (its data, a
seed killed half-way): test_make_run_stops.py, whose runs share one var/."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys

import pytest
import redis
import requests

from tests.e2e.make_run import READY, ROOT, STOP_WITHIN, Run

pytestmark = pytest.mark.timeout(900)


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
