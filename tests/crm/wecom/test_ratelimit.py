"""The CRM's own hold on WeCom's per-corp call rate: one sliding window in Redis, shared by processes."""

from __future__ import annotations

import multiprocessing
import time

import redis as redis_lib
from django.conf import settings

from crm.wecom.client import get_client
from crm.wecom.ratelimit import KEY, RateLimiter


def test_a_full_window_makes_the_next_call_wait_until_the_oldest_leaves(redis_client):
    limiter = RateLimiter(redis_client, "wwtest-wait", 5, window_seconds=1.0)
    started = time.monotonic()
    assert [limiter.acquire("externalcontact/add_msg_template") for _ in range(5)] == [0.0] * 5
    assert time.monotonic() - started < 0.5
    waited = limiter.acquire("externalcontact/add_msg_template")
    assert 0.4 < waited < 1.6
    # Another API has its own window.
    assert limiter.acquire("externalcontact/get_groupmsg_send_result") == 0.0


def _worker(redis_url: str, calls: int, out) -> None:
    limiter = RateLimiter(redis_lib.Redis.from_url(redis_url), "wwtest-shared", 10, window_seconds=1.0)
    stamps = []
    for _ in range(calls):
        limiter.acquire("externalcontact/add_msg_template")
        stamps.append(time.time())
    out.put(stamps)


def test_processes_share_one_window():
    """Three processes taking 15 slots each from a window of 10 per second: never more than 10 in any second."""
    ctx = multiprocessing.get_context("spawn")
    out = ctx.Queue()
    procs = [ctx.Process(target=_worker, args=(settings.REDIS_URL, 15, out)) for _ in range(3)]
    for proc in procs:
        proc.start()
    stamps = sorted(t for _ in procs for t in out.get(timeout=60))
    for proc in procs:
        proc.join(10)
    assert len(stamps) == 45
    # A slot is taken before its stamp is written; 0.1 s of slack for the time in between.
    busiest = max(sum(1 for t in stamps[i:] if t < start + 0.9) for i, start in enumerate(stamps))
    assert busiest <= 10
    assert stamps[-1] - stamps[0] >= 3.0  # 45 calls at 10 a second cannot finish sooner


def test_every_client_call_takes_a_slot(sim, redis_client, settings):
    settings.WECOM_RATE_PER_MINUTE = 10000
    client = get_client()
    for _ in range(3):
        client.get_follow_user_list()
    key = KEY.format(corp_id=client.config.corp_id, path="externalcontact/get_follow_user_list")
    assert redis_client.zcard(key) == 3


def test_a_zero_limit_is_unlimited(redis_client):
    limiter = RateLimiter(redis_client, "wwtest-off", 0)
    assert all(limiter.acquire("x") == 0.0 for _ in range(100))
    assert not redis_client.exists(KEY.format(corp_id="wwtest-off", path="x"))
