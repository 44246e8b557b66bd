"""/healthz (liveness): database, Redis and a live worker heartbeat; 200 only when all three are fine.
/healthz/money: every red-packet pool's latest scheduled reconciliation balanced, and none left unchecked; 503
otherwise (what monitoring alerts on: a money difference must page someone, not restart the web process).
/readyz (readiness): the same, plus every migration applied and, where this deployment seeds demo data
(DEMO_SEED, set by `make run`), the seed finished. A load balancer or `make run` waits for /readyz."""

from __future__ import annotations

import time

import redis
from django.conf import settings
from django.db import connection
from django.http import JsonResponse
from django.views.decorators.http import require_GET

from crm.heartbeat import HEARTBEAT_PREFIX


def _check_database() -> dict:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        return {"ok": True}
    except Exception as exc:
        return {"ok": False, "error": str(exc).splitlines()[0] if str(exc) else type(exc).__name__}


def _check_redis_and_workers() -> tuple[dict, dict]:
    try:
        client = redis.Redis.from_url(settings.REDIS_URL, socket_connect_timeout=1, socket_timeout=1)
        client.ping()
        keys = list(client.scan_iter(match=HEARTBEAT_PREFIX + "*", count=100))
        values = client.mget(keys) if keys else []
        beats = {k.decode()[len(HEARTBEAT_PREFIX) :]: int(v) for k, v in zip(keys, values, strict=True) if v}
    except Exception as exc:
        err = {"ok": False, "error": str(exc)}
        return err, {"ok": False, "error": "redis unreachable"}
    now = time.time()
    stale_after = settings.WORKER_HEARTBEAT_STALE_SECONDS
    fresh = {host: round(now - ts, 1) for host, ts in beats.items() if now - ts <= stale_after}
    workers = {"ok": bool(fresh), "alive": len(fresh), "seconds_since_beat": fresh}
    if not fresh:
        workers["error"] = "no Celery worker heartbeat in the last %ss" % settings.WORKER_HEARTBEAT_STALE_SECONDS
    return {"ok": True}, workers


def _live_checks() -> dict:
    redis_status, workers = _check_redis_and_workers()
    return {"database": _check_database(), "redis": redis_status, "worker": workers}


def _check_migrations() -> dict:
    from django.db.migrations.executor import MigrationExecutor

    try:
        executor = MigrationExecutor(connection)
        pending = executor.migration_plan(executor.loader.graph.leaf_nodes())
    except Exception as exc:
        return {"ok": False, "error": str(exc).splitlines()[0] if str(exc) else type(exc).__name__}
    if pending:
        return {"ok": False, "error": f"{len(pending)} migrations not applied", "pending": len(pending)}
    return {"ok": True}


def _check_seed() -> dict:
    from crm.services.readiness import seed_state

    try:
        state = seed_state()
    except Exception as exc:
        return {"ok": False, "error": str(exc)}
    return {"ok": state["state"] == "done", **state}


def _answer(checks: dict) -> JsonResponse:
    ok = all(check["ok"] for check in checks.values())
    return JsonResponse({"ok": ok, "checks": checks}, status=200 if ok else 503)


@require_GET
def healthz(request):
    return _answer(_live_checks())


@require_GET
def readyz(request):
    checks = _live_checks()
    if checks["database"]["ok"]:
        checks["migrations"] = _check_migrations()
    if settings.DEMO_SEED:
        checks["demo_seed"] = _check_seed()
    return _answer(checks)


@require_GET
def healthz_money(request):
    from crm.selectors.money import pools_out_of_balance, pools_unwatched

    try:
        unbalanced = [
            {"pool_id": row["id"], "difference_fen": row["reconcile_difference_fen"],
             "checked_at": row["reconciled_at"].isoformat() if row["reconciled_at"] else None}
            for row in pools_out_of_balance()
        ]  # fmt: skip
        unwatched = pools_unwatched(settings.REDPACKET_RECONCILE_STALE_SECONDS)
    except Exception as exc:
        return _answer({"money": {"ok": False, "error": str(exc).splitlines()[0] if str(exc) else type(exc).__name__}})
    check = {"ok": not unbalanced and not unwatched, "unbalanced": unbalanced, "unwatched": unwatched}
    if unbalanced:
        check["error"] = f"{len(unbalanced)} red-packet pools out of balance"
    elif unwatched:
        check["error"] = f"{len(unwatched)} live pools not reconciled for {settings.REDPACKET_RECONCILE_STALE_SECONDS}s"
    return _answer({"money": check})
