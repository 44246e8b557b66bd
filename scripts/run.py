"""`make run`: one command that starts the whole product on this machine and stops it, all of it, on Ctrl-C.

Redis (REDIS_URL, the one recorded in var/redis.url, or an embedded one) -> migrate -> collectstatic -> simulator,
web, callback ingest server, Celery worker and beat as child processes -> demo data -> /readyz -> URLs and logins.
Every server binds to 127.0.0.1. The simulator sends its callbacks to the ingest server, as WeCom would through the
proxy in production.

The supervisor is in charge from its first second:
- a child that exits while it should be running stops the run at once, naming it and showing its last log lines;
- SIGINT / SIGTERM (one or several, to the supervisor or to its process group) stop every child, escalating to
  SIGKILL, and the embedded Redis, within 20 s; signals during the stop are noted and ignored;
- every child is started with PR_SET_PDEATHSIG, so if the supervisor itself is killed (SIGKILL) they exit too.

Each child logs JSON lines (as in production) to var/log/<name>.log; this terminal gets one line a step.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from crm import embedded_redis  # noqa: E402

VENV_BIN = Path(sys.executable).parent
PORT = int(os.environ.get("PORT", "8000"))
SIM_PORT = int(os.environ.get("SIM_PORT", "8001"))
INGEST_PORT = int(os.environ.get("INGEST_PORT", "8002"))
HOST = "127.0.0.1"
STOP_SECONDS = 12  # SIGTERM, then SIGKILL what is left: well inside the 20 s promise, Redis included
LOG_TAIL = 15


def log(message: str) -> None:
    print(f"[run] {message}", flush=True)


class Stop(Exception):
    """A SIGINT/SIGTERM/SIGHUP arrived: raised by the supervisor's own loops, never from the signal handler."""


class ChildDied(Exception):
    pass


def pretty(line: str) -> str:
    """A JSON log line as `level logger: message` (with the exception's last line), anything else as is."""
    try:
        record = json.loads(line)
    except ValueError:
        return line.rstrip()
    if not isinstance(record, dict):
        return line.rstrip()
    text = f"{record.get('levelname', record.get('level', ''))} {record.get('name', record.get('logger', ''))}: " \
           f"{record.get('message', record.get('msg', ''))}"
    exc = record.get("exc_info") or ""
    if exc:
        text += f"  [{exc.strip().splitlines()[-1]}]"
    return text.strip()


def tail(path: Path, lines: int = LOG_TAIL) -> list[str]:
    try:
        with open(path, "rb") as handle:
            handle.seek(0, os.SEEK_END)
            handle.seek(max(0, handle.tell() - 64 * 1024))
            data = handle.read().decode("utf-8", "replace").splitlines()
    except OSError:
        return []
    return [pretty(line) for line in data[-lines:]]


@dataclass
class Child:
    name: str
    proc: subprocess.Popen
    log_path: Path
    long_running: bool = True


