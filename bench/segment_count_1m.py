"""Benchmark `segment_count_1m`: the product's segment count over 1M contacts on PostgreSQL.

A PostgreSQL database on the runner's server, `<DATABASE NAME>_data`, gets the real schema (migrations, indexes and
triggers included) and a generated contact base, made server-side with generate_series: ~50 staff (3 resigned),
20 channels with skewed traffic, one or two follow relations per contact (5% deleted by staff), 30 tags with skewed
popularity (a few ContactTag rows per contact; "VIP" on ~4%; crm_contact.tag_ids written alongside, as migration 0004's
trigger keeps it, and checked equal), marketing consent for 40% (5% withdrawn later); and for the kinds of issue 11:
300 customer groups (10 VIP), 300k Tmall/JD order lines, 200 SKUs in 10 categories, loyalty cards for half the
contacts in 4 tiers, ~1M till receipts over two years with 1-2 lines each (the columns and the latest-purchase table
loyalty 0004's triggers keep, written alongside, and crm 0013's consent in force by its backfill); then VACUUM
ANALYZE. The database is kept between runs (generating it takes minutes on a loaded machine) and made again when
the size or the generating SQL changes (a fingerprint row); a kept one gets new migrations (their backfills run on
the 1M rows) and a VACUUM ANALYZE. Each realistic segment, in the filter
language (the old flat shape for the first five), is timed through `crm.services.segments.segment_count`, the path
the console's and the API's preview count take: median and max of RUNS runs after one warm-up, its count checked
against the portable forms (EXISTS over ContactTag, consent by NOT EXISTS of a later version, purchases through
the card join: what SQLite runs). Target: both <= 300 ms.
Baseline, same run, same connection: a plain `SELECT count(*)` over the contacts table; ratio = segment median /
baseline median.
Knobs: BENCH_SEGMENT_CONTACTS (default 1,000,000), BENCH_SEGMENT_RUNS (7), BENCH_SEGMENT_ONLY (comma-separated kind
names; all when unset). Skipped (met false) when the runner is not on PostgreSQL.
"""

from __future__ import annotations

import hashlib
import importlib
import os
import statistics
import sys
import time
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CONTACTS = int(os.environ.get("BENCH_SEGMENT_CONTACTS", 1_000_000))
RUNS = int(os.environ.get("BENCH_SEGMENT_RUNS", 7))
TARGET_MS = 300.0
STAFF, RESIGNED, CHANNELS, TAGS, VIP_INDEX = 50, 3, 20, 30, 20

