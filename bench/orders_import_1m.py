"""Benchmark `orders_import_1m`: a 1M-row Tmall order CSV through the product's own `source_import_csv`.

A throwaway PostgreSQL database gets the real schema and a contact base with phone hashes (BENCH_ORDER_ROWS / 10
contacts). A CSV of BENCH_ORDER_ROWS order lines (default 1,000,000; only the columns a semi-open source may give)
is written to a temp file: orders of 1-3 lines, 60% of orders placed by phones of the contact base (5% of those
written as "+86 139 ..."), the rest by unknown phones. The import streams the file, validates every row, and
writes all of it in one transaction; rows/s is measured end to end, commit included, then checked: every row
stored, every known phone matched, the rest reported unmatched.

Baseline, same run, same file: PostgreSQL's own `COPY ... FROM STDIN (FORMAT csv)` of the file into an unlogged
table of text columns: the fastest the server can take these rows at all, with no validation, no hashing, no
index, no constraint. ratio = import / COPY says how much of the raw load speed the product keeps; a parse-only
csv.DictReader pass is reported in the note. Target: >= 20,000 rows/s. Peak RSS of the import (high-water mark
reset just before it) shows the file is streamed, not held. Skipped (met false) unless the runner is on PostgreSQL.
"""

from __future__ import annotations

import csv
import os
import random
import secrets
import shutil
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.segment_count_1m import _admin_connection, _default_db  # noqa: E402

