"""Tiers API and console: the rules through the service (a 400 naming the field, nothing written), the events."""

from __future__ import annotations

import pytest

from loyalty.models import TierChange, TierPolicy
from loyalty.services import points_adjust

pytestmark = pytest.mark.django_db


def test_rules_read_and_write(admin_client_api, tiers):
    body = admin_client_api.get("/api/loyalty/tier-rules").json()
    assert (body["basis"], body["window_days"], body["grace_days"]) == ("points", 365, 30)
    assert [(t["name"], t["min_spend_fen"]) for t in body["tiers"]][:2] == [("Member", 0), ("Silver", 100_000)]
    response = admin_client_api.put(
        "/api/loyalty/tier-rules", {"basis": "spend", "window_days": 180, "grace_days": 14}, format="json"
    )
    assert response.status_code == 200, response.content
    assert TierPolicy.objects.values_list("basis", "window_days", "grace_days").get() == ("spend", 180, 14)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"basis": "visits", "window_days": 365, "grace_days": 30}, "basis"),
        ({"basis": "points", "window_days": 99_999, "grace_days": 30}, "window_days"),
        ({"basis": "points", "window_days": 365, "grace_days": -1}, "grace_days"),
        ({"basis": "points", "window_days": "a year", "grace_days": 30}, "window_days"),
        ({"basis": "points", "grace_days": 30}, "window_days"),
    ],
)
def test_bad_rules_are_a_400_naming_the_field(admin_client_api, tiers, body, field):
    response = admin_client_api.put("/api/loyalty/tier-rules", body, format="json")
    assert response.status_code == 400
    assert field in response.content.decode()
    assert TierPolicy.objects.filter(basis="visits").count() == 0
    assert TierPolicy.objects.get_or_create(pk=1)[0].window_days == 365  # nothing written


def test_rules_need_their_permissions(staff_client, plain_client, tiers):
    assert plain_client.get("/api/loyalty/tier-rules").status_code == 403
    assert staff_client.put("/api/loyalty/tier-rules", {}, format="json").status_code == 403


def test_tier_changes_list_and_manual_move(admin_client_api, card, tiers):
    points_adjust(card_id=card.pk, delta=1000, reason="welcome", idempotency_key="w")
    response = admin_client_api.post(f"/api/loyalty/cards/{card.pk}/tier", {"tier": tiers["Gold"].pk}, format="json")
    assert response.status_code == 201 and response.json()["reason"] == "manual"
    again = admin_client_api.post(f"/api/loyalty/cards/{card.pk}/tier", {"tier": tiers["Gold"].pk}, format="json")
    assert again.status_code == 200
    assert (
        admin_client_api.post(f"/api/loyalty/cards/{card.pk}/tier", {"tier": 999_999}, format="json").status_code == 404
    )
    rows = admin_client_api.get("/api/loyalty/tier-changes", {"card": card.pk}).json()["results"]
    assert [(r["from_tier"], r["to_tier"], r["reason"]) for r in rows] == [
        ("Silver", "Gold", "manual"),
        ("Member", "Silver", "upgrade"),
    ]
    assert admin_client_api.get("/api/loyalty/tier-changes", {"reason": "x"}).status_code == 400
    assert TierChange.objects.count() == 2


def test_openapi_lists_the_tier_endpoints(admin_client):
    schema = admin_client.get("/api/schema/", {"format": "json"}).json()
    assert {"/api/loyalty/tier-rules", "/api/loyalty/tier-changes", "/api/loyalty/cards/{card_id}/tier"} <= set(
        schema["paths"]
    )


def test_console_rules_form_refuses_and_saves(admin_client, tiers):
    url = "/admin/loyalty/tierpolicy/"
    change_url = admin_client.get(url).url
    response = admin_client.post(change_url, {"basis": "points", "window_days": 99_999, "grace_days": 3})
    assert response.status_code == 200 and "3660" in response.content.decode()
    assert TierPolicy.objects.get().window_days == 365
    response = admin_client.post(change_url, {"basis": "points", "window_days": 90, "grace_days": 3})
    assert response.status_code == 302
    assert TierPolicy.objects.values_list("window_days", "grace_days").get() == (90, 3)
    assert admin_client.get("/admin/loyalty/tierchange/").status_code == 200
    assert admin_client.get("/admin/loyalty/tier/").status_code == 200
