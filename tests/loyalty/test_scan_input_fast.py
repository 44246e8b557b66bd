"""The scan view reads a plainly valid body directly (loyalty.api._scan_input_fast): it must give exactly
ScanInputSerializer's validated_data, and leave anything else to the serializer."""

import pytest

from loyalty.api import ScanInputSerializer, _scan_input_fast
from loyalty.services.scans import MAX_ITEMS

BASE = {"qr_token": "v1.890180530853.1.abc", "receipt_id": " R-1 ", "store": "store-sh-001", "amount_fen": 5000}


def _serializer(data):
    serializer = ScanInputSerializer(data=data)
    return serializer.validated_data if serializer.is_valid() else None


@pytest.mark.parametrize(
    "body",
    [
        BASE,
        dict(BASE, extra="ignored"),
        dict(BASE, items=[]),
        dict(BASE, items=[{"sku": " SKU-1 ", "amount_fen": 0}]),
        dict(BASE, items=[{"sku": "S", "name": "  ", "qty": 3, "amount_fen": 10, "other": 1}]),
        dict(BASE, items=[{"sku": "S", "name": "奶茶", "qty": 100_000, "amount_fen": 10**10}]),
    ],
)
def test_a_valid_body_reads_as_the_serializer_does(body):
    fast = _scan_input_fast(body)
    assert fast is not None
    assert fast == {k: (list(map(dict, v)) if k == "items" else v) for k, v in _serializer(body).items()}


@pytest.mark.parametrize(
    "change",
    [
        {"qr_token": None},
        {"receipt_id": "   "},
        {"receipt_id": "x" * 65},
        {"receipt_id": "R\x00"},
        {"receipt_id": "R\tS"},
        {"store": 5},
        {"amount_fen": "5000"},  # the serializer accepts it: it decides
        {"amount_fen": True},
        {"amount_fen": 0},
        {"amount_fen": 5000.0},
        {"items": None},
        {"items": "x"},
        {"items": [{"sku": "S", "amount_fen": 1}] * (MAX_ITEMS + 1)},
        {"items": [{"sku": "", "amount_fen": 1}]},
        {"items": [{"sku": "S", "amount_fen": -1}]},
        {"items": [{"sku": "S", "amount_fen": 1, "qty": 0}]},
        {"items": [{"sku": "S", "amount_fen": 1, "name": None}]},
        {"items": ["S"]},
    ],
)
def test_anything_else_goes_to_the_serializer(change):
    assert _scan_input_fast(dict(BASE, **change)) is None