ROWS = int(os.environ.get("BENCH_ORDER_ROWS", 1_000_000))
CONTACTS = max(1000, ROWS // 10)
TARGET_ROWS_PER_S = 20_000.0
TARGET_RSS_GROWTH_MB = 100.0
HEADER = ["order_id", "line_no", "phone", "sku", "quantity", "amount_fen", "ordered_at"]


def _contact_phone(i: int) -> str:
    return f"139{i:08d}"


def _write_csv(path: Path) -> int:
    """The order file; -> how many rows carry a phone of the contact base."""
    rng = random.Random(7)
    start = datetime(2026, 11, 11, tzinfo=UTC)
    matched = written = order = 0
    with path.open("w", newline="", encoding="utf-8") as f:
        out = csv.writer(f)
        out.writerow(HEADER)
        while written < ROWS:
            order += 1
            if rng.random() < 0.6:
                phone, known = _contact_phone(rng.randrange(CONTACTS)), True
                if rng.random() < 0.05:
                    phone = f"+86 {phone[:3]} {phone[3:7]} {phone[7:]}"
            else:
                phone, known = f"158{rng.randrange(10**8):08d}", False
            at = (start + timedelta(seconds=rng.randrange(86400))).isoformat()
            for line_no in range(1, min(rng.randint(1, 3), ROWS - written) + 1):
                out.writerow([f"TM{order:09d}", line_no, phone, f"SKU-{rng.randrange(500):04d}", rng.randint(1, 3),
                              rng.randrange(990, 99_900), at])
                written += 1
                matched += known
    return matched


def _load_contacts(connection) -> None:
    from crm.models import Contact
    from crm.services.contacts import phone_hash

    columns = ("external_userid", "unionid", "name", "type", "gender", "avatar", "corp_name", "phone_encrypted",
               "phone_hash", "created_at", "updated_at")
    now = datetime.now(UTC)
    with connection.cursor() as cursor:
        with cursor.cursor.copy(f"COPY {Contact._meta.db_table} ({', '.join(columns)}) FROM STDIN") as copy:
            for i in range(CONTACTS):
                copy.write_row((f"wmbench{i}", "", "", 1, 0, "", "", "", phone_hash(_contact_phone(i)), now, now))
        cursor.execute(f"ANALYZE {Contact._meta.db_table}")


def _copy_baseline(connection, path: Path) -> float:
    with connection.cursor() as cursor:
        cursor.execute(f"CREATE UNLOGGED TABLE bench_copy ({', '.join(f'{c} text' for c in HEADER)})")
        started = time.perf_counter()
        with path.open("rb") as f, cursor.cursor.copy("COPY bench_copy FROM STDIN (FORMAT csv, HEADER true)") as copy:
            while chunk := f.read(1 << 20):
                copy.write(chunk)
        elapsed = time.perf_counter() - started
        cursor.execute("SELECT count(*) FROM bench_copy")
        assert cursor.fetchone()[0] == ROWS
        cursor.execute("DROP TABLE bench_copy")
    return ROWS / elapsed


def _parse_only(path: Path) -> float:
    started = time.perf_counter()
    with path.open(newline="", encoding="utf-8") as f:
        n = sum(1 for _ in csv.DictReader(f))
    assert n == ROWS
    return ROWS / (time.perf_counter() - started)


def _rss_mb(field: str) -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _reset_peak_rss() -> bool:
    try:
        Path("/proc/self/clear_refs").write_text("5")  # resets VmHWM (Linux >= 4.0)
        return True
    except OSError:
        return False


def _skip(reason: str) -> list[dict]:
    return [{"name": "orders_import_1m.rows_per_s", "value": None, "unit": "rows/s", "baseline": None,
             "ratio": None, "target": f">= {TARGET_ROWS_PER_S:,.0f} rows/s", "met": False,
             "note": f"skipped: {reason}"}]


def run() -> list[dict]:
    from django.conf import settings
    from django.core.management import call_command

    if "postgresql" not in settings.DATABASES["default"]["ENGINE"]:
        return _skip("needs PostgreSQL (set DATABASE_URL=postgres://...); the runner is on "
                     f"{settings.DATABASES['default']['ENGINE'].rsplit('.', 1)[-1]}")
    from crm.models.consent import SourceOrderLine
    from crm.services.openness import datasources_ensure_defaults, source_import_csv

    tmp = Path(tempfile.mkdtemp(prefix="crm-bench-orders-"))
    path = tmp / "tmall.csv"
    name = f"crm_bench_orders_{os.getpid()}_{secrets.token_hex(3)}"
    admin = _admin_connection(settings.DATABASES["default"])
    admin.execute(f'CREATE DATABASE "{name}"')
    try:
        expected_matched = _write_csv(path)
        file_mb = path.stat().st_size / 2**20
        with _default_db(name) as connection:
            call_command("migrate", verbosity=0, interactive=False)
            datasources_ensure_defaults()
            _load_contacts(connection)
            copy_rate = _copy_baseline(connection, path)
            parse_rate = _parse_only(path)

            rss_before = _rss_mb("VmRSS")
            exact_peak = _reset_peak_rss()
            started = time.perf_counter()
            with path.open(newline="", encoding="utf-8") as f:
                result = source_import_csv(source_code="tmall", text=f)
            elapsed = time.perf_counter() - started
            rss_peak = _rss_mb("VmHWM")

            stored = SourceOrderLine.objects.filter(source__code="tmall").count()
            matched = SourceOrderLine.objects.filter(source__code="tmall", contact__isnull=False).count()
    finally:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()
        shutil.rmtree(tmp, ignore_errors=True)

    rate = ROWS / elapsed
    correct = (stored == ROWS == result["rows"] and matched == expected_matched
               and result["unmatched"] == ROWS - expected_matched)
    growth = rss_peak - rss_before
    note = (f"{ROWS:,} rows ({file_mb:.0f} MB) in {elapsed:.1f} s; stored {stored:,}, matched {matched:,} "
            f"(expected {expected_matched:,}), unmatched reported {result['unmatched']:,}, {CONTACTS:,} contacts; "
            f"baseline = PostgreSQL COPY of the same file into an unlogged text table; csv.DictReader parse only "
            f"{parse_rate:,.0f} rows/s; {os.cpu_count()} CPUs")
    return [
        {
            "name": "orders_import_1m.rows_per_s", "value": round(rate), "unit": "rows/s",
            "baseline": round(copy_rate), "ratio": round(rate / copy_rate, 3),
            "target": f">= {TARGET_ROWS_PER_S:,.0f} rows/s, every row stored and matched",
            "met": rate >= TARGET_ROWS_PER_S and correct, "note": note,
        },
        {
            "name": "orders_import_1m.peak_rss", "value": round(rss_peak, 1), "unit": "MB",
            "baseline": round(rss_before, 1), "ratio": round(rss_peak / rss_before, 3),
            "target": f"streamed: peak RSS <= {TARGET_RSS_GROWTH_MB:.0f} MB over the RSS before the import",
            "met": growth <= TARGET_RSS_GROWTH_MB,
            "note": f"grew {growth:.1f} MB importing a {file_mb:.0f} MB file; baseline = RSS just before the import"
                    + ("" if exact_peak else "; peak is the process's lifetime high-water mark (clear_refs denied)"),
        },
    ]  # fmt: skip


if __name__ == "__main__":
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "crm.settings")
    import django

    django.setup()
    for row in run():
        print(row)
