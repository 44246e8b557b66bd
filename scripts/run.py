"""`make run`: one command that starts the whole product on this machine and stops it on Ctrl-C.

Redis (embedded when none answers at REDIS_URL) -> migrate -> collectstatic -> simulator, web, callback ingest
server, Celery worker and beat as child processes -> demo data -> URLs and the demo login. Every server binds to
127.0.0.1. The simulator sends its callbacks to the ingest server, as WeCom would through the proxy in production.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from crm import embedded_redis  # noqa: E402

VENV_BIN = Path(sys.executable).parent
PORT = int(os.environ.get("PORT", "8000"))
SIM_PORT = int(os.environ.get("SIM_PORT", "8001"))
INGEST_PORT = int(os.environ.get("INGEST_PORT", "8002"))
HOST = "127.0.0.1"


def log(message: str) -> None:
    print(f"[run] {message}", flush=True)


def manage(*args: str, env: dict) -> None:
    subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, env=env, check=True)


def wait_http(url: str, timeout: float = 60) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2) as response:  # noqa: S310 (loopback URL we built)
                if response.status < 500:
                    return True
        except urllib.error.HTTPError as exc:
            if exc.code < 500 or exc.code == 503:  # healthz answers 503 until the worker beats
                return True
        except OSError:
            pass
        time.sleep(0.3)
    return False


def port_free(port: int) -> bool:
    import socket

    with socket.socket() as sock:
        return sock.connect_ex((HOST, port)) != 0


def main() -> int:
    for port in (PORT, SIM_PORT, INGEST_PORT):
        if not port_free(port):
            log(f"error: port {port} on {HOST} is in use (another `make run`?); set PORT / SIM_PORT / INGEST_PORT")
            return 2

    redis_url, redis_server = embedded_redis.ensure()
    if redis_server is not None:
        log(f"nothing answered at REDIS_URL; started an embedded Redis ({redis_url})")
    base = f"http://{HOST}:{PORT}"
    sim_base = f"http://{HOST}:{SIM_PORT}"
    ingest_base = f"http://{HOST}:{INGEST_PORT}"
    env = dict(os.environ)
    env.setdefault("DJANGO_SETTINGS_MODULE", "crm.settings")
    env.update(REDIS_URL=redis_url, PORT=str(PORT), SIM_PORT=str(SIM_PORT), PYTHONUNBUFFERED="1")
    env.setdefault("PUBLIC_BASE_URL", base)
    env.setdefault("WECOM_CALLBACK_URL", f"{ingest_base}/wecom/callback")

    children: list[tuple[str, subprocess.Popen]] = []

    def stop_all(*_args) -> None:
        for name, proc in reversed(children):
            if proc.poll() is None:
                log(f"stopping {name}")
                os.killpg(proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + 15
        for _name, proc in children:
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
        if redis_server is not None:
            redis_server.shutdown()

    def start(name: str, argv: list[str]) -> None:
        proc = subprocess.Popen(argv, cwd=ROOT, env=env, start_new_session=True)
        children.append((name, proc))

    try:
        log("migrating the database")
        manage("migrate", "--noinput", env=env)
        manage("collectstatic", "--noinput", "-v", "0", env=env)

        gunicorn = str(VENV_BIN / "gunicorn")
        celery = str(VENV_BIN / "celery")
        start("simulator", [gunicorn, "crm.wsgi", "-b", f"{HOST}:{SIM_PORT}", "--workers", "1", "--threads", "16",
                            "-c", "python:crm.gunicorn_conf", "--name", "wecom-sim"])
        start("web", [gunicorn, "crm.wsgi", "-b", f"{HOST}:{PORT}", "--workers", "2", "--threads", "8",
                      "-c", "python:crm.gunicorn_conf", "--name", "crm-web"])
        start("ingest", [gunicorn, "crm.ingest", "-b", f"{HOST}:{INGEST_PORT}", "--workers", "1",
                         "-c", "python:crm.gunicorn_ingest_conf", "--name", "crm-ingest"])
        start("worker", [celery, "-A", "crm", "worker", "-Q", "callbacks,pushes,redpackets,default",
                         "--concurrency", "4", "--pool", "threads", "--loglevel", "INFO", "--hostname", "crm@%h"])
        start("beat", [celery, "-A", "crm", "beat", "--loglevel", "INFO"])

        up = (wait_http(f"{sim_base}/wecom-sim/cgi-bin/gettoken") and wait_http(f"{base}/healthz")
              and wait_http(f"{ingest_base}/healthz"))
        if not up:
            log("error: the web server, the ingest server or the simulator did not come up; see the output above")
            stop_all()
            return 1
        log("seeding demo data (idempotent)")
        manage("seed_demo", "--base-url", base, "--sim-url", sim_base, env=env)

        print(
            "\n"
            f"  CRM admin      {base}/admin/        (login: admin / admin)\n"
            f"  API docs       {base}/api/docs/\n"
            f"  Health         {base}/healthz\n"
            f"  Callbacks      {env['WECOM_CALLBACK_URL']}  (ingest server)\n"
            f"  Simulator      {sim_base}/wecom-sim/cgi-bin/  (admin API: {sim_base}/wecom-sim/admin/)\n"
            f"  Redis          {redis_url}\n"
            "\n  Ctrl-C stops everything.\n",
            flush=True,
        )
        signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
        while True:
            for name, proc in children:
                if proc.poll() is not None:
                    log(f"{name} exited with {proc.returncode}; stopping everything")
                    stop_all()
                    return 1
            time.sleep(1)
    except KeyboardInterrupt:
        log("Ctrl-C: stopping")
        stop_all()
        return 0
    except subprocess.CalledProcessError as exc:
        log(f"error: {' '.join(map(str, exc.cmd[1:3]))} failed with exit code {exc.returncode}")
        stop_all()
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
