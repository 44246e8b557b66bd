"""Shared fixtures: real Redis, a live HTTP server (CRM + simulator), and a real Celery worker process."""

from __future__ import annotations

import os
import socket
import time
from collections import Counter
from pathlib import Path

import pytest
import redis as redis_lib
from django.conf import settings

from crm.heartbeat import HEARTBEAT_PREFIX
from crm.localstack import WorkerProcess, child_env, wire_settings

ROOT = Path(__file__).resolve().parent.parent
APP_KEY_PATTERNS = ("crm:*", "wecomsim:*")
# One worker log per parallel test worker (tests/xdist_isolation.py).
_XDIST = os.environ.get("PYTEST_XDIST_WORKER", "")
WORKER_LOG = ROOT / "var" / (f"test-worker-{_XDIST}.log" if _XDIST else "test-worker.log")


# The files that take longest, first. xdist (`--dist loadfile`) hands whole files to its workers in collection
# order, so a long file collected late leaves one worker running alone at the end while the others idle: longest
# first evens the finish. Seconds per file on 2 CPUs (`make test PYTEST_ARGS=--durations=150`), longest first.
SLOWEST_FIRST = (
    "tests/e2e/test_make_run_stops.py",  # ~280
    "tests/e2e/test_make_run.py",  # ~215
    "tests/browser/test_console_journeys.py",  # ~130
    "tests/fuzz/test_api_schema.py",  # ~100
    "tests/e2e/test_journey_faults.py",  # ~80
    "tests/browser/test_pool_page.py",  # ~70
    "tests/crm/sending/test_poll_lease.py",  # ~70
    "tests/crm/planning/test_planning_crash_live.py",  # ~65
    "tests/browser/test_coupon_grants.py",  # ~57
    "tests/e2e/test_seed_converges.py",  # ~54
    "tests/browser/test_handover_wizard.py",  # ~52
    "tests/crm/contacts/test_converge.py",  # ~51
    "tests/browser/test_pool_approval.py",  # ~51
    "tests/browser/test_campaign_progress.py",  # ~50
)


def pytest_collection_modifyitems(config, items):
    """SLOWEST_FIRST, then the other files by their number of tests (what xdist's own reordering goes by; the
    Makefile turns that off with --no-loadscope-reorder, as it would put a long one-test file last)."""
    files = [item.nodeid.split("::", 1)[0] for item in items]
    rank, sizes = {path: n for n, path in enumerate(SLOWEST_FIRST)}, Counter(files)
    order = {id(item): (rank.get(f, len(rank)), -sizes[f], f) for item, f in zip(items, files, strict=True)}
    items.sort(key=lambda item: order[id(item)])  # stable: a file's tests keep their order


def pytest_configure(config):
    # The live server's wsgiref handler writes headers and body separately; with Nagle's algorithm on, every
    # response then waits for a delayed ACK (~40 ms). Real servers set TCP_NODELAY; so does this one.
    from django.core.servers.basehttp import WSGIRequestHandler

    WSGIRequestHandler.disable_nagle_algorithm = True
    _retry_flush_on_deadlock()
    _flush_by_delete_on_postgresql()

    from crm.preflight import redis_problem

    problem = redis_problem()
    if problem:
        raise pytest.UsageError(problem + " (make test starts an embedded Redis when none answers)")


def _flush_by_delete_on_postgresql() -> None:
    """A transactional test ends by emptying every table. PostgreSQL's TRUNCATE of the ~90 tables costs ~0.6 s a
    test (it rewrites each table's files); a DELETE of the few rows a test leaves, with the foreign keys checked at
    commit (Django makes them DEFERRABLE), costs ~0.03 s: four minutes of the suite. Test teardown only."""
    from django.db.backends.postgresql.operations import DatabaseOperations

    original = DatabaseOperations.sql_flush

    def sql_flush(self, style, tables, *, reset_sequences=False, allow_cascade=False):
        if not tables or reset_sequences:
            return original(self, style, tables, reset_sequences=reset_sequences, allow_cascade=allow_cascade)
        names = [self.quote_name(table) for table in tables]
        # The lock keeps a worker or the simulator's delivery thread from inserting a row that points at one just
        # deleted (TRUNCATE's own lock did that); it lets their reads through.
        return ["SET CONSTRAINTS ALL DEFERRED", f"LOCK TABLE {', '.join(names)} IN SHARE ROW EXCLUSIVE MODE",
                *[f"DELETE FROM {name}" for name in names]]

    DatabaseOperations.sql_flush = sql_flush


