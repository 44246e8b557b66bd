"""Loaded (via PYTHONPATH) only by the test worker that the crash test kills: each callback task stalls before
it touches the database and says so in Redis, so the test can kill the worker while a task is provably mid-way
(received, unacknowledged, not processed) without holding SQLite's write lock for the survivors."""

import os

_delay = os.environ.get("CRM_TEST_SLOW_CALLBACKS")

if _delay:
    from celery.signals import worker_ready

    @worker_ready.connect(weak=False)
    def _make_callbacks_slow(**kwargs):
        import time

        import redis

        from crm.tasks import callbacks as tasks

        original = tasks.callback_process
        client = redis.Redis.from_url(os.environ["REDIS_URL"])

        def slow_callback_process(*, event_id, **kwargs):
            client.incr("crm:test:slow-callback-started")
            time.sleep(float(_delay))
            return original(event_id=event_id, **kwargs)

        tasks.callback_process = slow_callback_process