# Server-side generation (seconds, not minutes, for 1M contacts). Tag k (0-based) is drawn with probability
# ((k+1)/30)^0.4 - (k/30)^0.4: tag 0 on ~55% of contacts, tag 29 on ~4%; "VIP" is tag VIP_INDEX.
_GENERATE = [
    "INSERT INTO crm_staff (userid, name, status, has_customer_contact, created_at, updated_at) "
    "SELECT 'staff' || lpad(i::text, 3, '0'), 'Staff ' || i, "
    "CASE WHEN i > %(active)s THEN 'resigned' ELSE 'active' END, true, now(), now() "
    "FROM generate_series(1, %(staff)s) i",
    "INSERT INTO crm_channel (name, state, config_id, qr_code, welcome_text, created_at, updated_at) "
    "SELECT 'Store ' || i, 'store-' || lpad(i::text, 3, '0'), '', '', '', now(), now() "
    "FROM generate_series(1, %(channels)s) i",
    "INSERT INTO crm_taggroup (name, \"order\") VALUES ('Bench', 0)",
    'INSERT INTO crm_tag (group_id, name, "order") '
    "SELECT (SELECT min(id) FROM crm_taggroup), CASE WHEN i = %(vip)s THEN 'VIP' ELSE 'tag' || lpad(i::text, 2, '0') "
    "END, 0 FROM generate_series(0, %(tags)s - 1) i",
    # 10% of contacts came through no channel; the rest skew towards the first stores. Each contact's tags are
    # drawn here, into tag_ids (the `i > 0` makes the draw per row), and become ContactTag rows below: the load
    # runs with triggers off, so it writes what migration 0004's trigger keeps there in a live database.
    "INSERT INTO crm_contact (external_userid, unionid, name, type, gender, avatar, corp_name, phone_encrypted, "
    "phone_hash, channel_id, first_added_at, created_at, updated_at, tag_ids) "
    "SELECT 'wmbench' || i, '', '', 1, i %% 3, '', '', '', '', "
    "CASE WHEN random() < 0.1 THEN NULL ELSE ch.a[1 + floor(%(channels)s * power(random(), 1.5))::int] END, "
    "now() - random() * interval '730 days', now(), now(), "
    "ARRAY(SELECT DISTINCT t.a[1 + floor(%(tags)s * power(random(), 2.5))::int] FROM generate_series(1, 4) k "
    "WHERE random() < 0.7 AND i > 0) "
    "FROM generate_series(1, %(contacts)s) i, (SELECT array_agg(id ORDER BY id) a FROM crm_channel) ch, "
    "(SELECT array_agg(id ORDER BY id) a FROM crm_tag) t",
    # One follow per contact, a second (other staff member) for 25%; 5% deleted by staff.
    "INSERT INTO crm_followrelation (staff_id, contact_id, remark, description, state, add_way, oper_userid, "
    "wecom_tag_ids, added_at, deleted_by_staff_at, created_at, updated_at) "
    "SELECT st.a[1 + s], c.id, '', '', '', 0, '', '[]'::jsonb, c.first_added_at, "
    "CASE WHEN random() < 0.05 THEN now() END, now(), now() "
    "FROM (SELECT id, first_added_at, floor(random() * %(staff)s)::int p, random() r2, "
    "floor(random() * (%(staff)s - 1))::int o FROM crm_contact) c "
    "CROSS JOIN LATERAL (VALUES (c.p), (CASE WHEN c.r2 < 0.25 THEN (c.p + 1 + c.o) %% %(staff)s END)) f(s), "
    "(SELECT array_agg(id ORDER BY id) a FROM crm_staff) st WHERE f.s IS NOT NULL",
    "INSERT INTO crm_contacttag (contact_id, tag_id, created_at) "
    "SELECT c.id, t.id, now() FROM crm_contact c CROSS JOIN LATERAL unnest(c.tag_ids) t(id)",
    "INSERT INTO crm_consentrecord (contact_id, purpose, version, granted, source, policy_version, recorded_at) "
    "SELECT id, 'marketing', 1, true, 'card_page', '2026-01', now() FROM crm_contact WHERE random() < 0.4",
    "INSERT INTO crm_consentrecord (contact_id, purpose, version, granted, source, policy_version, recorded_at) "
    "SELECT contact_id, 'marketing', 2, false, 'wecom', '2026-01', now() FROM crm_consentrecord "
    "WHERE random() < 0.05",
]

