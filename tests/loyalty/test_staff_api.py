"""The staff API: cards list/detail with ledger, tiers, stores, rewards; documented in OpenAPI."""

from __future__ import annotations

import pytest

from loyalty.qr import qr_token_mint

pytestmark = pytest.mark.django_db


def _scan(client, card, store, receipt, amount):
    body = {
        "qr_token": qr_token_mint(card.number).token,
        "receipt_id": receipt,
        "store": store.code,
        "amount_fen": amount,
    }
    assert client.post("/api/loyalty/scans", body, format="json").status_code == 201


def test_card_list_and_search(staff_client, card, make_contact):
    from loyalty.services import card_get_or_create

    other = card_get_or_create(make_contact(name="Han Meimei").pk)
    listing = staff_client.get("/api/loyalty/cards").json()
    assert listing["count"] == 2
    found = staff_client.get("/api/loyalty/cards", {"search": "Meimei"}).json()["results"]
    assert [c["number"] for c in found] == [other.number]
    assert found[0]["tier"] == "Member" and found[0]["points_balance"] == 0
    bad = staff_client.get("/api/loyalty/cards", {"tier": "gold"})
    assert bad.status_code == 400 and bad.json()["error"]["field"] == "tier"


def test_card_detail_has_ledger_and_purchases(staff_client, cashier_client, card, store):
    _scan(cashier_client, card, store, "R-1", 12_345)
    _scan(cashier_client, card, store, "R-2", 100_000)
    body = staff_client.get(f"/api/loyalty/cards/{card.pk}").json()
    assert body["card"]["points_balance"] == 1123 == body["ledger_sum"]
    assert [e["delta"] for e in body["ledger"]] == [1000, 123]
    assert body["ledger"][0]["receipt_id"] == "R-2" and body["ledger"][0]["store"] == store.code
    assert body["card"]["tier"] == "Silver" and body["next_tier"]["name"] == "Gold"
    assert [p["receipt_id"] for p in body["purchases"]] == ["R-2", "R-1"]
    assert staff_client.get("/api/loyalty/cards/999999").status_code == 404


def test_staff_api_is_staff_only(plain_client, card):
    assert plain_client.get("/api/loyalty/cards").status_code == 403
    assert plain_client.get(f"/api/loyalty/cards/{card.pk}").status_code == 403


def test_tiers_stores_rewards(staff_client, cashier_client, tiers, store):
    assert [t["name"] for t in staff_client.get("/api/loyalty/tiers").json()] == [
        "Member",
        "Silver",
        "Gold",
        "Platinum",
    ]
    assert [s["code"] for s in cashier_client.get("/api/loyalty/stores").json()] == ["store-sh-001"]
    assert cashier_client.get("/api/loyalty/rewards").json() == []


def test_openapi_documents_the_loyalty_api(staff_client):
    schema = staff_client.get("/api/schema/", {"format": "json"}).json()
    for path in [
        "/api/loyalty/scans",
        "/api/loyalty/cards",
        "/api/loyalty/cards/{card_id}",
        "/api/loyalty/cards/{card_id}/adjust",
        "/api/loyalty/tiers",
        "/api/loyalty/stores",
        "/api/loyalty/redemptions",
        "/api/loyalty/rewards",
    ]:
        assert path in schema["paths"], path
    scan = schema["paths"]["/api/loyalty/scans"]["post"]
    assert "201" in scan["responses"] and "ScanInput" in str(scan["requestBody"])
