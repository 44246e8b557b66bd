"""A workaround for kombu (5.7) losing tasks and stopping the worker when Redis restarts.

kombu's Redis channel builds its Redis client from its connection, which is let go (set to None) once the channel
is closed, e.g. by a reconnect. Code that still holds the old channel then fails with AttributeError ("'NoneType'
object has no attribute 'client'" / "'hostname'"), which neither kombu's retries nor Celery's error handling expect:

- Producer._publish takes the channel, then declares the task's queue; after a restart that declare is the first
  command, reconnects inside its own retry and closes the channel, and the publish that follows on it raises: the
  task is lost (a `.delay()` on commit, after its row was saved).
- The worker's consumer, reconnecting, requeues the unacked messages through the closed channel, or a task finishing
  meanwhile acknowledges on it: "Unrecoverable error", the worker stops and every task queued after waits for it.

Here a closed channel answers with a Redis ConnectionError instead, what the same call on a dead connection raises
and what every caller handles: the publish reconnects and is sent again (it failed before reaching Redis); the
requeue and the acknowledgement are given up as when Redis is unreachable (the messages stay in Redis' unacked set,
handed back by restore_visible after the visibility timeout; tasks are idempotent) and the consumer reconnects.
"""

from __future__ import annotations

import redis
from kombu.transport import redis as kombu_redis

_original_connparams = kombu_redis.Channel._connparams


def _connparams(self, asynchronous=False):
    transport = self.connection
    if transport is None or getattr(transport, "client", None) is None:
        raise redis.ConnectionError("the broker channel was closed (its connection is gone)")
    return _original_connparams(self, asynchronous=asynchronous)


def install() -> None:
    if kombu_redis.Channel._connparams is not _connparams:
        kombu_redis.Channel._connparams = _connparams