# The new kinds (issue 11): customer groups (300, 10 VIP; ~15% of contacts in one, 10% of memberships left),
# order lines from Tmall and JD (300k over two years, 90% matched to a contact), a catalogue of 200 SKUs in 10
# categories, loyalty cards for half the contacts (4 tiers, skewed balances) with ~1M till receipts over two years
# (more of them recent) of 1-2 lines each.
PRODUCTS, CATEGORIES, GROUPS, VIP_GROUPS = 200, 10, 300, 10
_GENERATE_MORE = [
    "INSERT INTO crm_customergroup (chat_id, name, owner_id, is_vip, status, notice, member_version, "
    "created_at, updated_at) SELECT 'wrbench' || i, 'Group ' || i, NULL, i <= %(vip_groups)s, 'active', '', '', "
    "now(), now() FROM generate_series(1, %(groups)s) i",
    "INSERT INTO crm_groupmember (group_id, contact_id, member_id, type, name, join_scene, join_state, joined_at, "
    "left_at) SELECT g.a[1 + floor(%(groups)s * power(random(), 2))::int], c.id, c.external_userid, 2, '', 1, '', "
    "now(), CASE WHEN random() < 0.1 THEN now() END FROM crm_contact c, "
    "(SELECT array_agg(id ORDER BY id) a FROM crm_customergroup) g WHERE random() < 0.15",
    "INSERT INTO crm_datasource (code, name, openness) VALUES ('tmall', 'Tmall', 'semi_open'), "
    "('jd', 'JD', 'semi_open') ON CONFLICT (code) DO NOTHING",
    "INSERT INTO loyalty_product (sku, name, category, created_at) SELECT 'sku' || lpad(i::text, 4, '0'), "
    "'Product ' || i, 'cat' || (i %% %(categories)s), now() FROM generate_series(1, %(products)s) i",
    "INSERT INTO crm_sourceorderline (source_id, order_id, line_no, phone_hash, contact_id, sku, quantity, "
    "amount_fen, ordered_at) SELECT CASE WHEN i %% 3 = 0 THEN (SELECT id FROM crm_datasource WHERE code = 'jd') "
    "ELSE (SELECT id FROM crm_datasource WHERE code = 'tmall') END, 'o' || i, 1, md5(i::text), "
    "CASE WHEN random() < 0.9 THEN 1 + floor(random() * %(contacts)s)::int END, "
    "'sku' || lpad((1 + floor(%(products)s * power(random(), 2)))::int::text, 4, '0'), 1, "
    "(1000 + random() * 50000)::int, now() - power(random(), 1.5) * interval '730 days' "
    "FROM generate_series(1, %(order_lines)s) i",
    "INSERT INTO loyalty_tier (name, min_points, min_spend_fen, is_vip, rank) VALUES ('Bronze', 0, 0, false, 1), "
    "('Silver', 1000, 0, false, 2), ('Gold', 5000, 0, false, 3), ('Platinum', 20000, 0, true, 4)",
    "INSERT INTO loyalty_store (code, name, city, is_active, created_at) SELECT 'store-' || i, 'Store ' || i, "
    "'Shanghai', true, now() FROM generate_series(1, 20) i",
    "INSERT INTO loyalty_card (contact_id, number, tier_id, points_balance, lifetime_points, created_at, "
    "updated_at) SELECT c.id, lpad(c.id::text, 16, '0'), t.a[1 + floor(4 * power(random(), 2.5))::int], "
    "floor(30000 * power(random(), 4))::int, 0, now(), now() FROM crm_contact c, "
    "(SELECT array_agg(id ORDER BY rank) a FROM loyalty_tier) t WHERE random() < 0.5",
    # contact_id (and a line's scanned_at): the columns loyalty 0004's triggers fill, written here (triggers off).
    "INSERT INTO loyalty_purchase (store_id, receipt_id, card_id, contact_id, amount_fen, points, balance_after, "
    "earn_breakdown, scanned_at) SELECT s.a[1 + (r.i %% 20)], 'r' || r.i, cd.id, cd.contact_id, "
    "(500 + random() * 30000)::int, 0, 0, '{}'::jsonb, now() - power(random(), 1.5) * interval '730 days' "
    "FROM (SELECT i, 1 + floor(random() * "
    "(SELECT count(*) FROM loyalty_card))::int k FROM generate_series(1, %(purchases)s) i) r "
    "JOIN (SELECT id, contact_id, row_number() OVER (ORDER BY id) k FROM loyalty_card) cd ON cd.k = r.k, "
    "(SELECT array_agg(id) a FROM loyalty_store) s",
    "INSERT INTO loyalty_purchaseline (purchase_id, contact_id, scanned_at, sku, name, qty, amount_fen, points) "
    "SELECT p.id, p.contact_id, p.scanned_at, "
    "'sku' || lpad((1 + floor(%(products)s * power(random(), 2)))::int::text, 4, '0'), '', 1, "
    "p.amount_fen, 0 FROM loyalty_purchase p CROSS JOIN generate_series(1, 2) k WHERE k = 1 OR random() < 0.5",
]


