"""`manage.py simulate --customers N --seed S`: the whole journey, end to end, on real parts; prints JSON.

It serves the CRM and the simulator on a loopback port in this process, starts a real Celery worker process,
and drives shoppers, cashier and marketing through the journey (see loyalty/journey.py)."""

import contextlib
import json
import time
from collections import Counter

import redis
import requests
from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError

from crm.localstack import ServerThread, WorkerProcess, child_env, wire_settings
from loyalty import journey
from loyalty.sim_admin import SimAdmin, SimAdminError


class Command(BaseCommand):
    help = "Run the journey for N simulated shoppers and print its figures as one JSON object."

    def add_arguments(self, parser):
        parser.add_argument("--customers", type=int, default=20)
        parser.add_argument("--seed", type=int, default=1)
        parser.add_argument("--timeout", type=float, default=180.0, help="seconds to wait for each stage")
        parser.add_argument(
            "--faults",
            type=float,
            default=0.0,
            metavar="RATE",
            help="inject faults into about RATE (0..1) of WeCom and pay calls: 45009, 42001, 5xx, timeouts and slow "
            "answers (SYSTEMERROR after paying on the pay API); the figures must be those of a run without",
        )

    def handle(self, *args, customers: int, seed: int, timeout: float, faults: float, **options):
        if customers < 1:
            raise CommandError("--customers must be at least 1")
        if not 0 <= faults < 1:
            raise CommandError("--faults must be within 0..1 (a share of calls, e.g. 0.1)")
        if not settings.WECOM_SIM_ENABLED:  # the journey's shoppers live in the bundled simulator
            raise CommandError("the bundled WeCom simulator is off: set WECOM_SIM_ENABLED=1 (make simulate does)")
        call_command("migrate", verbosity=0, interactive=False, run_syncdb=True)
        server = ServerThread().start()
        env = child_env(server.url)
        wire_settings(server.url)
        worker = WorkerProcess(env, log_path=settings.VAR_DIR / "simulate-worker.log")
        started = time.monotonic()
        try:
            worker.start(redis.Redis.from_url(settings.REDIS_URL))
            figures = journey.run(server.url, customers=customers, seed=seed, timeout=timeout, faults=faults)
        except journey.JourneyError as exc:
            raise CommandError(f"{exc} (worker log: {worker.log_path})") from exc
        finally:
            if faults:  # the simulator keeps its rules in Redis: a later run on it starts without them
                with contextlib.suppress(SimAdminError, requests.RequestException):
                    sim = SimAdmin(server.url, settings.WECOM_SIM["ADMIN_KEY"])
                    hits = Counter()
                    for rule in sim.get("faults")["faults"]:
                        hits[f"{rule['path']} {rule['kind']}"] += rule["hits"]
                    self.stderr.write(f"faults injected: {sum(hits.values())} "
                                      f"({', '.join(f'{k}: {n}' for k, n in sorted(hits.items()) if n)})")
                    sim.delete("faults")
            worker.stop()
            server.stop()
        figures["seconds"] = round(time.monotonic() - started, 1)
        self.stdout.write(json.dumps(figures, ensure_ascii=False, default=str))
