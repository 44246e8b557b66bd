"""`make run` as a newcomer meets it, for tests/e2e/test_make_run*.py: one run (scripts/run.py, or the Makefile
target itself) on a given var/ and ports, with a marker in its environment that every process it starts inherits:
"nothing of the run is left" means no process on the machine carries the marker, every port is free and the Redis
socket is gone."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from tests.conftest import free_port

ROOT = Path(__file__).resolve().parents[2]
DEAD_REDIS = "redis://127.0.0.1:1/0"  # nothing answers: the supervisor starts the embedded Redis
READY = "Ctrl-C stops everything"
STOP_WITHIN = 20

def port_open(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


def marked_pids(marker: str) -> list[int]:
    needle = f"CRM_RUN_MARKER={marker}".encode()
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            with open(f"/proc/{entry}/environ", "rb") as handle:
                if needle in handle.read().split(b"\0"):
                    found.append(int(entry))
        except OSError:
            continue
    return found


class Run:
    """One `make run` (scripts/run.py, or the Makefile target itself) on a given var/ and ports."""

    def __init__(self, var_dir: Path, *, via_make: bool = False):
        self.var_dir = var_dir
        self.port, self.sim_port, self.ingest_port = free_port(), free_port(), free_port()
        self.ports = [self.port, self.sim_port, self.ingest_port]
        self.base = f"http://127.0.0.1:{self.port}"
        self.marker = uuid.uuid4().hex
        self.env = dict(os.environ, VAR_DIR=str(var_dir), PORT=str(self.port), SIM_PORT=str(self.sim_port),
                        INGEST_PORT=str(self.ingest_port), REDIS_URL=DEAD_REDIS, WECOM_SIM_ENABLED="1",
                        DATABASE_URL=f"sqlite:///{var_dir / 'crm.sqlite3'}", CRM_RUN_MARKER=self.marker,
                        DEMO_CUSTOMERS="8")  # a smaller demo: the seed's own test covers the full one
        for key in ("WECOM_API_BASE_URL", "WECOM_PAY_BASE_URL", "WECOM_CALLBACK_URL", "PUBLIC_BASE_URL", "DEMO_SEED"):
            self.env.pop(key, None)
        self.log = var_dir / f"run-{self.marker[:8]}.log"
        self.out = open(self.log, "w")
        argv = ["make", "-s", "run"] if via_make else [sys.executable, "scripts/run.py"]
        self.proc = subprocess.Popen(argv, cwd=ROOT, env=self.env, stdout=self.out, stderr=subprocess.STDOUT,
                                     start_new_session=True)

    def text(self) -> str:
        return self.log.read_text()

    def wait_for_line(self, needle: str, timeout: float = 240) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if needle in self.text():
                return
            if self.proc.poll() is not None:
                pytest.fail(f"run exited with {self.proc.returncode} before {needle!r}:\n{self.text()[-4000:]}")
            time.sleep(0.1)
        pytest.fail(f"no {needle!r} in {timeout}s:\n{self.text()[-4000:]}")

    def signal(self, sig: int, to_group: bool) -> None:
        if to_group:
            os.killpg(self.proc.pid, sig)
        else:
            self.proc.send_signal(sig)

    def assert_all_gone(self) -> None:
        """Within STOP_WITHIN seconds: no process of the run, every port free, no Redis socket."""
        deadline = time.monotonic() + STOP_WITHIN
        while time.monotonic() < deadline:
            left = marked_pids(self.marker)
            busy = [p for p in self.ports if port_open(p)]
            sockets = list(self.var_dir.glob("redis-*.sock"))
            if not left and not busy and not sockets:
                return
            time.sleep(0.2)
        pytest.fail(f"after {STOP_WITHIN}s: processes {left}, ports {busy}, sockets {sockets}\n{self.text()[-3000:]}")

    def finish(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
        for pid in marked_pids(self.marker):  # never leave a server behind for the rest of the suite
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.out.close()
