"""A newcomer's first `make run`, checked: a fresh clone, a venv built from requirements.txt alone (nothing of
requirements-dev.txt), nothing at REDIS_URL (the embedded Redis) and SQLite. It waits until the run says it is
ready, checks /healthz and a logged-in console page, stops it with Ctrl-C's SIGINT and checks nothing is left.

Standard library only, so any python3 runs it. `.ci/run` calls it after `make test`:
    python3 scripts/check_fresh_run.py
Exit 0 when every step passed; otherwise 1, with the run's output.
"""

from __future__ import annotations

import http.cookiejar
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
READY_TIMEOUT = 900  # a cold pip cache builds the venv from PyPI
STOP_WITHIN = 20


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def port_open(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


def say(message: str) -> None:
    print(f"[fresh-run] {message}", flush=True)


def fail(message: str, log: Path) -> int:
    say(f"FAILED: {message}")
    print(log.read_text()[-6000:], flush=True)
    return 1


def main() -> int:
    work = Path(tempfile.mkdtemp(prefix="fresh-run-"))
    clone = work / "clone"
    subprocess.run(["git", "clone", "-q", str(ROOT), str(clone)], check=True)
    assert not (clone / ".venv").exists()
    ports = {"PORT": free_port(), "SIM_PORT": free_port(), "INGEST_PORT": free_port()}
    base = f"http://127.0.0.1:{ports['PORT']}"
    env = {k: v for k, v in os.environ.items()
           if k not in {"DATABASE_URL", "VAR_DIR", "VIRTUAL_ENV", "DJANGO_SETTINGS_MODULE", "WECOM_SIM_ENABLED"}}
    env.update({k: str(v) for k, v in ports.items()}, REDIS_URL="redis://127.0.0.1:1/0")
    log = work / "make-run.log"
    say(f"make run in {clone} (venv from requirements.txt only, SQLite, embedded Redis)")
    started = time.monotonic()
    with open(log, "w") as out:
        proc = subprocess.Popen(["make", "run"], cwd=clone, env=env, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)
    try:
        while "Ctrl-C stops everything" not in log.read_text():
            if proc.poll() is not None:
                return fail(f"make run exited with {proc.returncode} before it was ready", log)
            if time.monotonic() - started > READY_TIMEOUT:
                return fail(f"not ready in {READY_TIMEOUT}s", log)
            time.sleep(1)
        ready_s = time.monotonic() - started
        dev_only = subprocess.run([str(clone / ".venv/bin/python"), "-c", "import pytest"], capture_output=True)
        if dev_only.returncode == 0:
            return fail("the venv has pytest: make run installed more than requirements.txt", log)

        with urllib.request.urlopen(f"{base}/healthz", timeout=10) as answer:  # noqa: S310 (loopback)
            if answer.status != 200:
                return fail(f"/healthz answered {answer.status}", log)
        jar = http.cookiejar.CookieJar()
        opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
        opener.open(f"{base}/admin/login/", timeout=10).read()
        token = next(c.value for c in jar if c.name == "csrftoken")
        form = urllib.parse.urlencode({"username": "admin", "password": "admin", "csrfmiddlewaretoken": token,
                                       "next": "/admin/"}).encode()
        request = urllib.request.Request(f"{base}/admin/login/?next=/admin/", data=form,  # noqa: S310 (loopback)
                                         headers={"Referer": f"{base}/admin/login/"})
        page = opener.open(request, timeout=30).read().decode()
        if "/admin/logout/" not in page:
            return fail("logging in to the console did not show a logged-in page", log)
        title = re.search(r"<title>(.*?)</title>", page, re.S)
        title = title.group(1).strip() if title else "?"
        say(f"ready in {ready_s:.0f}s; /healthz 200; logged in to the console ({title})")

        stop_started = time.monotonic()
        os.killpg(proc.pid, signal.SIGINT)
        try:
            proc.wait(timeout=STOP_WITHIN)
        except subprocess.TimeoutExpired:
            return fail(f"make run did not stop within {STOP_WITHIN}s of SIGINT", log)
        while any(port_open(p) for p in ports.values()):
            if time.monotonic() - stop_started > STOP_WITHIN:
                return fail(f"ports still open {STOP_WITHIN}s after SIGINT", log)
            time.sleep(0.2)
        say(f"stopped in {time.monotonic() - stop_started:.1f}s, every port free")
        return 0
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)


if __name__ == "__main__":
    sys.exit(main())