def _retry_flush_on_deadlock() -> None:
    """A transactional test ends with TRUNCATE of every table. On PostgreSQL that can deadlock with a worker or
    the simulator's delivery thread still finishing a read of the test's data; PostgreSQL then aborts one side.
    Retrying the flush is what an operator would do; the code under test is not involved."""
    from django.core.management.base import CommandError
    from django.db import OperationalError
    from django.test import TransactionTestCase

    original = TransactionTestCase._fixture_teardown

    def teardown_with_retry(self):
        for attempt in range(5):
            try:
                return original(self)
            except (CommandError, OperationalError) as exc:
                if attempt == 4 or "deadlock" not in str(exc.__cause__ or exc).lower():
                    raise
                time.sleep(0.5 * (attempt + 1))

    TransactionTestCase._fixture_teardown = teardown_with_retry


@pytest.fixture(scope="session", autouse=True)
def _stop_sim_delivery(django_db_setup):
    """The simulator delivers callbacks from a thread in the process serving it (here, the live server):
    stop it before the test database is dropped."""
    yield
    from wecom_sim import delivery

    delivery.stop()


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


@pytest.fixture(autouse=True)
def _default_language():
    """Each test starts in the default language. The language a request activates stays active in the thread
    afterwards (LocaleMiddleware sets it per request and never resets it), so a test that rendered a Chinese page
    would otherwise hand Chinese to the next test's direct calls."""
    from django.utils import translation

    translation.activate(settings.LANGUAGE_CODE)
    yield
    translation.deactivate()


@pytest.fixture
def live_stack(live_server, settings):
    """The CRM and the simulator served over real HTTP by one live server, wired to each other.

    Yields the base URL. The CRM's WeCom client is pointed at the simulator under it, and the
    simulator's callbacks at the CRM's /wecom/callback under it."""
    # `settings` (pytest-django) restores every value after the test; wire_settings assigns through it.
    settings.PUBLIC_BASE_URL = settings.PUBLIC_BASE_URL
    settings.WECOM_API_BASE_URL = settings.WECOM_API_BASE_URL
    settings.WECOM_PAY_BASE_URL = settings.WECOM_PAY_BASE_URL
    settings.WECOM_CALLBACK_URL = settings.WECOM_CALLBACK_URL
    settings.WECOM_SIM = dict(settings.WECOM_SIM)
    settings.WECHAT_OAUTH_AUTHORIZE_URL = settings.WECHAT_OAUTH_AUTHORIZE_URL
    settings.WECHAT_SNS_BASE_URL = settings.WECHAT_SNS_BASE_URL
    wire_settings(live_server.url)
    yield live_server.url


def worker_env(base_url: str, **extra: str) -> dict[str, str]:
    return child_env(base_url, **extra)


@pytest.fixture(scope="session")
def _session_worker(request, django_db_setup, django_db_blocker, live_server, redis_client):
    with django_db_blocker.unblock():
        env = worker_env(live_server.url)
    worker = WorkerProcess(env, log_path=WORKER_LOG)
    worker.start(redis_client)
    yield worker
    worker.stop()


@pytest.fixture
def celery_worker(live_stack, _session_worker):
    """A real Celery worker process (shared by the session), wired to the live stack."""
    if not _session_worker.alive:
        _session_worker.start(redis_lib.Redis.from_url(settings.REDIS_URL))
    return _session_worker


@pytest.fixture
def worker_factory(live_stack, django_db_blocker, redis_client):
    """Start extra, private worker processes (e.g. to kill one mid-task). Stopped after the test."""
    started: list[WorkerProcess] = []

    def start(queues: str = "", **extra_env: str) -> WorkerProcess:
        with django_db_blocker.unblock():
            worker = WorkerProcess(
                worker_env(live_stack, **extra_env), log_path=WORKER_LOG, queues=queues
            )
        worker.start(redis_client)
        started.append(worker)
        return worker

    yield start
    for worker in started:
        worker.stop()


def free_port() -> int:
    """A loopback port nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


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
