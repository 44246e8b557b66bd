"""Gunicorn settings shared by the CRM web server and the simulator: JSON logs, sane timeouts.

Used as `gunicorn -c python:crm.gunicorn_conf crm.wsgi -b 127.0.0.1:8000`.
"""

from crm.logconfig import JSON_FORMATTER

timeout = 60
graceful_timeout = 20
# Idle keep-alive connections are kept 75 s (as nginx, and the front ends of APIs like WeCom's, keep them), not
# gunicorn's 2 s: a client reusing a pooled connection at the moment the server closes it gets a reset, and for
# a POST that creates something (add_msg_template) a reset is ambiguous, which costs the send its grace period.
# Threaded workers only; sync workers do not keep connections alive.
keepalive = 75
accesslog = "-"
# One JSON object per request, like the application's own logs.
access_log_format = (
    '{"time": "%(t)s", "logger": "gunicorn.access", "remote": "%(h)s", "method": "%(m)s", "path": "%(U)s", '
    '"status": %(s)s, "bytes": "%(B)s", "duration_ms": %(M)s}'
)
logconfig_dict = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "json": JSON_FORMATTER,
        "raw": {"format": "%(message)s"},
    },
    "handlers": {
        "json": {"class": "logging.StreamHandler", "formatter": "json", "stream": "ext://sys.stderr"},
        "access": {"class": "logging.StreamHandler", "formatter": "raw", "stream": "ext://sys.stdout"},
    },
    "root": {"handlers": ["json"], "level": "INFO"},
    "loggers": {
        "gunicorn.error": {"handlers": ["json"], "level": "INFO", "propagate": False},
        "gunicorn.access": {"handlers": ["access"], "level": "INFO", "propagate": False},
    },
}