@dataclass
class Supervisor:
    var_dir: Path
    env: dict
    children: list[Child] = field(default_factory=list)
    stopping: bool = False
    signals: list[str] = field(default_factory=list)  # what arrived, in order (the handler only appends)
    redis: embedded_redis.EmbeddedRedis | None = None
    redis_url: str = ""

    # --- signals ------------------------------------------------------------------------------
    def install_signals(self) -> None:
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(sig, self._on_signal)

    def _on_signal(self, signum, _frame) -> None:
        # No raise and no print here: a handler runs between any two bytecodes, also inside logging's or
        # subprocess's fork hooks, where an exception is swallowed ("Exception ignored in ...") and the stop lost.
        self.signals.append(signal.Signals(signum).name)

    # --- children -----------------------------------------------------------------------------
    def start(self, name: str, argv: list[str], *, long_running: bool = True, stdout=None) -> Child:
        log_path = self.var_dir / "log" / f"{name}.log"
        with open(log_path, "ab") as out:
            out.write(f"\n--- {time.strftime('%Y-%m-%d %H:%M:%S')} {' '.join(argv[:3])} ---\n".encode())
            out.flush()
            proc = subprocess.Popen(argv, cwd=ROOT, env=self.env, stdin=subprocess.DEVNULL,
                                    stdout=stdout if stdout is not None else out, stderr=out,
                                    start_new_session=True, preexec_fn=embedded_redis.die_with_parent)
        child = Child(name, proc, log_path, long_running)
        self.children.append(child)
        if long_running:
            log(f"started {name:<9} pid {proc.pid:<7} log {shown(log_path)}")
        return child

    def check_children(self) -> None:
        """Called by every wait of the supervisor (at least every 0.3 s): a signal or a dead child ends the run."""
        if self.signals and not self.stopping:
            raise Stop(self.signals[0])
        for child in self.children:
            if child.long_running and child.proc.poll() is not None:
                raise ChildDied(child.name)

    def died(self, name: str) -> None:
        child = next(c for c in self.children if c.name == name)
        log(f"error: {name} exited with code {child.proc.returncode}; stopping everything. "
            f"Last lines of {child.log_path}:")
        for line in tail(child.log_path):
            print(f"    {line}", flush=True)

    def run_step(self, name: str, argv: list[str], *, relay: bool = False, capture: bool = False) -> str:
        """A setup command (migrate, seed, ...), watched together with the servers already running. `relay` shows
        its output lines (e.g. "added 12 customers": its logs go to its file); `capture` returns them."""
        piped = relay or capture
        child = self.start(name, argv, long_running=False, stdout=subprocess.PIPE if piped else None)
        lines: list[str] = []
        reader = None
        if piped:
            reader = threading.Thread(target=self._read, args=(name, child.proc.stdout, relay, lines), daemon=True)
            reader.start()
        while child.proc.poll() is None:
            self.check_children()
            time.sleep(0.1)
        if reader:
            reader.join(timeout=2)
        if child.proc.returncode != 0:
            log(f"error: {name} failed with exit code {child.proc.returncode}. Last lines of {child.log_path}:")
            for line in tail(child.log_path):
                print(f"    {line}", flush=True)
            raise SystemExit(1)
        return "\n".join(lines)

    @staticmethod
    def _read(name: str, stream, relay: bool, lines: list[str]) -> None:
        for raw in iter(stream.readline, b""):
            line = raw.decode("utf-8", "replace").rstrip()
            lines.append(line)
            if relay:
                shown_line = line
                if line.startswith("demo data ready: "):  # the figures are for the summary, not for reading
                    shown_line = f"demo data ready in {seed_figures(line).get('seconds', '?')} s"
                print(f"[{name}] {shown_line}", flush=True)

    def wait_http(self, url: str, timeout: float, ok_statuses=range(200, 500)) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.check_children()
            try:
                with urllib.request.urlopen(url, timeout=2) as response:  # noqa: S310 (loopback URL we built)
                    if response.status in ok_statuses:
                        return True
            except urllib.error.HTTPError as exc:
                if exc.code in ok_statuses:
                    return True
            except OSError:
                pass
            time.sleep(0.3)
        return False

    # --- stopping -----------------------------------------------------------------------------
    def stop(self) -> None:
        """Stop every child (newest first) and the embedded Redis. Idempotent; signals meanwhile are ignored."""
        self.stopping = True
        alive = [c for c in reversed(self.children) if c.proc.poll() is None]
        for child in alive:
            if child.long_running:
                log(f"stopping {child.name}")
            _signal_group(child.proc, signal.SIGTERM)
        deadline = time.monotonic() + STOP_SECONDS
        for child in alive:
            try:
                child.proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                log(f"{child.name} did not stop in {STOP_SECONDS}s; killing it")
            # Also whatever its workers left in its process group.
            _signal_group(child.proc, signal.SIGKILL)
        for child in alive:
            child.proc.wait()
        if self.redis_url:
            embedded_redis.unrecord(self.redis_url, self.var_dir)
        if self.redis is not None:
            log("stopping the embedded Redis")
            self.redis.shutdown()
            self.redis = None
        # Nothing is left to stop: a late signal (make forwarding one more) must not kill the interpreter on its
        # way out, where Python has put the default handlers back.
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(sig, signal.SIG_IGN)
        if len(self.signals) > 1:
            log(f"also received {', '.join(self.signals[1:])} while stopping")


