"""Segment counts at 1M contacts: the card's tier on the contact's row, and spend per window kept as a rollup.

Two conditions still cost more than a count may (300 ms) at 1M contacts on PostgreSQL:

- `tier` under an OR (tags OR tier): the tier's cards become a hashed subplan probed once per contact, about four
  times the cost of the tag test beside it. `crm_contact.loyalty_tier_id`, the card's tier kept by triggers on
  loyalty_card (as crm 0004 keeps tag_ids; deliberately not a model field, so a stale Contact.save() cannot write
  it), lets segment_fields test it on the contact's own row there.
- `spend` in a window: the window's receipts and order lines (300k rows for 90 days) were summed per contact in
  each count. `loyalty_segment_spend` holds each buyer's till and order spend in the windows of SPEND_WINDOWS
  days, as of the Shanghai day in `loyalty_segment_spend_state`. Every window ends now and starts at a Shanghai
  midnight, so the sums change only by rows written (statement triggers on receipts and order lines, inside the
  writing transaction) and by the day turning (loyalty_segment_spend_advance(), from beat: the day that leaves
  each window is subtracted). segment_fields reads it only when its day is today, and sums the rows otherwise,
  so a late advance costs time, never a wrong count.

The triggers lock the rollup before reading the day, and the advance locks it (EXCLUSIVE) before moving the day:
a writer either lands before the advance (which then sees its rows) or after it (and reads the new day). Loads
that run with triggers off (session_replication_role = replica) call loyalty_segment_spend_rebuild() and
BACKFILL_TIER after. SQLite (local tests) gets none of this; segment_fields reads the joins there.
"""

# The SQL here is built from table and column names and fixed fragments only: no value is interpolated.
# ruff: noqa: S608
from django.db import migrations

SPEND_WINDOWS = (30, 90, 180, 365)
_SOURCES = ("till", "order")
_COLUMNS = [f"{source}_{days}" for source in _SOURCES for days in SPEND_WINDOWS]


def _start(days: int, day: str = "d") -> str:
    """The first moment of the last `days` days as of Shanghai day `day` (a date expression)."""
    return f"(({day} - {days - 1})::timestamp AT TIME ZONE 'Asia/Shanghai')"


def _upsert(source: str, sums: list[str], rows: str, where: str) -> str:
    """INSERT ... SELECT of per-window `sums` over `rows` (contact_id, at, amount) into `source`'s columns,
    added to what the rollup holds (upserted)."""
    cols = [f"{source}_{days}" for days in SPEND_WINDOWS]
    updates = ", ".join(f"{c} = s.{c} + EXCLUDED.{c}" for c in cols)
    return (
        f"INSERT INTO loyalty_segment_spend AS s (contact_id, {', '.join(cols)}) "
        f"SELECT r.contact_id, {', '.join(sums)} FROM ({rows}) r "
        f"WHERE r.contact_id IS NOT NULL{where} GROUP BY r.contact_id "
        f"ON CONFLICT (contact_id) DO UPDATE SET {updates}"
    )


def _sums(source: str, sign: str, rows: str, day: str = "d") -> str:
    """`rows` (contact_id, at, amount) added (`sign` +1/-1) to the `source` windows they fall in as of `day`.
    Rows older than the longest window are left out (they would only add rows of zeros)."""
    sums = [f"{sign} * COALESCE(SUM(r.amount) FILTER (WHERE r.at >= {_start(days, day)}), 0)" for days in SPEND_WINDOWS]
    return _upsert(source, sums, rows, f" AND r.at >= {_start(max(SPEND_WINDOWS), day)}")


_TILL_ROWS = "SELECT contact_id, scanned_at AS at, amount_fen::bigint AS amount FROM {table}"
_ORDER_ROWS = "SELECT contact_id, ordered_at AS at, amount_fen::bigint AS amount FROM {table}"
_ROW = "SELECT {t}.contact_id, {t}.scanned_at AS at, {t}.amount_fen::bigint AS amount"

