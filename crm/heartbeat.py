"""Worker heartbeat: each Celery worker writes a short-lived Redis key that /healthz reads."""

from __future__ import annotations

import socket
import threading
import time

from celery.signals import worker_ready, worker_shutdown

HEARTBEAT_PREFIX = "crm:heartbeat:worker:"
_stop = threading.Event()


def _beat(hostname: str) -> None:
    import redis
    from django.conf import settings

    client = redis.Redis.from_url(settings.REDIS_URL)
    key = HEARTBEAT_PREFIX + hostname
    while not _stop.is_set():
        try:
            client.set(key, int(time.time()), ex=settings.WORKER_HEARTBEAT_STALE_SECONDS)
        except Exception:  # Redis down: /healthz will say so; keep trying
            pass
        _stop.wait(settings.WORKER_HEARTBEAT_SECONDS)
    try:
        client.delete(key)
    except Exception:
        pass


@worker_ready.connect
def start_heartbeat(sender=None, **kwargs) -> None:
    hostname = getattr(sender, "hostname", None) or socket.gethostname()
    _stop.clear()
    threading.Thread(target=_beat, args=(hostname,), name="crm-heartbeat", daemon=True).start()


@worker_shutdown.connect
def stop_heartbeat(**kwargs) -> None:
    _stop.set()
