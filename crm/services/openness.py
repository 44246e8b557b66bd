"""Ecosystem openness: each data source may give us data only at its grain, enforced on ingestion.

- open (WeCom, mini program, official account): individual behavioural events, kept only with behaviour consent;
- semi-open (Tmall, JD): phone number and order lines, matched to contacts by keyed phone hash;
- closed (Douyin, Baidu, Weibo, Little Red Book): daily aggregates, no individual identifiers.

A batch (API or CSV) is validated whole before anything is written: a field the source may not give is refused
with a 400 naming it (`records[3].phone`, or the CSV column), and nothing of the batch is half-written."""

from __future__ import annotations

import csv
import hmac
import io
import logging
import time
from collections.abc import Callable, Iterable, Iterator
from datetime import date, datetime
from functools import lru_cache

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone
from django.utils.dateparse import parse_date, parse_datetime

from crm.errors import ApplicationError
from crm.models.consent import ConsentRecord, DataSource, SourceAggregate, SourceEvent, SourceOrderLine
from crm.models.contacts import Contact
from crm.services.consent import contacts_consenting
from crm.services.contacts import phone_hash, phone_normalise
from crm.services.erasure import erased_phone_hashes, erasure_blocks_phones, live_tombstone_phone_hashes_sql

Openness = DataSource.Openness
logger = logging.getLogger(__name__)

DEFAULT_SOURCES = [
    ("wecom", "WeCom", Openness.OPEN),
    ("miniprogram", "Mini program", Openness.OPEN),
    ("official_account", "Official account", Openness.OPEN),
    ("tmall", "Tmall", Openness.SEMI_OPEN),
    ("jd", "JD", Openness.SEMI_OPEN),
    ("douyin", "Douyin", Openness.CLOSED),
    ("baidu", "Baidu", Openness.CLOSED),
    ("weibo", "Weibo", Openness.CLOSED),
    ("xiaohongshu", "Little Red Book", Openness.CLOSED),
]

# field -> required?
ALLOWED_FIELDS: dict[str, dict[str, bool]] = {
    Openness.OPEN: {"event_id": True, "external_userid": True, "kind": True, "occurred_at": True, "properties": False},
    Openness.SEMI_OPEN: {"order_id": True, "line_no": False, "phone": True, "sku": True, "quantity": False,
                         "amount_fen": True, "ordered_at": True},
    Openness.CLOSED: {"day": True, "metric": True, "bucket": False, "value": True},
}
BATCH_MAX = 10_000
WRITE_BATCH = 5_000


def datasources_ensure_defaults() -> int:
    created = 0
    for code, name, openness in DEFAULT_SOURCES:
        created += DataSource.objects.get_or_create(code=code, defaults={"name": name, "openness": openness})[1]
    return created


def _source(code: str) -> DataSource:
    source = DataSource.objects.filter(code=code).first()
    if source is None:
        raise ApplicationError(f"Unknown data source {code!r}.", field="source", status_code=404, code="not_found")
    return source


def _refuse(field: str, message: str, code: str = "invalid") -> ApplicationError:
    return ApplicationError(message, field=field, code=code)


def _as_datetime(value, field: str) -> datetime:
    parsed = value if isinstance(value, datetime) else parse_datetime(str(value or ""))
    if parsed is None:
        raise _refuse(field, "Not a date-time (ISO 8601).")
    return parsed if timezone.is_aware(parsed) else timezone.make_aware(parsed)


def _as_date(value, field: str) -> date:
    parsed = value if isinstance(value, date) else parse_date(str(value or ""))
    if parsed is None:
        raise _refuse(field, "Not a date (YYYY-MM-DD).")
    return parsed


def _as_int(value, field: str, minimum: int = 0) -> int:
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise _refuse(field, "Not an integer.")
    if number < minimum:
        raise _refuse(field, f"Must be at least {minimum}.")
    return number


def _check_fields(openness: str, record: dict, prefix: str) -> None:
    allowed = ALLOWED_FIELDS[openness]
    for name in record:
        if name not in allowed:
            raise _refuse(
                f"{prefix}.{name}",
                f"A {openness.replace('_', '-')} source may not give {name!r}; "
                f"allowed: {', '.join(sorted(allowed))}.",
                code="refused_by_openness",
            )
    for name, required in allowed.items():
        if required and record.get(name) in (None, ""):
            raise _refuse(f"{prefix}.{name}", f"{name} is required.", code="required")