# Before the day is read: an advance in progress holds EXCLUSIVE until it commits (see the docstring).
_READ_DAY = """
        LOCK TABLE loyalty_segment_spend IN ROW EXCLUSIVE MODE;
        SELECT day INTO d FROM loyalty_segment_spend_state;
        IF d IS NULL THEN RETURN NULL; END IF;"""

# Receipts, row by row: a scan inserts one, and its later save() of other columns must cost nothing here (a
# statement trigger with transition tables cannot name columns).
_TILL_TRIGGER = f"""
    CREATE OR REPLACE FUNCTION loyalty_spend_till() RETURNS trigger LANGUAGE plpgsql AS $$
    DECLARE d date;
    BEGIN{_READ_DAY}
        IF TG_OP IN ('UPDATE', 'DELETE') THEN
            {_sums("till", "-1", _ROW.format(t="OLD"))};
        END IF;
        IF TG_OP IN ('INSERT', 'UPDATE') THEN
            {_sums("till", "1", _ROW.format(t="NEW"))};
        END IF;
        RETURN NULL;
    END $$
    """


def _order_triggers() -> list[str]:
    """Order lines, per statement with transition tables: an import of 1M lines pays one set-based upsert."""
    out = []
    for op, old, new in (
        ("insert", None, "new_rows"),
        ("update", "old_rows", "new_rows"),
        ("delete", "old_rows", None),
    ):
        name = f"loyalty_spend_order_{op}"
        body = "\n        ".join(
            _sums("order", sign, _ORDER_ROWS.format(table=table)) + ";"
            for sign, table in (("-1", old), ("1", new))
            if table
        )
        referencing = " ".join(filter(None, [old and "OLD TABLE AS old_rows", new and "NEW TABLE AS new_rows"]))
        out += [
            f"""
    CREATE OR REPLACE FUNCTION {name}() RETURNS trigger LANGUAGE plpgsql AS $$
    DECLARE d date;
    BEGIN{_READ_DAY}
        {body}
        RETURN NULL;
    END $$
    """,
            f"CREATE TRIGGER {name} AFTER {op.upper()} ON crm_sourceorderline REFERENCING {referencing} "
            f"FOR EACH STATEMENT EXECUTE FUNCTION {name}()",
        ]
    return out


_REBUILD_BODY = (
    "DELETE FROM loyalty_segment_spend; "
    + _sums(
        "till", "1", _TILL_ROWS.format(table="loyalty_purchase") + f" WHERE scanned_at >= {_start(max(SPEND_WINDOWS))}"
    )
    + "; "
    + _sums(
        "order",
        "1",
        _ORDER_ROWS.format(table="crm_sourceorderline") + f" WHERE ordered_at >= {_start(max(SPEND_WINDOWS))}",
    )
    + ";"
)


def _leaving(source: str, table: str, at: str, rows_sql: str) -> str:
    """Subtract, per window, the Shanghai day that leaves it when the day turns from d to d + 1."""
    sums = [
        f"-COALESCE(SUM(r.amount) FILTER (WHERE r.at >= {_start(days)} AND r.at < {_start(days, 'd + 1')}), 0)"
        for days in SPEND_WINDOWS
    ]
    lo, hi = _start(max(SPEND_WINDOWS)), _start(min(SPEND_WINDOWS), "d + 1")
    return _upsert(source, sums, rows_sql.format(table=table) + f" WHERE {at} >= {lo} AND {at} < {hi}", "")


_ALL_ZERO = " AND ".join(f"{c} = 0" for c in _COLUMNS)


def _truncated(source: str, table: str) -> list[str]:
    """A TRUNCATE of `table` (Django's flush between tests) clears its half of the rollup; rows then empty go."""
    name = f"loyalty_spend_{source}_truncated"
    return [
        f"""
    CREATE OR REPLACE FUNCTION {name}() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        UPDATE loyalty_segment_spend SET {", ".join(f"{source}_{d} = 0" for d in SPEND_WINDOWS)};
        DELETE FROM loyalty_segment_spend WHERE {_ALL_ZERO};
        RETURN NULL;
    END $$
    """,
        f"CREATE TRIGGER {name} AFTER TRUNCATE ON {table} FOR EACH STATEMENT EXECUTE FUNCTION {name}()",
    ]


