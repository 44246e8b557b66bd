"""Isolation of parallel test workers (pytest-xdist): each worker gets its own Redis database.

Loaded with `-p` (pyproject addopts) so that it runs before pytest-django loads the settings: REDIS_URL is read
once, at import. Each worker's Celery queues, red-packet state, simulator rate windows and caches then live in
their own database, so a worker process started by one test worker never takes another's tasks. The databases
are already per worker (pytest-django suffixes test_<name>_gw<N>); live servers and ports are picked free.
"""

from __future__ import annotations

import os
import re

import pytest


def worker_redis_url(url: str, index: int) -> str:
    """The same Redis, database `base + index` (mod 16): redis://h:p/N, redis://h:p, unix:///s.sock?db=N."""
    if url.startswith(("unix://", "redis+socket://")):
        match = re.search(r"([?&])db=(\d+)", url)
        base = int(match.group(2)) if match else 0
        db = (base + index) % 16
        if match:
            return url[: match.start()] + f"{match.group(1)}db={db}" + url[match.end() :]
        return url + ("&" if "?" in url else "?") + f"db={db}"
    head, _, tail = url.partition("://")
    hostport, _, rest = tail.partition("/")
    path, sep, query = rest.partition("?")
    base = int(path) if path.isdigit() else 0
    return f"{head}://{hostport}/{(base + index) % 16}{sep}{query}"


@pytest.hookimpl(tryfirst=True)
def pytest_load_initial_conftests(early_config, parser, args):
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")
    if worker.startswith("gw") and worker[2:].isdigit():
        url = os.environ.get("REDIS_URL") or "redis://127.0.0.1:6379/0"
        os.environ["REDIS_URL"] = worker_redis_url(url, int(worker[2:]))