def _clean(openness: str, record: dict, prefix: str, hash_phone: Callable[[str], str] = phone_hash) -> dict:
    _check_fields(openness, record, prefix)
    if openness == Openness.OPEN:
        props = record.get("properties") or {}
        if not isinstance(props, dict):
            raise _refuse(f"{prefix}.properties", "Must be an object.")
        return {"event_id": str(record["event_id"])[:64], "external_userid": str(record["external_userid"]),
                "kind": str(record["kind"])[:64], "occurred_at": _as_datetime(record["occurred_at"],
                                                                              f"{prefix}.occurred_at"),
                "properties": props}
    if openness == Openness.SEMI_OPEN:
        try:
            hashed = hash_phone(str(record["phone"]))
        except ApplicationError:
            raise _refuse(f"{prefix}.phone", "Not a phone number.")
        return {"order_id": str(record["order_id"])[:64], "line_no": _as_int(record.get("line_no") or 1,
                                                                             f"{prefix}.line_no", 1),
                "phone_hash": hashed, "sku": str(record["sku"])[:64],
                "quantity": _as_int(record.get("quantity") or 1, f"{prefix}.quantity", 1),
                "amount_fen": _as_int(record["amount_fen"], f"{prefix}.amount_fen"),
                "ordered_at": _as_datetime(record["ordered_at"], f"{prefix}.ordered_at")}
    return {"day": _as_date(record["day"], f"{prefix}.day"), "metric": str(record["metric"])[:32],
            "bucket": str(record.get("bucket") or "")[:64], "value": _as_int(record["value"], f"{prefix}.value")}


def _write(source: DataSource, rows: list[dict]) -> dict:
    counts = {"stored": 0, "dropped_without_consent": 0, "unmatched": 0}
    if source.openness == Openness.OPEN:
        eids = {r["external_userid"] for r in rows}
        known = dict(Contact.objects.filter(external_userid__in=eids).values_list("external_userid", "pk"))
        consenting = set(
            contacts_consenting(ConsentRecord.Purpose.BEHAVIOUR, Contact.objects.filter(pk__in=known.values()))
            .values_list("pk", flat=True)
        )
        events = []
        for r in rows:
            contact_id = known.get(r["external_userid"])
            if contact_id is None or contact_id not in consenting:
                counts["dropped_without_consent"] += 1  # no consent, no individual behaviour kept
                continue
            events.append(SourceEvent(source=source, contact_id=contact_id, event_id=r["event_id"], kind=r["kind"],
                                      properties=r["properties"], occurred_at=r["occurred_at"]))
        SourceEvent.objects.bulk_create(events, ignore_conflicts=True, batch_size=WRITE_BATCH)
        counts["stored"] = len(events)
    elif source.openness == Openness.SEMI_OPEN:
        hashes = {r["phone_hash"] for r in rows}
        # An erased person's number: the line is kept for the figures, but not linked, nor its phone hash kept.
        erased = erased_phone_hashes(hashes)
        for r in rows:
            if r["phone_hash"] in erased:
                r["phone_hash"] = ""
        hashes -= erased | {""}
        matched = dict(Contact.objects.filter(phone_hash__in=hashes).values_list("phone_hash", "pk"))
        lines = [SourceOrderLine(source=source, contact_id=matched.get(r["phone_hash"]), **r) for r in rows]
        counts["unmatched"] = sum(1 for line in lines if line.contact_id is None)
        SourceOrderLine.objects.bulk_create(lines, ignore_conflicts=True, batch_size=WRITE_BATCH)
        counts["stored"] = len(lines)
    else:
        aggregates = [SourceAggregate(source=source, **r) for r in rows]
        SourceAggregate.objects.bulk_create(
            aggregates, update_conflicts=True, unique_fields=["source", "day", "metric", "bucket"],
            update_fields=["value"], batch_size=WRITE_BATCH,
        )
        counts["stored"] = len(aggregates)
    return counts