def _segments(tag: list[int], channel: list[int], staff: list[str]) -> dict[str, dict]:
    """Realistic campaign audiences; tag[0] is the most popular tag, tag[VIP_INDEX] is VIP."""
    return {
        "tags_any_exclude_channel": {
            "tags": [tag[2], tag[5], tag[9]],
            "exclude_tags": [tag[1]],
            "channels": channel[:5],
        },
        "tags_all_staff": {"tags": [tag[0], tag[3]], "tags_match": "all", "staff": staff[:10]},
        "vip": {"vip": True},
        "everything": {
            "tags": [tag[0], tag[4], tag[12]],
            "exclude_tags": [tag[2], tag[7]],
            "channels": channel[:8],
            "staff": staff[:20] + staff[-2:],
            "vip": True,
        },
        "popular_tag_exclude": {"tags": [tag[0]], "exclude_tags": [tag[1], tag[3]]},
    }


def _new_segments(tag: list[int], tiers: list[int], groups: list[str]) -> dict[str, dict]:
    """One realistic condition of each new kind, in the filter language, and a nested AND/OR/NOT."""
    from datetime import timedelta

    from django.utils import timezone

    today = timezone.localdate()
    recent, older = (today - timedelta(days=30)).isoformat(), (today - timedelta(days=180)).isoformat()

    def c(field, op, value, **extra):
        return {"field": field, "op": op, "value": value, **extra}

    return {
        "tier": c("tier", "in", tiers[2:]),
        "points": c("points", "gte", 5000),
        "spend_90d": c("spend", "gte", 30000, days=90),
        "last_purchase_after": c("last_purchase", "after", recent),
        "last_purchase_before": c("last_purchase", "before", older),
        "bought_category": c("bought", "any", {"categories": ["cat1", "cat2"]}, days=365),
        "group": c("group", "in", groups[10:40]),
        "vip_group": c("vip_group", "is", True),
        "consent_granted": c("consent", "granted", "marketing"),
        "added_between": c(
            "added", "between", [(today - timedelta(days=400)).isoformat(), (today - timedelta(days=100)).isoformat()]
        ),
        "source_tmall": c("source", "in", ["tmall"]),
        "nested_and_or_not": {
            "all": [
                {"any": [c("tags", "any", [tag[2], tag[5]]), c("tier", "in", tiers[1:])]},
                {"not": c("consent", "withdrawn", "marketing")},
                {"not": {"any": [c("spend", "gte", 100000, days=90), c("vip_group", "is", True)]}},
                c("added", "before", recent),
            ]
        },
    }


@contextmanager
def _default_db(name: str):
    """Point the default connection at the throwaway database (as Django's test runner does), then back."""
    from django.conf import settings
    from django.db import connection

    original = connection.settings_dict["NAME"]
    connection.close()
    connection.settings_dict["NAME"] = settings.DATABASES["default"]["NAME"] = name
    try:
        yield connection
    finally:
        connection.close()
        connection.settings_dict["NAME"] = settings.DATABASES["default"]["NAME"] = original


def _time_ms(fn) -> tuple[list[float], object]:
    fn()  # warm-up: plans, caches
    times, result = [], None
    for _ in range(RUNS):
        started = time.perf_counter()
        result = fn()
        times.append((time.perf_counter() - started) * 1000)
    return times, result


