"""Loaded (via PYTHONPATH) only by the worker the planning crash test kills: from the Nth chunk on, planning
stalls inside the chunk's transaction (its recipients inserted, not committed) and says so in Redis, so the test
kills the worker while a chunk is provably half done."""

import os

_after = os.environ.get("CRM_TEST_SLOW_PLAN_AFTER")

if _after:
    from celery.signals import worker_ready

    @worker_ready.connect(weak=False)
    def _make_planning_slow(**kwargs):
        import time

        import redis

        from crm.services import campaign_runs

        original = campaign_runs._assign_batches
        client = redis.Redis.from_url(os.environ["REDIS_URL"])

        def slow_assign_batches(*args, **kwargs):
            written = original(*args, **kwargs)
            if client.incr("crm:test:plan-chunks") > int(_after):
                client.incr("crm:test:plan-stalled")
                time.sleep(60)
            return written

        campaign_runs._assign_batches = slow_assign_batches