def source_ingest(*, source_code: str, records: list[dict]) -> dict:
    """Validate a whole batch against the source's openness, then write it in one transaction."""
    source = _source(source_code)
    if not isinstance(records, list) or not records:
        raise _refuse("records", "Give a non-empty list of records.")
    if len(records) > BATCH_MAX:
        raise _refuse("records", f"At most {BATCH_MAX} records per batch.")
    rows = []
    for i, record in enumerate(records):
        if not isinstance(record, dict):
            raise _refuse(f"records[{i}]", "Each record is an object.")
        rows.append(_clean(source.openness, record, f"records[{i}]"))
    with transaction.atomic():
        return _write(source, rows)


def _phone_hasher() -> Callable[[str], str]:
    """`contacts.phone_hash` for a big file: the same keyed HMAC-SHA256 of the normalised number, one-shot, with
    plain 11-digit numbers (the common case) skipping the regex, and repeat buyers served from a bounded cache."""
    key = settings.PHONE_HASH_KEY.encode()

    @lru_cache(maxsize=1 << 16)
    def hashed(raw: str) -> str:
        digits = raw if len(raw) == 11 and raw.isascii() and raw.isdigit() else phone_normalise(raw)
        return hmac.digest(key, digits.encode(), "sha256").hex()

    return hashed


def _csv_records(header: list[str], reader) -> Iterator[tuple[dict, str]]:
    """(record without empty cells, "line N") per data row, streamed; N is the file's line where the row ends."""
    width = len(header)
    for row in reader:
        if not row:
            continue  # a blank line
        prefix = f"line {reader.line_num}"
        if len(row) > width:
            raise _refuse(prefix, f"{len(row)} values for {width} columns.")
        yield {k: v for k, v in zip(header, row, strict=False) if v}, prefix


def _import_batched(source: DataSource, header: list[str], reader) -> dict:
    totals = {"rows": 0, "stored": 0, "dropped_without_consent": 0, "unmatched": 0}
    hash_phone = _phone_hasher()
    batch: list[dict] = []
    for record, prefix in _csv_records(header, reader):
        batch.append(_clean(source.openness, record, prefix, hash_phone))
        if len(batch) >= WRITE_BATCH:
            for k, v in _write(source, batch).items():
                totals[k] += v
            totals["rows"] += len(batch)
            batch = []
    if batch:
        for k, v in _write(source, batch).items():
            totals[k] += v
        totals["rows"] += len(batch)
    return totals


_STAGE_COLUMNS = ("order_id", "line_no", "phone_hash", "sku", "quantity", "amount_fen", "ordered_at")


def _order_stage_rows(header: list[str], reader, hash_phone: Callable[[str], str]) -> Iterator[tuple]:
    """The order file's rows in _STAGE_COLUMNS order, checked exactly as _clean checks a semi-open record (same
    fields, same messages), but by column position: no dict per row, at a million rows a file."""
    allowed = ALLOWED_FIELDS[Openness.SEMI_OPEN]
    width = len(header)
    at = {name: header.index(name) for name in allowed if name in header}
    required = [(name, at.get(name)) for name, needed in allowed.items() if needed]
    optional = {name: at.get(name) for name in ("line_no", "quantity")}
    for row in reader:
        if not row:
            continue  # a blank line
        if len(row) != width:
            if len(row) > width:
                raise _refuse(f"line {reader.line_num}", f"{len(row)} values for {width} columns.")
            row = row + [""] * (width - len(row))
        for name, i in required:
            if i is None or not row[i]:
                raise _refuse(f"line {reader.line_num}.{name}", f"{name} is required.", code="required")
        try:
            hashed = hash_phone(row[at["phone"]])
        except ApplicationError:
            raise _refuse(f"line {reader.line_num}.phone", "Not a phone number.")
        numbers = []
        for name in ("line_no", "quantity"):
            i = optional[name]
            numbers.append(_as_int(row[i] if i is not None and row[i] else 1, f"line {reader.line_num}.{name}", 1))
        yield (
            row[at["order_id"]][:64], numbers[0], hashed, row[at["sku"]][:64], numbers[1],
            _as_int(row[at["amount_fen"]], f"line {reader.line_num}.amount_fen"),
            _as_datetime(row[at["ordered_at"]], f"line {reader.line_num}.ordered_at"),
        )  # fmt: skip


