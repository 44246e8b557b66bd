"""`manage.py seed_demo`: demo data for `make run`, made the way real data is made. Idempotent.

A demo admin, a till, staff in the simulated corp, a store channel that shoppers add staff through (contacts
arrive by callback), shoppers opting in to offers on their card page, a few purchases with some customers
reaching VIP and joining the VIP group, and a campaign with a red packet scheduled for the next 20:00 Shanghai time."""

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from crm.models import Campaign, ConsentRecord, Contact
from loyalty import journey

DEMO_CHANNEL_STATE = "store-sh-001"
DEMO_CUSTOMERS = 12
DEMO_CAMPAIGN = "Demo: VIP evening flash sale"


def next_evening(hour: int = 20) -> datetime:
    shanghai = ZoneInfo("Asia/Shanghai")
    now = timezone.now().astimezone(shanghai)
    target = now.replace(hour=hour, minute=0, second=0, microsecond=0)
    return target if target > now + timedelta(minutes=5) else target + timedelta(days=1)


class Command(BaseCommand):
    help = "Create demo data (idempotent): admin, till, staff, channel, customers via callbacks, VIPs, a campaign."

    def add_arguments(self, parser):
        parser.add_argument("--base-url", default=settings.PUBLIC_BASE_URL, help="the running CRM")
        parser.add_argument("--sim-url", default="", help="the running simulator (default: WECOM_API_BASE_URL's)")
        parser.add_argument("--customers", type=int, default=DEMO_CUSTOMERS)
        parser.add_argument("--timeout", type=float, default=120.0)

    def handle(self, *args, base_url, sim_url, customers, timeout, **options):
        user_model = get_user_model()
        if not user_model.objects.filter(username="admin").exists():
            user_model.objects.create_superuser("admin", "admin@example.com", "admin")
            self.stdout.write("created the demo admin (admin / admin): change its password before real use")
        sim_url = sim_url or settings.WECOM_API_BASE_URL.rsplit("/wecom-sim/", 1)[0]
        run = journey.Journey(base_url=base_url, sim_url=sim_url, seed=2026, timeout=timeout)
        try:
            run.setup_brand()
            state = run.channel(DEMO_CHANNEL_STATE, "Shanghai Jing'an store")
            have = Contact.objects.filter(channel__state=state).count()
            if have < customers:
                eids = run.add_shoppers(customers - have, state)
                vips = run.shop(eids)
                run.join_vip_groups(vips)
                self.stdout.write(f"added {len(eids)} customers through {state}; {len(vips)} reached VIP")
            # Demo shoppers seeded before consent was asked on the card page have never decided: they decide
            # there now, as new shoppers do (nobody is opted in without pressing the button).
            undecided = list(
                Contact.objects.filter(channel__state=state)
                .exclude(consents__purpose=ConsentRecord.Purpose.MARKETING)
                .values_list("external_userid", flat=True)
            )
            for eid in undecided:
                run.decide_consent(eid, run.card_page(eid), marketing=True)
            if undecided:
                self.stdout.write(f"{len(undecided)} earlier demo customers opted in on their card page")
            if not Campaign.objects.filter(name=DEMO_CAMPAIGN).exists():
                from crm.services.campaigns import campaign_create

                when = next_evening()
                campaign_create(
                    name=DEMO_CAMPAIGN,
                    text="VIP 专享闪购：今晚 20:00 开抢！Tap for your red packet:",
                    segment={"vip": True},
                    scheduled_at=when,
                    red_packet={"budget_fen": 50_000, "count": 100, "mode": "lucky",
                                "expires_at": when + timedelta(hours=24), "act_name": "VIP red packet"},
                )
                self.stdout.write(f"scheduled {DEMO_CAMPAIGN!r} for {when:%Y-%m-%d %H:%M} Asia/Shanghai")
        except journey.JourneyError as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write("demo data ready")
