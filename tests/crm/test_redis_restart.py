"""A Redis restart (a private redis-server with an append-only file, stopped and started again) is ridden out: the
cache, the project's own Redis clients and Celery's publishing wait for it instead of failing or losing a task."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import redis
from celery import Celery
from django.conf import settings

from crm import redisconn
from crm.cache import RedisCache
from tests import redis_server


@pytest.fixture
def private_redis(tmp_path):
    yield from redis_server.servers(tmp_path)


def while_down(server, call, seconds: float = 1.0):
    """Stop the server, make `call` meanwhile (from another thread), start the server again `seconds` later; the
    call's result. The server is restarted from this thread: its process dies with the thread that started it."""
    server.stop()
    with ThreadPoolExecutor(1) as pool:
        future = pool.submit(call)
        time.sleep(seconds)
        assert not future.done(), "the call did not wait for Redis"
        server.start()
        return future.result(timeout=30)


def test_the_cache_and_the_redis_clients_wait_for_a_restart(private_redis):
    server = private_redis("cache")
    cache = RedisCache(server.url, {"KEY_PREFIX": "t", "OPTIONS": settings.CACHES["default"]["OPTIONS"]})
    client = redisconn.client(server.url, socket_timeout=5, socket_connect_timeout=5)
    cache.set("k", "v", timeout=60)
    client.set("n", 1)
    assert while_down(server, lambda: cache.get("k")) == "v"  # written before the restart, kept by the AOF
    assert while_down(server, lambda: client.incr("n")) == 2


def test_a_task_published_while_redis_restarts_is_queued(private_redis):
    """kombu declares the task's queue before publishing; after a reconnect inside that declare it used to publish on
    the closed channel (AttributeError) and the task was lost (crm/kombu_fix.py)."""
    server = private_redis("broker")
    app = Celery("restart-test", set_as_current=False)
    app.config_from_object("django.conf:settings", namespace="CELERY")
    app.conf.broker_url = server.url
    try:
        app.send_task("crm.tasks.probe.first", queue="default")  # the producer's connection now exists
        # A queue not yet declared on that connection:
        while_down(server, lambda: app.send_task("crm.tasks.probe.second", queue="pushes"))
        client = redis.Redis.from_url(server.url)
        assert client.llen("default") == 1 and client.llen("pushes") == 1
    finally:
        app.close()