def _generate(connection) -> float:
    started = time.perf_counter()
    params = {
        "staff": STAFF,
        "active": STAFF - RESIGNED,
        "channels": CHANNELS,
        "tags": TAGS,
        "vip": VIP_INDEX,
        "contacts": CONTACTS,
        "groups": GROUPS,
        "vip_groups": VIP_GROUPS,
        "products": PRODUCTS,
        "categories": CATEGORIES,
        "order_lines": CONTACTS * 3 // 10,
        "purchases": CONTACTS,
    }
    with connection.cursor() as cur:
        # Throwaway database, data built consistent: skip per-row FK triggers and WAL flushes while loading.
        cur.execute("SET session_replication_role = replica")
        cur.execute("SET synchronous_commit = off")
        for sql in _GENERATE + _GENERATE_MORE:
            cur.execute(sql, params)
        # Each contact's latest purchase, which loyalty 0004's triggers keep, written as that migration's backfill
        # does: the load ran with triggers off (the receipts' and lines' contact columns were written with them).
        for sql in importlib.import_module("loyalty.migrations.0004_loyalty_segments").BACKFILL_LATEST:
            cur.execute(sql)
        # Likewise the consent in force per (purpose, contact), which crm 0013's triggers keep.
        for sql in importlib.import_module("crm.migrations.0013_segment_rollups").BACKFILL:
            cur.execute(sql)
        # The card's tier on the contact row and the spend per window, which loyalty 0011's triggers keep.
        tier_spend = importlib.import_module("loyalty.migrations.0011_segment_tier_spend")
        cur.execute(tier_spend.BACKFILL_TIER)
        cur.execute("SELECT loyalty_segment_spend_rebuild()")
        cur.execute("SET session_replication_role = DEFAULT")
        # The denormalised tag ids must say exactly what ContactTag says, or the timings mean nothing.
        cur.execute(
            "SELECT (SELECT count(*) FROM crm_contacttag), (SELECT sum(cardinality(tag_ids)) FROM crm_contact), "
            "(SELECT count(*) FROM crm_contacttag ct JOIN crm_contact c ON c.id = ct.contact_id "
            "WHERE ct.tag_id = ANY(c.tag_ids))"
        )
        rows, ids, matched = cur.fetchone()
        if not rows == ids == matched:
            raise RuntimeError(f"tag_ids out of step: {rows} ContactTag rows, {ids} array ids, {matched} matched")
        # A live table has been vacuumed by autovacuum (visibility map set, so index-only scans stay index-only);
        # a freshly loaded one has not.
        cur.execute("VACUUM ANALYZE")
    return time.perf_counter() - started


def _skip(reason: str) -> list[dict]:
    return [
        {
            "name": "segment_count_1m",
            "value": None,
            "unit": "ms",
            "baseline": None,
            "ratio": None,
            "target": f"<= {TARGET_MS:.0f} ms",
            "met": False,
            "note": f"skipped: {reason}",
        }
    ]


