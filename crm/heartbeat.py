"""Worker heartbeat: each Celery worker writes a short-lived Redis key that /healthz reads."""

from __future__ import annotations

import logging
import socket
import threading
import time

from celery.signals import worker_ready, worker_shutdown

HEARTBEAT_PREFIX = "crm:heartbeat:worker:"
logger = logging.getLogger(__name__)
_stop = threading.Event()


def _beat(hostname: str) -> None:
    import redis
    from django.conf import settings

    client = redis.Redis.from_url(settings.REDIS_URL)
    key = HEARTBEAT_PREFIX + hostname
    while not _stop.is_set():
        try:
            client.set(key, int(time.time()), ex=settings.WORKER_HEARTBEAT_STALE_SECONDS)
        except redis.RedisError:  # Redis down: /healthz says so; keep trying
            logger.warning("worker heartbeat could not be written", exc_info=True)
        _stop.wait(settings.WORKER_HEARTBEAT_SECONDS)
    try:
        client.delete(key)
    except redis.RedisError:
        logger.info("worker heartbeat key left to expire")


@worker_ready.connect
def start_heartbeat(sender=None, **kwargs) -> None:
    hostname = getattr(sender, "hostname", None) or socket.gethostname()
    _stop.clear()
    threading.Thread(target=_beat, args=(hostname,), name="crm-heartbeat", daemon=True).start()


@worker_shutdown.connect
def stop_heartbeat(**kwargs) -> None:
    _stop.set()
