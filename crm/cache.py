"""The default cache backend: Django's RedisCache, with one redis-py client per connection pool.

Django's RedisCacheClient builds a new `redis.Redis` for every cache call, and each one copies its ~170 response
callbacks: ~0.1 ms of CPU per get/set/add, several times in every till scan (throttles, the QR nonce, the store
p99). A redis.Redis holds no per-call state (commands borrow a connection from the pool), so one per pool is
shared safely by threads; a forked process gets fresh connections from the pool's own pid check."""

from __future__ import annotations

from django.core.cache.backends.redis import RedisCache as DjangoRedisCache
from django.core.cache.backends.redis import RedisCacheClient


class _SharedClient(RedisCacheClient):
    def get_client(self, key=None, *, write=False):
        pool = self._get_connection_pool(write)
        clients = self.__dict__.setdefault("_clients", {})
        client = clients.get(id(pool))
        if client is None:
            client = clients[id(pool)] = self._client(connection_pool=pool)
        return client


class RedisCache(DjangoRedisCache):
    def __init__(self, server, params):
        super().__init__(server, params)
        self._class = _SharedClient
