"""The whole product on loopback inside one command: a threaded HTTP server serving this project (CRM and
simulator) and real Celery worker processes. Used by `simulate`, the tests and the benchmarks.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
QUEUES = "callbacks,pushes,redpackets,default"


class ServerThread:
    """Django's threaded WSGI server on 127.0.0.1 in a daemon thread (port 0 picks a free port)."""

    def __init__(self, port: int = 0) -> None:
        from django.core.handlers.wsgi import WSGIHandler
        from django.core.servers.basehttp import ThreadedWSGIServer, WSGIRequestHandler

        class QuietHandler(WSGIRequestHandler):
            # wsgiref writes headers and body separately: with Nagle on, each response waits ~40 ms for an ACK.
            disable_nagle_algorithm = True

            def log_message(self, *args) -> None:  # access logs would drown the command's output
                pass

        self.httpd = ThreadedWSGIServer(("127.0.0.1", port), QuietHandler, allow_reuse_address=True)
        self.httpd.daemon_threads = True
        self.httpd.set_app(WSGIHandler())
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, name="localstack-http", daemon=True)

    def start(self) -> ServerThread:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def wire_settings(base_url: str) -> dict[str, str]:
    """Point the CRM at the simulator under base_url and the simulator's callbacks at the CRM; returns the same
    as environment variables for child processes."""
    from django.conf import settings

    settings.PUBLIC_BASE_URL = base_url
    settings.WECOM_API_BASE_URL = f"{base_url}/wecom-sim/cgi-bin"
    settings.WECOM_PAY_BASE_URL = f"{base_url}/wecom-sim/mch"
    settings.WECOM_CALLBACK_URL = f"{base_url}/wecom/callback"
    settings.WECOM_SIM = {**settings.WECOM_SIM, "CALLBACK_URL": settings.WECOM_CALLBACK_URL}
    settings.WECHAT_OAUTH_AUTHORIZE_URL = f"{base_url}/wecom-sim/connect/oauth2/authorize"
    settings.WECHAT_SNS_BASE_URL = f"{base_url}/wecom-sim/sns"
    return {
        "PUBLIC_BASE_URL": base_url,
        "WECOM_API_BASE_URL": settings.WECOM_API_BASE_URL,
        "WECOM_PAY_BASE_URL": settings.WECOM_PAY_BASE_URL,
        "WECOM_CALLBACK_URL": settings.WECOM_CALLBACK_URL,
        "WECHAT_OAUTH_AUTHORIZE_URL": settings.WECHAT_OAUTH_AUTHORIZE_URL,
        "WECHAT_SNS_BASE_URL": settings.WECHAT_SNS_BASE_URL,
    }


class WorkerProcess:
    """A real `celery worker` child process consuming every queue (or the comma-separated `queues`)."""

    def __init__(
        self, env: dict[str, str], log_path: Path | None = None, concurrency: int = 4, queues: str = ""
    ) -> None:
        self.env = env
        self.queues = queues or QUEUES
        self.log_path = log_path or ROOT / "var" / "worker.log"
        self.concurrency = concurrency
        self.proc: subprocess.Popen | None = None
        self.hostname = ""

    def start(self, redis_client, timeout: float = 60) -> WorkerProcess:
        from crm.heartbeat import HEARTBEAT_PREFIX

        self.hostname = f"worker-{os.getpid()}-{time.monotonic_ns()}@localhost"
        cmd = [
            sys.executable, "-m", "celery", "-A", "crm", "worker", "-Q", self.queues,
            "--pool", "threads", "--concurrency", str(self.concurrency),
            "--hostname", self.hostname, "--loglevel", "INFO", "--without-gossip", "--without-mingle",
        ]
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self.log = open(self.log_path, "ab")  # noqa: SIM115 (closed in stop)
        self.proc = subprocess.Popen(cmd, cwd=ROOT, env=self.env, stdout=self.log, stderr=subprocess.STDOUT)
        key = (HEARTBEAT_PREFIX + self.hostname).encode()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"celery worker exited with {self.proc.returncode}; see {self.log_path}")
            if redis_client.exists(key):
                return self
            time.sleep(0.1)
        raise RuntimeError(f"celery worker did not become ready in {timeout}s; see {self.log_path}")

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self) -> None:
        if self.alive:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc:
            self.log.close()

    def kill(self) -> None:
        """Die without cleanup, as a crashed machine would."""
        if self.alive:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()


def database_url_for_children() -> str:
    """A DATABASE_URL naming the database this process is using now (the test database under pytest)."""
    from django.db import connection

    db = connection.settings_dict
    if db["ENGINE"].endswith("sqlite3"):
        return f"sqlite:///{db['NAME']}"
    user = db.get("USER") or ""
    password = f":{db['PASSWORD']}" if db.get("PASSWORD") else ""
    auth = f"{user}{password}@" if user else ""
    host = db.get("HOST") or "127.0.0.1"
    port = f":{db['PORT']}" if db.get("PORT") else ""
    return f"postgres://{auth}{host}{port}/{db['NAME']}"


def child_env(base_url: str, **extra: str) -> dict[str, str]:
    from django.conf import settings

    env = dict(os.environ)
    env.update(
        DJANGO_SETTINGS_MODULE="crm.settings",
        DATABASE_URL=database_url_for_children(),
        REDIS_URL=settings.REDIS_URL,
        PUBLIC_BASE_URL=base_url,
        WECOM_API_BASE_URL=f"{base_url}/wecom-sim/cgi-bin",
        WECOM_PAY_BASE_URL=f"{base_url}/wecom-sim/mch",
        WECOM_CALLBACK_URL=f"{base_url}/wecom/callback",
        WECHAT_OAUTH_AUTHORIZE_URL=f"{base_url}/wecom-sim/connect/oauth2/authorize",
        WECHAT_SNS_BASE_URL=f"{base_url}/wecom-sim/sns",
        CELERY_TASK_ALWAYS_EAGER="false",
        PYTHONUNBUFFERED="1",
    )
    env.update(extra)
    return env
