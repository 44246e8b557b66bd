"""Frequency limits (sliding windows per corp and API, and per IP: 45009), concurrency caps (45033), call stats."""

from __future__ import annotations

import time
import uuid
from contextlib import contextmanager

from wecom_sim.faults import client

WINDOW_SECONDS = 60
STATS_CALLS = "wecomsim:stats:calls"
STATS_GETTOKEN = "wecomsim:stats:gettoken"
# Storage-heavy endpoints with a per-corp concurrency cap.
HEAVY = {"externalcontact/mark_tag", "externalcontact/batch/get_by_user", "externalcontact/list"}

_ALLOW = """
local key, now, window, limit, member = KEYS[1], tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3]), ARGV[4]
redis.call('ZREMRANGEBYSCORE', key, '-inf', now - window)
if redis.call('ZCARD', key) >= limit then return 0 end
redis.call('ZADD', key, now, member)
redis.call('EXPIRE', key, math.ceil(window) + 1)
return 1
"""


def count_call(path: str) -> None:
    pipe = client().pipeline()
    pipe.hincrby(STATS_CALLS, path, 1)
    if path == "gettoken":
        pipe.incr(STATS_GETTOKEN)
    pipe.execute()


def stats() -> tuple[int, dict]:
    calls = {k.decode(): int(v) for k, v in client().hgetall(STATS_CALLS).items()}
    return int(client().get(STATS_GETTOKEN) or 0), calls


def allow(corpid: str, path: str, limit_per_minute: int) -> bool:
    """Sliding window: refused calls are not counted, so the block lasts until old calls leave the window."""
    key = f"wecomsim:rate:{corpid}:{path}"
    return bool(client().eval(_ALLOW, 1, key, time.time(), WINDOW_SECONDS, limit_per_minute, uuid.uuid4().hex))


def allow_ip(ip: str, limit_per_minute: int) -> bool:
    """Per-IP sliding window over every cgi-bin API (WeCom: 20,000/min per IP)."""
    key = f"wecomsim:rate:ip:{ip}"
    return bool(client().eval(_ALLOW, 1, key, time.time(), WINDOW_SECONDS, limit_per_minute, uuid.uuid4().hex))


@contextmanager
def concurrency_slot(corpid: str, path: str, limit: int):
    """Yields True when a slot was taken (released on exit), False when the cap is reached (45033)."""
    if path not in HEAVY:
        yield True
        return
    key = f"wecomsim:conc:{corpid}:{path}"
    current = client().incr(key)
    client().expire(key, 30)
    try:
        yield current <= limit
    finally:
        client().decr(key)
