"""Quick measure of the planner alone: planning 1M recipients across 50 senders on PostgreSQL (time, peak RSS).

A throwaway database (crm_plan_bench_<pid>) gets the real schema and, server-side with generate_series, 50 active
staff, BENCH_PLAN_CONTACTS contacts (default 1,000,000) each followed by one of them (a second, later follow for
25%: the latest wins), all consenting to marketing; then VACUUM ANALYZE. A campaign to everyone is then planned
inline through `campaign_runs.run_start(..., enqueue=False)`: chunk after chunk of CAMPAIGN_PLAN_CHUNK, each an
INSERT ... SELECT plus the batch assignment, in one transaction. Prints the time, chunks/s, recipients/s and the
process's peak RSS before and after planning, and checks the plan (every contact once, <= 10,000 a message).

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/crm_plan .venv/bin/python bench/_plan_1m.py
"""

from __future__ import annotations

import os
import resource
import secrets
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CONTACTS = int(os.environ.get("BENCH_PLAN_CONTACTS", 1_000_000))
STAFF = 50

_GENERATE = [
    "INSERT INTO crm_staff (userid, name, status, has_customer_contact, created_at, updated_at) "
    "SELECT 'staff' || lpad(i::text, 3, '0'), 'Staff ' || i, 'active', true, now(), now() "
    "FROM generate_series(1, %(staff)s) i",
    "INSERT INTO crm_contact (external_userid, unionid, name, type, gender, avatar, corp_name, phone_encrypted, "
    "phone_hash, channel_id, first_added_at, created_at, updated_at, tag_ids) "
    "SELECT 'wmplan' || i, '', '', 1, 0, '', '', '', '', NULL, now() - random() * interval '700 days', now(), "
    "now(), '{}' FROM generate_series(1, %(contacts)s) i",
    "INSERT INTO crm_followrelation (staff_id, contact_id, remark, description, state, add_way, oper_userid, "
    "wecom_tag_ids, added_at, deleted_by_staff_at, created_at, updated_at) "
    "SELECT st.a[1 + (c.id %% %(staff)s)::int], c.id, '', '', '', 0, '', '[]'::jsonb, c.first_added_at, NULL, "
    "now(), now() FROM crm_contact c, (SELECT array_agg(id ORDER BY id) a FROM crm_staff) st",
    "INSERT INTO crm_followrelation (staff_id, contact_id, remark, description, state, add_way, oper_userid, "
    "wecom_tag_ids, added_at, deleted_by_staff_at, created_at, updated_at) "
    "SELECT st.a[1 + ((c.id * 7 + 3) %% %(staff)s)::int], c.id, '', '', '', 0, '', '[]'::jsonb, "
    "c.first_added_at + interval '1 day', NULL, now(), now() "
    "FROM crm_contact c, (SELECT array_agg(id ORDER BY id) a FROM crm_staff) st WHERE c.id %% 4 = 0 "
    "AND (c.id * 7 + 3) %% %(staff)s <> c.id %% %(staff)s",
    "INSERT INTO crm_consentrecord (contact_id, purpose, version, granted, source, policy_version, recorded_at) "
    "SELECT id, 'marketing', 1, true, 'card_page', '2026-01', now() FROM crm_contact",
]


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    from django.conf import settings
    from django.core.management import call_command
    from django.db import connection
    from django.db.models import Count, Max, Sum

    from bench.segment_count_1m import _admin_connection, _default_db

    if "postgresql" not in settings.DATABASES["default"]["ENGINE"]:
        sys.exit("needs PostgreSQL: set DATABASE_URL=postgres://...")
    name = f"crm_plan_bench_{os.getpid()}_{secrets.token_hex(2)}"
    admin = _admin_connection(settings.DATABASES["default"])
    admin.execute(f'CREATE DATABASE "{name}"')
    try:
        with _default_db(name):
            call_command("migrate", verbosity=0, interactive=False)
            started = time.perf_counter()
            with connection.cursor() as cur:
                cur.execute("SET session_replication_role = replica")
                for sql in _GENERATE:
                    cur.execute(sql, {"staff": STAFF, "contacts": CONTACTS})
                cur.execute("SET session_replication_role = DEFAULT")
                cur.execute("VACUUM ANALYZE")
            print(f"generated {CONTACTS:,} contacts in {time.perf_counter() - started:.1f} s")
            connection.close()

            from crm.models import CampaignRecipient, MassMessage
            from crm.services import campaign_runs
            from crm.services import campaigns as svc

            campaign = svc.campaign_create(name="bench", text="Hello from the brand")
            rss_before = _rss_mb()
            started = time.perf_counter()
            run = campaign_runs.run_start(campaign.id, enqueue=False)
            elapsed = time.perf_counter() - started
            rss_after = _rss_mb()

            recipients = CampaignRecipient.objects.filter(run=run)
            counts = recipients.aggregate(n=Count("id"), c=Count("contact", distinct=True))
            msgs = MassMessage.objects.filter(run=run).aggregate(n=Count("id"), top=Max("recipients_count"),
                                                                 total=Sum("recipients_count"))
            senders = MassMessage.objects.filter(run=run).values("sender").distinct().count()
            chunks = -(-CONTACTS // campaign_runs.plan_chunk_size())
            ok = (counts["n"] == counts["c"] == CONTACTS == run.planned == msgs["total"] and msgs["top"] <= 10_000
                  and not CampaignRecipient.objects.filter(run=run, mass_message=None).exists())
            print(f"planned {run.planned:,} recipients, {msgs['n']} messages (max {msgs['top']:,}) from {senders} "
                  f"senders in {elapsed:.1f} s ({run.planned / elapsed:,.0f} recipients/s, {chunks} chunks of "
                  f"{campaign_runs.plan_chunk_size():,}); run {run.status}; plan checked: {ok}")
            print(f"peak RSS {rss_before:.0f} MB before planning, {rss_after:.0f} MB after")
    finally:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()


if __name__ == "__main__":
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "crm.settings")
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    main()
