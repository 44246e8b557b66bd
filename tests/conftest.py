"""Shared fixtures: real Redis, a live HTTP server (CRM + simulator), and a real Celery worker process."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import redis as redis_lib
from django.conf import settings

from crm.heartbeat import HEARTBEAT_PREFIX

ROOT = Path(__file__).resolve().parent.parent
APP_KEY_PATTERNS = ("crm:*", "wecomsim:*")


def pytest_configure(config):
    from crm.preflight import redis_problem

    problem = redis_problem()
    if problem:
        raise pytest.UsageError(problem + " (make test starts an embedded Redis when none answers)")


@pytest.fixture(scope="session")
def redis_client():
    return redis_lib.Redis.from_url(settings.REDIS_URL)


def _clear_app_keys(client) -> None:
    for pattern in APP_KEY_PATTERNS:
        keys = [k for k in client.scan_iter(match=pattern, count=1000) if not k.startswith(HEARTBEAT_PREFIX.encode())]
        if keys:
            client.delete(*keys)


@pytest.fixture(autouse=True)
def _isolated_redis(redis_client):
    """Each test starts with none of the app's Redis keys (`crm:*`: tokens, locks, red-packet state, replay guards;
    `wecomsim:*`: the simulator's rate windows and faults).

    Broker queues are left alone; a running worker's bindings live there."""
    _clear_app_keys(redis_client)
    yield


def test_database_url() -> str:
    """A DATABASE_URL for other processes (workers) that points at the test database."""
    from django.db import connection

    db = connection.settings_dict
    if db["ENGINE"].endswith("sqlite3"):
        return f"sqlite:///{db['NAME']}"
    user = db.get("USER") or ""
    password = f":{db['PASSWORD']}" if db.get("PASSWORD") else ""
    auth = f"{user}{password}@" if user else ""
    host = db.get("HOST") or "127.0.0.1"
    port = f":{db['PORT']}" if db.get("PORT") else ""
    return f"postgres://{auth}{host}{port}/{db['NAME']}"


test_database_url.__test__ = False  # not a test


@pytest.fixture
def live_stack(live_server, settings):
    """The CRM and the simulator served over real HTTP by one live server, wired to each other.

    Yields the base URL. The CRM's WeCom client is pointed at the simulator under it, and the
    simulator's callbacks at the CRM's /wecom/callback under it."""
    base = live_server.url
    settings.PUBLIC_BASE_URL = base
    settings.WECOM_API_BASE_URL = f"{base}/wecom-sim/cgi-bin"
    settings.WECOM_PAY_BASE_URL = f"{base}/wecom-sim/mch"
    settings.WECOM_CALLBACK_URL = f"{base}/wecom/callback"
    settings.WECOM_SIM = {**settings.WECOM_SIM, "CALLBACK_URL": f"{base}/wecom/callback"}
    yield base


class WorkerProcess:
    """A real `celery worker` child process, consuming every queue, against the test database."""

    def __init__(self, env: dict[str, str]) -> None:
        self.env = env
        self.log_path = ROOT / "var" / "test-worker.log"
        self.proc: subprocess.Popen | None = None

    def start(self, redis_client, timeout: float = 60) -> None:
        before = set(redis_client.scan_iter(match=HEARTBEAT_PREFIX + "*"))
        hostname = f"testworker-{os.getpid()}-{time.monotonic_ns()}@localhost"
        cmd = [
            sys.executable, "-m", "celery", "-A", "crm", "worker",
            "-Q", "callbacks,pushes,redpackets,default",
            "--pool", "threads", "--concurrency", "4",
            "--hostname", hostname, "--loglevel", "INFO", "--without-gossip", "--without-mingle",
        ]
        self.log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(cmd, cwd=ROOT, env=self.env, stdout=self.log, stderr=subprocess.STDOUT)
        key = (HEARTBEAT_PREFIX + hostname).encode()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"celery worker exited with {self.proc.returncode}; see {self.log_path}")
            if redis_client.exists(key):
                return
            time.sleep(0.1)
        del before
        raise RuntimeError(f"celery worker did not become ready in {timeout}s; see {self.log_path}")

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc:
            self.log.close()

    def kill(self) -> None:
        """Die without cleanup, as a crashed machine would."""
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()


def worker_env(base_url: str, **extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        DJANGO_SETTINGS_MODULE="crm.settings",
        DATABASE_URL=test_database_url(),
        REDIS_URL=settings.REDIS_URL,
        PUBLIC_BASE_URL=base_url,
        WECOM_API_BASE_URL=f"{base_url}/wecom-sim/cgi-bin",
        WECOM_PAY_BASE_URL=f"{base_url}/wecom-sim/mch",
        WECOM_CALLBACK_URL=f"{base_url}/wecom/callback",
        CELERY_TASK_ALWAYS_EAGER="false",
        PYTHONUNBUFFERED="1",
    )
    env.update(extra)
    return env


@pytest.fixture(scope="session")
def _session_worker(request, django_db_setup, django_db_blocker, live_server, redis_client):
    with django_db_blocker.unblock():
        env = worker_env(live_server.url)
    worker = WorkerProcess(env)
    worker.start(redis_client)
    yield worker
    worker.stop()


@pytest.fixture
def celery_worker(live_stack, _session_worker):
    """A real Celery worker process (shared by the session), wired to the live stack."""
    if _session_worker.proc.poll() is not None:
        _session_worker.start(redis_lib.Redis.from_url(settings.REDIS_URL))
    return _session_worker


@pytest.fixture
def worker_factory(live_stack, django_db_blocker, redis_client):
    """Start extra, private worker processes (e.g. to kill one mid-task). Stopped after the test."""
    started: list[WorkerProcess] = []

    def start(**extra_env: str) -> WorkerProcess:
        with django_db_blocker.unblock():
            worker = WorkerProcess(worker_env(live_stack, **extra_env))
        worker.start(redis_client)
        started.append(worker)
        return worker

    yield start
    for worker in started:
        worker.stop()


def wait_for(predicate, timeout: float = 20.0, interval: float = 0.1, message: str = "condition"):
    """Poll until predicate() is truthy; return its value or fail the test with `message`."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout}s waiting for {message}")
        time.sleep(interval)
