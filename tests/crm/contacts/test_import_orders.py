"""CSV import of semi-open order lines at volume: streamed, validated per row, all or nothing.

On PostgreSQL (CI) these go through the COPY staging path, on SQLite through the batched one: same contract."""

from __future__ import annotations

import pytest

from crm.errors import ApplicationError
from crm.models import Contact
from crm.models.consent import SourceOrderLine
from crm.services.contacts import contact_set_phone, phone_hash
from crm.services.openness import WRITE_BATCH, _phone_hasher, datasources_ensure_defaults, source_import_csv

pytestmark = pytest.mark.django_db

HEADER = "order_id,line_no,phone,sku,quantity,amount_fen,ordered_at\n"


@pytest.fixture(autouse=True)
def sources():
    datasources_ensure_defaults()


def _contact(eid: str, phone: str) -> Contact:
    contact = Contact.objects.create(external_userid=eid)
    contact_set_phone(contact, phone)
    return contact


def _lines(n: int, phone: str = "13800138000", start: int = 0):
    for i in range(start, start + n):
        yield f"T{i},1,{phone},SKU-{i % 7},1,{100 + i},2026-11-11T00:{i % 60:02d}:00+08:00\n"


def test_bad_row_at_the_end_of_a_big_file_leaves_nothing_written():
    _contact("wmA", "13800138000")
    rows = 2 * WRITE_BATCH + 10  # several batches would have been written before the bad row
    text = iter([HEADER, *_lines(rows), "T-last,1,13800138000,SKU,1,lots,2026-11-11T00:00:00+08:00\n"])
    with pytest.raises(ApplicationError) as err:
        source_import_csv(source_code="tmall", text=text)
    assert err.value.field == f"line {rows + 2}.amount_fen"
    assert err.value.status_code == 400
    assert SourceOrderLine.objects.count() == 0
    # The connection is usable afterwards and a good file goes through.
    assert source_import_csv(source_code="tmall", text=HEADER + "".join(_lines(3)))["stored"] == 3


def test_matches_phones_in_any_format_counts_unmatched_and_is_idempotent():
    mei, li = _contact("wmMEI", "13800138000"), _contact("wmLI", "13900139000")
    text = (
        HEADER
        + "A1,1,+86 138-0013-8000,S1,2,12900,2026-11-11T00:10:00+08:00\n"
        + "A1,2,13800138000,S2,,500,2026-11-11T00:10:00+08:00\n"  # empty quantity: default 1
        + "\n"  # a blank line is skipped, line numbers stay the file's
        + "B1,,008613900139000,S1,1,900,2026-11-11T01:00:00Z\n"
        + "C1,1,15800000000,S3,1,100,2026-11-11T02:00:00\n"  # naive: Shanghai time (TIME_ZONE)
        + "A1,1,13800138000,S1,2,12900,2026-11-11T00:10:00+08:00\n"  # repeated line in the file
    )
    result = source_import_csv(source_code="jd", text=text)
    assert result == {"rows": 5, "stored": 5, "dropped_without_consent": 0, "unmatched": 1}
    stored = {(o.order_id, o.line_no): o for o in SourceOrderLine.objects.filter(source__code="jd")}
    assert set(stored) == {("A1", 1), ("A1", 2), ("B1", 1), ("C1", 1)}
    assert stored["A1", 1].contact == mei and stored["A1", 1].quantity == 2 and stored["A1", 1].amount_fen == 12900
    assert stored["A1", 2].quantity == 1 and stored["B1", 1].contact == li and stored["C1", 1].contact is None
    assert stored["C1", 1].phone_hash == phone_hash("15800000000")
    assert stored["A1", 1].ordered_at.isoformat() == "2026-11-10T16:10:00+00:00"
    assert stored["C1", 1].ordered_at.isoformat() == "2026-11-10T18:00:00+00:00"

    again = source_import_csv(source_code="jd", text=text)  # the same file twice: nothing duplicated
    assert again["rows"] == 5 and SourceOrderLine.objects.filter(source__code="jd").count() == 4


@pytest.mark.parametrize(
    ("row", "field"),
    [
        ("X1,1,12,S1,1,100,2026-11-11T00:00:00Z", "line 3.phone"),
        ("X1,0,13800138000,S1,1,100,2026-11-11T00:00:00Z", "line 3.line_no"),
        ("X1,1,13800138000,S1,1,100,yesterday", "line 3.ordered_at"),
        ("X1,1,13800138000,,1,100,2026-11-11T00:00:00Z", "line 3.sku"),
        ("X1,1,13800138000,S1,1,100,2026-11-11T00:00:00Z,extra", "line 3"),
    ],
)
def test_a_bad_row_is_named_by_line_and_field(row, field):
    text = HEADER + next(_lines(1)) + row + "\n"
    with pytest.raises(ApplicationError) as err:
        source_import_csv(source_code="tmall", text=text)
    assert err.value.field == field and err.value.status_code == 400
    assert not SourceOrderLine.objects.exists()


def test_header_is_checked_before_any_row():
    text = "order_id,phone,sku,amount_fen,ordered_at,buyer_name\n" + "bad,row\n" * 3
    with pytest.raises(ApplicationError) as err:
        source_import_csv(source_code="tmall", text=text)
    assert err.value.field == "buyer_name" and err.value.code == "refused_by_openness"
    with pytest.raises(ApplicationError) as err:
        source_import_csv(source_code="tmall", text="")
    assert err.value.field == "file"


@pytest.mark.parametrize("raw", ["13800138000", "+86 138 0013 8000", "0086-138-0013-8000", "8613800138000", "12345"])
def test_bulk_phone_hash_is_the_contacts_phone_hash(raw):
    assert _phone_hasher()(raw) == phone_hash(raw)


def test_bulk_phone_hash_refuses_what_phone_hash_refuses():
    with pytest.raises(ApplicationError):
        _phone_hasher()("12")
    with pytest.raises(ApplicationError):
        phone_hash("12")
