"""`manage.py seed_demo`: demo data for `make run`, made the way real data is made. Converges.

One demo user per role (admin, marketing, store manager, cashier), a till, staff in the simulated corp, four
channels that shoppers added staff through over the last 30 days (contacts arrive by callback), shoppers deciding
on offers on their card page, purchases with some customers reaching VIP and joining the VIP group, a finished
campaign with its red packets claimed (the pool still live) and a campaign scheduled for the next 20:00 Shanghai
time. See loyalty/demo.py: each step brings the fixed
demo plan to its target state from whatever an earlier, perhaps killed, run left behind."""

import json
import os
import time

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from crm.services.readiness import seed_mark
from loyalty import journey
from loyalty.demo import DEMO_CUSTOMERS, DEMO_SEED, DemoSeed, demo_plan
from loyalty.services.store_staff import DEMO_USERS, demo_users_ensure
from loyalty.sim_admin import SimAdminError


class Command(BaseCommand):
    help = (
        "Create the demo data (converges from any partial state): staff, channels, 30 days of customers, VIPs, "
        "a finished and a scheduled campaign."
    )

    def add_arguments(self, parser):
        parser.add_argument("--base-url", default=settings.PUBLIC_BASE_URL, help="the running CRM")
        parser.add_argument("--sim-url", default="", help="the running simulator (default: WECOM_API_BASE_URL's)")
        parser.add_argument(
            "--customers",
            type=int,
            default=int(os.environ.get("DEMO_CUSTOMERS") or DEMO_CUSTOMERS),
            help=f"demo shoppers (default {DEMO_CUSTOMERS}, or the DEMO_CUSTOMERS variable)",
        )
        parser.add_argument("--timeout", type=float, default=120.0, help="seconds to wait for each stage")

    def handle(self, *args, base_url, sim_url, customers, timeout, **options):
        if customers < 1:
            raise CommandError("--customers must be at least 1")
        started = time.monotonic()
        seed_mark("seeding")
        demo_users_ensure()  # one user per role; a password someone changed is kept
        sim_url = sim_url or settings.WECOM_API_BASE_URL.rsplit("/wecom-sim/", 1)[0]
        run = journey.Journey(base_url=base_url, sim_url=sim_url, seed=DEMO_SEED, timeout=timeout)
        try:
            figures = DemoSeed(run, demo_plan(customers), say=self.stdout.write).converge()
        except (journey.JourneyError, SimAdminError) as exc:
            raise CommandError(str(exc)) from exc
        seed_mark("done")
        # What `make run` prints for a person: the demo passwords, to be changed before real use.
        figures["logins"] = {
            name: {"password": password, "role": role} for name, (role, password, _bound) in DEMO_USERS.items()
        }
        figures["seconds"] = round(time.monotonic() - started, 1)
        self.stdout.write(f"demo data ready: {json.dumps(figures)}")