def run() -> list[dict]:
    from django.conf import settings
    from django.core.management import call_command

    if "postgresql" not in settings.DATABASES["default"]["ENGINE"]:
        return _skip(
            "needs PostgreSQL (set DATABASE_URL=postgres://...); the runner is on "
            f"{settings.DATABASES['default']['ENGINE'].rsplit('.', 1)[-1]}"
        )
    from crm.models import Channel, CustomerGroup, Staff, Tag
    from crm.services import segments
    from loyalty.models import Tier

    name, built = _data_db(settings.DATABASES["default"])
    with _default_db(name) as connection:
        call_command("migrate", verbosity=0, interactive=False)  # a kept database gets new migrations too
        load_s = None if built else _generate(connection)
        if built:  # migrations applied just now may have backfilled tables: statistics for the planner
            with connection.cursor() as cur:
                cur.execute("VACUUM ANALYZE")
        else:
            _mark_built(connection)
        tags = list(Tag.objects.order_by("id").values_list("id", flat=True))
        channels = list(Channel.objects.order_by("id").values_list("id", flat=True))
        staff = list(Staff.objects.order_by("id").values_list("userid", flat=True))
        tiers = list(Tier.objects.order_by("rank").values_list("id", flat=True))
        groups = list(CustomerGroup.objects.order_by("id").values_list("chat_id", flat=True))
        kinds = {**_segments(tags, channels, staff), **_new_segments(tags, tiers, groups)}
        only = {k for k in os.environ.get("BENCH_SEGMENT_ONLY", "").split(",") if k}
        kinds = {k: v for k, v in kinds.items() if not only or k in only}

        def plain_count():
            with connection.cursor() as cur:
                cur.execute("SELECT count(*) FROM crm_contact")
                return cur.fetchone()[0]

        base_times, total = _time_ms(plain_count)
        measured, exists_counts = {}, {}
        for label, raw in kinds.items():
            segment = segments.segment_validate(raw)
            measured[label] = _time_ms(lambda s=segment: segments.segment_count(s))
            # Same answer as the portable forms (EXISTS over ContactTag, consent by NOT EXISTS of a later
            # version: what SQLite runs), or the row fails.
            exists_counts[label] = segments.resolve(segment, use_tag_array=False).count()

    base = statistics.median(base_times)
    load_avg = "/".join(f"{x:.1f}" for x in os.getloadavg())  # how shared the machine was (1, 5, 15 min)
    rows = []
    for label, (times, count) in measured.items():
        median, worst = statistics.median(times), max(times)
        same = count == exists_counts[label]
        rows.append({
            "name": f"segment_count_1m.{label}", "value": round(median, 1), "unit": "ms",
            "baseline": round(base, 1), "ratio": round(median / base, 2) if base else None,
            "target": f"<= {TARGET_MS:.0f} ms (median and max)",
            "met": same and median <= TARGET_MS and worst <= TARGET_MS,
            "note": ("" if same else f"WRONG COUNT: EXISTS form gives {exists_counts[label]:,}; ")
                    + f"max {worst:.1f} ms over {RUNS} runs; {count:,} of {total:,} contacts; baseline = "
                    f"SELECT count(*) over contacts; "
                    + (f"data generated in {load_s:.0f} s" if load_s is not None else "data kept from an earlier run")
                    + f"; {os.cpu_count()} CPUs, load average {load_avg} at the end",
        })  # fmt: skip
    return rows


def _fingerprint() -> str:
    """What the generated data depends on: the size and the generating SQL."""
    text = repr((CONTACTS, _GENERATE, _GENERATE_MORE, STAFF, TAGS, PRODUCTS, GROUPS))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _data_db(db: dict) -> tuple[str, bool]:
    """The data's database, `<DATABASE NAME>_data`, kept between runs (generating 1M contacts takes minutes on a
    loaded machine): (name, True) when it holds data made by this generator at this size, else made afresh."""
    name = f"{db['NAME']}_data"
    admin = _admin_connection(db)
    try:
        if admin.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone():
            try:
                with _admin_connection(db, name) as data:
                    row = data.execute("SELECT fingerprint FROM bench_segment_build").fetchone()
                if row and row[0] == _fingerprint():
                    return name, True
            except Exception:  # no marker: a half-built database, made again below
                pass
            admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
        admin.execute(f'CREATE DATABASE "{name}"')
        return name, False
    finally:
        admin.close()


def _mark_built(connection) -> None:
    with connection.cursor() as cur:
        cur.execute("CREATE TABLE bench_segment_build (fingerprint text)")
        cur.execute("INSERT INTO bench_segment_build VALUES (%s)", [_fingerprint()])


def _admin_connection(db: dict, dbname: str = "postgres"):
    import psycopg

    return psycopg.connect(
        dbname=dbname, user=db.get("USER") or None, password=db.get("PASSWORD") or None,
        host=db.get("HOST") or "127.0.0.1", port=db.get("PORT") or None, autocommit=True,
    )  # fmt: skip


if __name__ == "__main__":
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "crm.settings")
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    for row in run():
        print(row)
