"""Fail fast, in one line, when the database or Redis cannot be reached.

A traceback from deep inside a driver tells an operator nothing; this says which variable to set.
"""

from __future__ import annotations

import sys

# Commands that cannot do anything useful without both services.
NEEDS_SERVICES = {"migrate", "runserver", "seed_demo", "simulate", "createsuperuser", "healthcheck"}


def database_problem() -> str | None:
    from django.conf import settings
    from django.db import connections

    try:
        connections["default"].ensure_connection()
    except Exception as exc:  # any driver error: we only report it
        url = settings.DATABASE_URL
        safe = url.split("@")[-1] if "@" in url else url
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        return f"cannot reach the database at {safe} ({first}); set DATABASE_URL, e.g. postgres://user@127.0.0.1:5432/crm"
    return None


def redis_problem() -> str | None:
    import redis
    from django.conf import settings

    try:
        redis.Redis.from_url(settings.REDIS_URL, socket_connect_timeout=2, socket_timeout=2).ping()
    except Exception as exc:
        return f"cannot reach Redis at {settings.REDIS_URL} ({exc}); set REDIS_URL, e.g. redis://127.0.0.1:6379/0"
    return None


def check_services() -> list[str]:
    return [p for p in (database_problem(), redis_problem()) if p]


def run_preflight(argv: list[str]) -> None:
    if len(argv) < 2 or argv[1] not in NEEDS_SERVICES:
        return
    import django

    try:
        django.setup()
    except Exception as exc:  # ImproperlyConfigured from a bad variable
        sys.stderr.write(f"error: {exc}\n")
        raise SystemExit(2) from None
    problems = check_services()
    if problems:
        for problem in problems:
            sys.stderr.write(f"error: {problem}\n")
        raise SystemExit(2)
