"""/healthz: database, Redis and a live worker heartbeat. 200 only when all three are fine."""

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


@require_GET
def healthz(request):
    database = _check_database()
    redis_status, workers = _check_redis_and_workers()
    checks = {"database": database, "redis": redis_status, "worker": workers}
    ok = all(check["ok"] for check in checks.values())
    return JsonResponse({"ok": ok, "checks": checks}, status=200 if ok else 503)