_LAST_ORDER_DELETE = """
    CREATE OR REPLACE FUNCTION loyalty_orderline_last_delete() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        INSERT INTO loyalty_segment_last_purchase AS l (contact_id, order_at)
        SELECT t.cid, (SELECT max(o.ordered_at) FROM crm_sourceorderline o WHERE o.contact_id = t.cid)
        FROM ({touched}) t(cid) WHERE t.cid IS NOT NULL
        ON CONFLICT (contact_id) DO UPDATE SET order_at = EXCLUDED.order_at;
        RETURN NULL;
    END $$
"""

FORWARD = [
    # The tier on the contact's row.
    "ALTER TABLE crm_contact ADD COLUMN IF NOT EXISTS loyalty_tier_id bigint",
    "LOCK TABLE loyalty_card IN SHARE ROW EXCLUSIVE MODE",
    "UPDATE crm_contact c SET loyalty_tier_id = k.tier_id FROM loyalty_card k "
    "WHERE k.contact_id = c.id AND c.loyalty_tier_id IS DISTINCT FROM k.tier_id",
    """
    CREATE OR REPLACE FUNCTION loyalty_card_tier_to_contact() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        IF TG_OP IN ('UPDATE', 'DELETE') THEN
            UPDATE crm_contact SET loyalty_tier_id = NULL WHERE id = OLD.contact_id AND loyalty_tier_id IS NOT NULL;
        END IF;
        IF TG_OP IN ('INSERT', 'UPDATE') THEN
            UPDATE crm_contact SET loyalty_tier_id = NEW.tier_id
            WHERE id = NEW.contact_id AND loyalty_tier_id IS DISTINCT FROM NEW.tier_id;
        END IF;
        RETURN NULL;
    END $$
    """,
    "CREATE TRIGGER loyalty_card_tier_to_contact AFTER INSERT OR DELETE OR UPDATE OF tier_id, contact_id "
    "ON loyalty_card FOR EACH ROW EXECUTE FUNCTION loyalty_card_tier_to_contact()",
    """
    CREATE OR REPLACE FUNCTION loyalty_card_truncated_tier() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        UPDATE crm_contact SET loyalty_tier_id = NULL WHERE loyalty_tier_id IS NOT NULL;
        RETURN NULL;
    END $$
    """,
    "CREATE TRIGGER loyalty_card_truncated_tier AFTER TRUNCATE ON loyalty_card "
    "FOR EACH STATEMENT EXECUTE FUNCTION loyalty_card_truncated_tier()",
    # Spend per window.
    "CREATE TABLE IF NOT EXISTS loyalty_segment_spend (contact_id bigint PRIMARY KEY, "
    + ", ".join(f"{c} bigint NOT NULL DEFAULT 0" for c in _COLUMNS)
    + ")",
    "CREATE TABLE IF NOT EXISTS loyalty_segment_spend_state (id smallint PRIMARY KEY CHECK (id = 1), day date)",
    "INSERT INTO loyalty_segment_spend_state (id, day) VALUES (1, NULL) ON CONFLICT (id) DO NOTHING",
    f"""
    CREATE OR REPLACE FUNCTION loyalty_segment_spend_rebuild(d date DEFAULT (now() AT TIME ZONE 'Asia/Shanghai')::date)
    RETURNS date LANGUAGE plpgsql AS $$
    BEGIN
        LOCK TABLE loyalty_segment_spend IN EXCLUSIVE MODE;
        {_REBUILD_BODY}
        UPDATE loyalty_segment_spend_state SET day = d;
        RETURN d;
    END $$
    """,
    f"""
    CREATE OR REPLACE FUNCTION loyalty_segment_spend_advance() RETURNS date LANGUAGE plpgsql AS $$
    DECLARE
        d date;
        target date := (now() AT TIME ZONE 'Asia/Shanghai')::date;
    BEGIN
        LOCK TABLE loyalty_segment_spend IN EXCLUSIVE MODE;
        SELECT day INTO d FROM loyalty_segment_spend_state;
        IF d IS NULL OR d > target OR target - d > 31 THEN
            RETURN loyalty_segment_spend_rebuild();
        END IF;
        WHILE d < target LOOP
            {_leaving("till", "loyalty_purchase", "scanned_at", _TILL_ROWS)};
            {_leaving("order", "crm_sourceorderline", "ordered_at", _ORDER_ROWS)};
            d := d + 1;
        END LOOP;
        DELETE FROM loyalty_segment_spend WHERE {_ALL_ZERO};
        UPDATE loyalty_segment_spend_state SET day = d;
        RETURN d;
    END $$
    """,
    "LOCK TABLE loyalty_purchase, crm_sourceorderline IN SHARE ROW EXCLUSIVE MODE",
    "SELECT loyalty_segment_spend_rebuild()",
    _TILL_TRIGGER,
    "CREATE TRIGGER loyalty_spend_till AFTER INSERT OR DELETE OR UPDATE OF contact_id, scanned_at, amount_fen "
    "ON loyalty_purchase FOR EACH ROW EXECUTE FUNCTION loyalty_spend_till()",
    *_order_triggers(),
    *_truncated("till", "loyalty_purchase"),
    *_truncated("order", "crm_sourceorderline"),
    # A fix to 0004: deleting two order lines of one contact in one statement named the contact twice in one
    # upsert ("ON CONFLICT DO UPDATE command cannot affect row a second time").
    _LAST_ORDER_DELETE.format(touched="SELECT DISTINCT contact_id FROM old_rows"),
]

