"""Reads for the console's System page: health, Celery queue depths, beat schedules, the callback backlog."""

from __future__ import annotations

from datetime import datetime, timedelta

import redis
from django.conf import settings
from django.db.models import Count, Min
from django.utils import timezone
from django_celery_beat.models import PeriodicTask

from crm import health
from crm.models import CallbackEvent

QUEUES = ("callbacks", "pushes", "redpackets", "default")


def system_health() -> dict:
    """The checks /healthz runs: database, Redis and a fresh Celery worker heartbeat."""
    redis_status, workers = health._check_redis_and_workers()
    checks = {"database": health._check_database(), "redis": redis_status, "worker": workers}
    return {"ok": all(check["ok"] for check in checks.values()), "checks": checks}


def queue_depths() -> dict:
    """Messages waiting on each Celery queue: LLEN of its list on the Redis broker (None when unreachable)."""
    try:
        client = redis.Redis.from_url(settings.REDIS_URL, socket_connect_timeout=1, socket_timeout=1)
        with client.pipeline(transaction=False) as pipe:
            for name in QUEUES:
                pipe.llen(name)
            depths = pipe.execute()
    except redis.RedisError as exc:
        return {"ok": False, "error": str(exc), "queues": dict.fromkeys(QUEUES)}
    return {"ok": True, "queues": dict(zip(QUEUES, depths, strict=True))}


def beat_schedules() -> list[PeriodicTask]:
    return list(
        PeriodicTask.objects.select_related("interval", "crontab", "clocked", "solar").order_by("name")
    )


def callback_backlog(now: datetime | None = None) -> dict:
    """Callbacks waiting (received, or routed and not yet applied), failed, and applied in the last 24 h (the key
    keeps its old name, processed_24h); the oldest waiting one's age. Every count reads the (status, received_at)
    index; applied is bounded to a day so a long history costs nothing."""
    now = now or timezone.now()
    waiting = (CallbackEvent.Status.RECEIVED, CallbackEvent.Status.ROUTED)
    open_counts = dict(
        CallbackEvent.objects.exclude(status=CallbackEvent.Status.APPLIED)
        .values("status").annotate(n=Count("id")).order_by().values_list("status", "n")
    )
    processed_24h = CallbackEvent.objects.filter(
        status=CallbackEvent.Status.APPLIED, received_at__gte=now - timedelta(hours=24)
    ).count()
    oldest = CallbackEvent.objects.filter(status__in=waiting).aggregate(m=Min("received_at"))["m"]
    return {
        "received": sum(open_counts.get(status, 0) for status in waiting),
        "failed": open_counts.get(CallbackEvent.Status.FAILED, 0),
        "processed_24h": processed_24h,
        "oldest_received_at": oldest,
        "oldest_age_seconds": max(0, int((now - oldest).total_seconds())) if oldest else None,
    }
