"""Redis clients that ride out a Redis restart.

redis-py retries nothing for a client made with `Redis.from_url` or from a pool (Django's cache): the retry policy
of `Redis()` applies only to the pool it builds itself. A Redis restarting (a deploy, a failover, a crash and its
service manager) then fails every request and task that touches it in that second. These clients reconnect with
backoff for about six seconds first; only connection errors are retried (a refused or dropped connection: the
command did not run, or ran and its answer was lost, which the project's Redis writes tolerate: SET NX, INCR of a
throttle window, the claim script's once-per-customer check); a timeout is left to the caller.
"""

from __future__ import annotations

import redis
from redis.backoff import ExponentialBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.retry import Retry


def retry() -> Retry:
    """0.1, 0.2, 0.4, 0.8 s, then 1 s: about 6.5 s in all before the error reaches the caller."""
    return Retry(ExponentialBackoff(cap=1.0, base=0.05), retries=9, supported_errors=(RedisConnectionError,))


def client(url: str | None = None, **options) -> redis.Redis:
    """redis.Redis.from_url (REDIS_URL by default) with the restart-proof retry."""
    if url is None:
        from django.conf import settings

        url = settings.REDIS_URL
    return redis.Redis.from_url(url, retry=retry(), **options)
