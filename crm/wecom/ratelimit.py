"""WeCom's per-corp call rate, held by the CRM: a sliding window per (corp, API path) in Redis, shared by every
worker process.

WeCom allows 10,000 calls a minute per API per corp and answers 45009 beyond it; a campaign fanning out over
many workers would reach that in seconds and then spend its retries backing off blind. Taking a slot before each
call keeps the whole fleet under the limit, so campaigns never trip it and other work (callbacks, sync) keeps
its share of the same budget.
"""

from __future__ import annotations

import logging
import random
import time
import uuid

import redis

from crm.wecom.errors import WeComError

logger = logging.getLogger(__name__)

KEY = "crm:wecom:rate:{corp_id}:{path}"
# Each call is a member scored by its time; a slot is free when fewer than `limit` lie within the window. The
# answer is 0 when taken, else the milliseconds until the oldest call leaves the window. Redis' own clock
# (TIME) is the only clock, so processes on hosts with skewed clocks still share one window.
_TAKE = """
local key, window_ms, limit, member = KEYS[1], tonumber(ARGV[1]), tonumber(ARGV[2]), ARGV[3]
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', key, '-inf', now - window_ms)
if redis.call('ZCARD', key) < limit then
  redis.call('ZADD', key, now, member)
  redis.call('PEXPIRE', key, window_ms + 1000)
  return 0
end
local oldest = redis.call('ZRANGE', key, 0, 0, 'WITHSCORES')
return math.max(1, tonumber(oldest[2]) + window_ms - now)
"""

# Raised when no slot frees up in time; retryable, so a task retries it later instead of blocking a worker.
RATE_ERRCODE = 45009


class RateLimiter:
    def __init__(
        self,
        client: redis.Redis,
        corp_id: str,
        limit: int,
        *,
        window_seconds: float = 60.0,
        max_wait: float = 70.0,
    ) -> None:
        self.redis = client
        self.corp_id = corp_id
        self.limit = limit
        self.window_ms = int(window_seconds * 1000)
        self.max_wait = max_wait
        self._take = client.register_script(_TAKE)

    def acquire(self, path: str) -> float:
        """Take a slot for one call to `path`, sleeping while the window is full; the seconds waited."""
        if self.limit <= 0:
            return 0.0
        key = KEY.format(corp_id=self.corp_id, path=path)
        waited = 0.0
        while True:
            try:
                wait_ms = int(self._take(keys=[key], args=[self.window_ms, self.limit, uuid.uuid4().hex]))
            except redis.RedisError:
                # Like the token cache: without Redis the call still goes out. WeCom's own 45009 and the
                # client's backoff are then the only brake, which beats refusing every call.
                logger.warning("wecom rate window unavailable, calling without it", extra={"endpoint": path})
                return waited
            if wait_ms == 0:
                return waited
            if waited >= self.max_wait:
                raise WeComError(RATE_ERRCODE, "local rate limit: no slot within max_wait", path, retryable=True)
            # Jitter so that waiting workers do not all retry at the same millisecond.
            pause = min(wait_ms / 1000, 1.0) * random.uniform(1.0, 1.2)
            time.sleep(pause)
            waited += pause