def _import_orders_copy(source: DataSource, header: list[str], reader) -> dict:
    """Order lines on PostgreSQL: each row validated as it streams into a temporary table by COPY, then one
    INSERT ... SELECT matches phone hashes to contacts and skips lines already stored. A bad row raises inside
    the COPY, so nothing reaches the real table; the caller's transaction drops the staging table either way."""
    hash_phone = _phone_hasher()
    stage = "crm_import_order_stage"
    rows = 0
    started = time.monotonic()
    with connection.cursor() as cursor:
        cursor.execute(
            f"CREATE TEMPORARY TABLE {stage} (order_id text, line_no integer, phone_hash text, sku text, "
            "quantity integer, amount_fen bigint, ordered_at timestamptz) ON COMMIT DROP"
        )
        with cursor.cursor.copy(f"COPY {stage} ({', '.join(_STAGE_COLUMNS)}) FROM STDIN") as copy:
            for line in _order_stage_rows(header, reader, hash_phone):
                copy.write_row(line)
                rows += 1
        staged = time.monotonic()
        if erasure_blocks_phones():  # erased people's numbers: lines kept unlinked, their phone hash dropped
            blocked, params = live_tombstone_phone_hashes_sql()
            cursor.execute(f"UPDATE {stage} SET phone_hash = '' WHERE phone_hash IN ({blocked})", params)  # noqa: S608
        cursor.execute(f"ANALYZE {stage}")  # temporary tables are never auto-analysed: give the join real sizes
        columns = ", ".join(_STAGE_COLUMNS)
        # Only identifiers from this module and the models are formatted in; the one value is a parameter.
        cursor.execute(
            f"""WITH matched AS (
                    SELECT phone_hash, min(id) AS contact_id FROM {Contact._meta.db_table}
                    WHERE phone_hash IN (SELECT phone_hash FROM {stage} WHERE phone_hash <> '') GROUP BY phone_hash
                ), stored AS (
                    INSERT INTO {SourceOrderLine._meta.db_table} (source_id, contact_id, {columns})
                    SELECT %s, m.contact_id, {", ".join(f"s.{c}" for c in _STAGE_COLUMNS)}
                    FROM {stage} s LEFT JOIN matched m USING (phone_hash)
                    ON CONFLICT DO NOTHING
                )
                SELECT count(*) FROM {stage} s
                WHERE NOT EXISTS (SELECT 1 FROM matched m WHERE m.phone_hash = s.phone_hash)""",  # noqa: S608
            [source.pk],
        )
        unmatched = cursor.fetchone()[0]
        cursor.execute(f"DROP TABLE {stage}")
    logger.info("order import", extra={"source": source.code, "rows": rows, "unmatched": unmatched,
                                       "staged_s": round(staged - started, 2),
                                       "stored_s": round(time.monotonic() - staged, 2)})
    # As with bulk_create(ignore_conflicts=True), "stored" counts accepted rows, lines already held included.
    return {"rows": rows, "stored": rows, "dropped_without_consent": 0, "unmatched": unmatched}


def source_import_csv(*, source_code: str, text: Iterable[str] | str) -> dict:
    """CSV import: the header is checked first (a refused column is named), then every row (its line named);
    the whole file is written in one transaction, or nothing is. The file is streamed, never held whole:
    order lines on PostgreSQL go through COPY (see _import_orders_copy), the rest in WRITE_BATCH batches."""
    source = _source(source_code)
    reader = csv.reader(io.StringIO(text) if isinstance(text, str) else text)
    header = next(reader, None) or []
    allowed = ALLOWED_FIELDS[source.openness]
    for column in header:
        if column not in allowed:
            raise _refuse(column, f"A {source.openness.replace('_', '-')} source may not give the column "
                                  f"{column!r}; allowed: {', '.join(sorted(allowed))}.", code="refused_by_openness")
    if not header:
        raise _refuse("file", "The CSV has no header.")
    with transaction.atomic():
        if source.openness == Openness.SEMI_OPEN and connection.vendor == "postgresql":
            return _import_orders_copy(source, header, reader)
        return _import_batched(source, header, reader)