# After a load with triggers off (the segment bench's generator).
BACKFILL_TIER = FORWARD[2]

_OPS = ("insert", "update", "delete")
BACKWARD = [
    "DROP TRIGGER IF EXISTS loyalty_spend_till ON loyalty_purchase",
    "DROP FUNCTION IF EXISTS loyalty_spend_till()",
    *[
        f"DROP TRIGGER IF EXISTS loyalty_spend_order_{op} ON crm_sourceorderline"
        for op in ("insert", "update", "delete")
    ],
    *[f"DROP FUNCTION IF EXISTS loyalty_spend_order_{op}()" for op in ("insert", "update", "delete")],
    "DROP TRIGGER IF EXISTS loyalty_spend_till_truncated ON loyalty_purchase",
    "DROP TRIGGER IF EXISTS loyalty_spend_order_truncated ON crm_sourceorderline",
    "DROP FUNCTION IF EXISTS loyalty_spend_till_truncated()",
    "DROP FUNCTION IF EXISTS loyalty_spend_order_truncated()",
    "DROP FUNCTION IF EXISTS loyalty_segment_spend_advance()",
    "DROP FUNCTION IF EXISTS loyalty_segment_spend_rebuild(date)",
    "DROP TABLE IF EXISTS loyalty_segment_spend",
    "DROP TABLE IF EXISTS loyalty_segment_spend_state",
    "DROP TRIGGER IF EXISTS loyalty_card_tier_to_contact ON loyalty_card",
    "DROP TRIGGER IF EXISTS loyalty_card_truncated_tier ON loyalty_card",
    "DROP FUNCTION IF EXISTS loyalty_card_tier_to_contact()",
    "DROP FUNCTION IF EXISTS loyalty_card_truncated_tier()",
    "ALTER TABLE crm_contact DROP COLUMN IF EXISTS loyalty_tier_id",
    _LAST_ORDER_DELETE.format(touched="SELECT contact_id FROM old_rows"),
]


def _run(statements):
    def run(apps, schema_editor):
        if schema_editor.connection.vendor == "postgresql":
            for sql in statements:
                schema_editor.execute(sql)

    return run


class Migration(migrations.Migration):
    dependencies = [("loyalty", "0010_segment_rollups"), ("crm", "0013_segment_rollups")]
    operations = [migrations.RunPython(_run(FORWARD), _run(BACKWARD), elidable=False)]
