"""A claim is one Lua script in Redis: one EVALSHA reserves the amount; nothing else writes the pool's keys."""

from __future__ import annotations

import threading
import time

import pytest
import redis
from django.conf import settings

from crm.models import RedPacketClaim
from crm.services.redpackets import get_redis, redpacket_claim
from tests.crm.campaigns.test_customer_page import _launched_pool

pytestmark = pytest.mark.django_db(transaction=True)


def _watch(commands: list, stop: threading.Event, ready: threading.Event) -> None:
    client = redis.Redis.from_url(settings.REDIS_URL)
    db = client.connection_pool.connection_kwargs.get("db", 0)
    with client.monitor() as monitor:
        ready.set()
        for event in monitor.listen():
            # Commands a script runs show as the "lua" client: the script's own steps, not round trips.
            if event.get("db") == db and "crm:rp:" in event["command"] and event.get("client_type") != "lua":
                commands.append(event["command"])
            if stop.is_set() and "crm:test:monitor-stop" in event["command"]:
                return


def test_one_evalsha_per_claim_and_the_row_committed_before_the_answer():
    pool, (c1, *_) = _launched_pool(count=2, budget=600)
    get_redis().ping()  # the claim script is registered before we watch
    commands, stop, ready = [], threading.Event(), threading.Event()
    watcher = threading.Thread(target=_watch, args=(commands, stop, ready), daemon=True)
    watcher.start()
    assert ready.wait(5)
    time.sleep(0.1)
    outcome = redpacket_claim(pool_id=pool.id, contact_id=c1.id)
    stop.set()
    get_redis().get("crm:rp:crm:test:monitor-stop")
    watcher.join(5)
    ours = [c for c in commands if f"crm:rp:{pool.id}:" in c]
    scripts = [c for c in ours if c.startswith(("EVALSHA", "EVAL "))]
    writes = [c for c in ours if c.split(" ", 1)[0] in {"LPOP", "HSET", "RPUSH", "DEL", "SET", "HDEL"}]
    assert len(scripts) == 1 and not writes, ours  # the HGET that follows only checks the reservation is ours
    assert outcome.status == "claimed"
    # Answered after the commit: another connection sees the row with the amount the customer was shown.
    assert RedPacketClaim.objects.get(pool=pool, contact=c1).amount_fen == outcome.amount_fen == 300
