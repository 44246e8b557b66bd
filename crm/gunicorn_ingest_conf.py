"""Gunicorn settings for the callback ingest server: uvicorn workers (one event loop each) under gunicorn's
process management, with the web server's JSON logging.

Used as `gunicorn -c python:crm.gunicorn_ingest_conf crm.ingest -b 127.0.0.1:8002`.
"""

import os

from crm.gunicorn_conf import graceful_timeout, logconfig_dict, timeout  # noqa: F401  (gunicorn reads them)

worker_class = "uvicorn_worker.UvicornWorker"
# One event loop per core: the loop verifies and decrypts, the writer thread stores, both under one GIL.
workers = int(os.environ.get("INGEST_WORKERS", os.cpu_count() or 1))
backlog = 4096
# No line per request: at a thousand callbacks a second that is a log of its own. The app logs each stored
# group, each duplicate and each refusal.
accesslog = None


def post_worker_init(worker) -> None:
    # uvicorn writes its own line per request whenever its access logger has a handler (the worker gives it
    # gunicorn's); at a thousand requests a second that line costs as much as answering a bare request.
    import logging

    logging.getLogger("uvicorn.access").handlers = []
