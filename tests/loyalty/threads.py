"""Parallel clients for the loyalty concurrency tests: each call in its own thread and DB connection."""

import threading
from concurrent.futures import ThreadPoolExecutor

from django.db import connections


def in_threads(fn, args_list):
    """Run fn(*args) for each args, in threads released together; return results or exceptions, in order."""
    barrier = threading.Barrier(len(args_list))

    def run(args):
        try:
            barrier.wait(timeout=10)
            return fn(*args)
        except Exception as exc:
            return exc
        finally:
            connections.close_all()

    with ThreadPoolExecutor(max_workers=len(args_list)) as pool:
        return list(pool.map(run, args_list))