def _signal_group(proc: subprocess.Popen, sig: int) -> None:
    try:
        os.killpg(proc.pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def port_free(port: int) -> bool:
    import socket

    with socket.socket() as sock:
        return sock.connect_ex((HOST, port)) != 0


def shown(path: Path) -> Path:
    return path.relative_to(ROOT) if path.is_relative_to(ROOT) else path


def seed_figures(output: str) -> dict:
    """The seed's last line, `demo data ready: {...}`, as a dict (logins, counts)."""
    for line in reversed(output.splitlines()):
        if line.startswith("demo data ready: "):
            try:
                return json.loads(line.split(": ", 1)[1])
            except ValueError:
                break
    return {}


def summary(base: str, sim_base: str, ingest_base: str, redis_url: str, info: dict, logs: Path, seed: dict) -> str:
    logins = seed.get("logins") or {"admin": {"password": "admin", "role": "admin"}}
    login_lines = "".join(
        f"  {'Demo logins' if i == 0 else '':<19}{name} / {login['password']}  ({login['role']}"
        f"{', till API only' if login['role'] == 'cashier' else ''})\n"
        for i, (name, login) in enumerate(logins.items()))
    return (
        "\n"
        f"  CRM console        {base}/admin/\n"
        f"{login_lines}"
        "                     (demo passwords: change them before real use)\n"
        f"  API docs           {base}/api/docs/\n"
        f"  Health / ready     {base}/healthz   {base}/readyz\n"
        f"  Callbacks          {ingest_base}/wecom/callback  (ingest server)\n"
        f"  WeCom simulator    {sim_base}/wecom-sim/cgi-bin/\n"
        f"  Simulator admin    {info.get('admin_url', sim_base + '/wecom-sim/admin/')}  "
        f"(header X-Sim-Admin-Key: {info.get('admin_key', '?')})\n"
        f"  Redis              {redis_url}\n"
        f"  Logs               {shown(logs)}/\n"
        "\n  Ctrl-C stops everything.\n"
    )


def main() -> int:
    var_dir = embedded_redis.var_dir()
    (var_dir / "log").mkdir(parents=True, exist_ok=True)
    env = dict(os.environ)
    env.setdefault("DJANGO_SETTINGS_MODULE", "crm.settings")
    env.setdefault("WECOM_SIM_ENABLED", "1")
    base = f"http://{HOST}:{PORT}"
    sim_base = f"http://{HOST}:{SIM_PORT}"
    ingest_base = f"http://{HOST}:{INGEST_PORT}"
    env.update(PORT=str(PORT), SIM_PORT=str(SIM_PORT), PYTHONUNBUFFERED="1", DEMO_SEED="1", VAR_DIR=str(var_dir))
    env.setdefault("PUBLIC_BASE_URL", base)
    env.setdefault("WECOM_CALLBACK_URL", f"{ingest_base}/wecom/callback")
    sup = Supervisor(var_dir=var_dir, env=env)
    sup.install_signals()  # from the first second: a TERM never leaves anything behind
    try:
        for port in (PORT, SIM_PORT, INGEST_PORT):
            if not port_free(port):
                log(f"error: port {port} on {HOST} is in use (another `make run`?); set PORT / SIM_PORT / INGEST_PORT")
                return 2
        sup.redis_url, sup.redis = embedded_redis.ensure(directory=var_dir)
        if sup.redis is not None:
            log(f"started redis     pid {sup.redis.proc.pid:<7} {sup.redis_url} (nothing answered at REDIS_URL)")
        else:
            log(f"using Redis at {sup.redis_url}")
        embedded_redis.record(sup.redis_url, var_dir)  # commands beside this run (make simulate, manage.py) share it
        env["REDIS_URL"] = sup.redis_url

        log("migrating the database")
        python = sys.executable
        sup.run_step("migrate", [python, "manage.py", "migrate", "--noinput"])
        sup.run_step("collectstatic", [python, "manage.py", "collectstatic", "--noinput", "-v", "0"])
        info = json.loads(sup.run_step("simulator_info", [python, "manage.py", "simulator_info"], capture=True) or "{}")

        gunicorn, celery = str(VENV_BIN / "gunicorn"), str(VENV_BIN / "celery")
        sup.start("simulator", [gunicorn, "crm.wsgi", "-b", f"{HOST}:{SIM_PORT}", "--workers", "1", "--threads", "16",
                                "-c", "python:crm.gunicorn_conf", "--name", "wecom-sim"])
        sup.start("web", [gunicorn, "crm.wsgi", "-b", f"{HOST}:{PORT}", "--workers", "2", "--threads", "8",
                          "-c", "python:crm.gunicorn_conf", "--name", "crm-web"])
        sup.start("ingest", [gunicorn, "crm.ingest", "-b", f"{HOST}:{INGEST_PORT}", "--workers", "1",
                             "-c", "python:crm.gunicorn_ingest_conf", "--name", "crm-ingest"])
        sup.start("worker", [celery, "-A", "crm", "worker", "-Q", "callbacks,pushes,redpackets,default",
                             "--concurrency", "4", "--pool", "threads", "--loglevel", "INFO", "--hostname", "crm@%h"])
        sup.start("beat", [celery, "-A", "crm", "beat", "--loglevel", "INFO",
                           "--schedule", str(var_dir / "celerybeat-schedule")])

        up = (sup.wait_http(f"{sim_base}/wecom-sim/cgi-bin/gettoken", 60) and sup.wait_http(f"{base}/healthz", 60)
              and sup.wait_http(f"{ingest_base}/healthz", 60))
        if not up:
            log("error: the web server, the ingest server or the simulator did not answer in 60 s; see var/log/")
            return 1
        log("seeding demo data (picks up where an earlier run stopped)")
        seeded = seed_figures(sup.run_step("seed", [python, "manage.py", "seed_demo", "--base-url", base,
                                                    "--sim-url", sim_base], relay=True))
        if not sup.wait_http(f"{base}/readyz", 60, ok_statuses=(200,)):
            log(f"error: {base}/readyz did not answer 200 in 60 s")
            return 1
        log("ready")
        print(summary(base, sim_base, ingest_base, sup.redis_url, info, var_dir / "log", seeded), flush=True)
        while True:
            sup.check_children()
            time.sleep(0.5)
    except Stop as exc:
        log(f"{exc}: stopping")
        return 0
    except ChildDied as exc:
        sup.stopping = True  # a signal from here on only hurries the stop below
        sup.died(str(exc))
        return 1
    except SystemExit as exc:
        sup.stopping = True
        return int(exc.code or 0)
    finally:
        sup.stop()
        log("stopped")


if __name__ == "__main__":
    raise SystemExit(main())
