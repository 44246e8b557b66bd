"""Fault injection per endpoint, set at run time through the admin API and kept in Redis (wecomsim:faults)."""

from __future__ import annotations

import json
import random
import uuid

import redis
from django.conf import settings
from redis.backoff import ExponentialBackoff
from redis.retry import Retry

KEY = "wecomsim:faults"
HITS = f"{KEY}:hits"  # rule id -> calls it answered (what a run with faults really got)
KINDS = {"45009", "42001", "40014", "-1", "5xx", "timeout", "slow", "SYSTEMERROR"}

_client: redis.Redis | None = None


def client() -> redis.Redis:
    global _client
    if _client is None:
        # Rides out a Redis restart (from_url alone retries nothing): Tencent's side stays up meanwhile.
        retry = Retry(ExponentialBackoff(cap=1.0, base=0.05), retries=9, supported_errors=(redis.ConnectionError,))
        _client = redis.Redis.from_url(settings.REDIS_URL, retry=retry)
    return _client


def add(path: str, kind: str, rate: float | None = None, count: int | None = None, delay_ms: int | None = None) -> dict:
    rule = {
        "id": uuid.uuid4().hex[:12],
        "path": path.strip("/"),
        "kind": kind,
        "rate": 1.0 if rate is None else float(rate),
        "count": count,
        "delay_ms": delay_ms,
    }
    client().hset(KEY, rule["id"], json.dumps(rule))
    if count is not None:
        client().set(f"{KEY}:left:{rule['id']}", int(count))
    return rule


def clear() -> None:
    ids = [k.decode() for k in client().hkeys(KEY)]
    client().delete(KEY, HITS, *[f"{KEY}:left:{i}" for i in ids])


def rules() -> list[dict]:
    """The rules in force, each with `hits`: the calls it has answered so far."""
    hits = {k.decode(): int(v) for k, v in client().hgetall(HITS).items()}
    return [{**rule, "hits": hits.get(rule["id"], 0)} for rule in map(json.loads, client().hvals(KEY))]


def _matches(rule_path: str, path: str) -> bool:
    if rule_path == "*":
        return not path.startswith("mch/")
    if rule_path == "mch/*":
        return path.startswith("mch/")
    return rule_path == path or (rule_path.endswith("*") and path.startswith(rule_path[:-1]))


def pick(path: str) -> dict | None:
    """The fault to apply to this call, if any (count-limited rules are consumed atomically)."""
    for rule in rules():
        if not _matches(rule["path"], path):
            continue
        if rule["rate"] < 1.0 and random.random() >= rule["rate"]:
            continue
        if rule.get("count") is not None:
            left = client().decr(f"{KEY}:left:{rule['id']}")
            if left < 0:
                client().hdel(KEY, rule["id"])
                continue
        client().hincrby(HITS, rule["id"], 1)
        return rule
    return None
