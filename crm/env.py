"""Typed readers for settings that come from the environment.

Each helper returns the default when the variable is unset or empty, and raises
ImproperlyConfigured with the variable's name when it is set to something unusable.
"""

from __future__ import annotations

import os
from urllib.parse import urlparse

from django.core.exceptions import ImproperlyConfigured

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


def env_str(name: str, default: str = "") -> str:
    value = os.environ.get(name, "")
    return value if value != "" else default


def env_bool(name: str, default: bool = False) -> bool:
    value = os.environ.get(name, "").strip().lower()
    if value == "":
        return default
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ImproperlyConfigured(f"{name} must be one of {sorted(_TRUE | _FALSE)}, got {value!r}")


def env_int(name: str, default: int) -> int:
    value = os.environ.get(name, "").strip()
    if value == "":
        return default
    try:
        return int(value)
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be an integer, got {value!r}") from None


def env_float(name: str, default: float) -> float:
    value = os.environ.get(name, "").strip()
    if value == "":
        return default
    try:
        return float(value)
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be a number, got {value!r}") from None


def env_list(name: str, default: list[str]) -> list[str]:
    value = os.environ.get(name, "").strip()
    if value == "":
        return list(default)
    return [item.strip() for item in value.split(",") if item.strip()]


def celery_url(redis_url: str) -> str:
    """Kombu spells a unix-socket Redis `redis+socket://`; redis-py spells it `unix://`."""
    parsed = urlparse(redis_url)
    if parsed.scheme == "unix":
        query = f"?{parsed.query}" if parsed.query else ""
        return f"redis+socket://{parsed.path}{query}"
    return redis_url


def redis_py_url(redis_url: str) -> str:
    """The inverse of celery_url: what redis.Redis.from_url accepts."""
    parsed = urlparse(redis_url)
    if parsed.scheme == "redis+socket":
        query = f"?{parsed.query}" if parsed.query else ""
        return f"unix://{parsed.path}{query}"
    return redis_url
