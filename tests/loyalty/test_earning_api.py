"""Earning API: rules CRUD validated by the service (400 naming the field), the preview, permissions, OpenAPI."""

from __future__ import annotations

import pytest

from loyalty.models import EarningRule

pytestmark = pytest.mark.django_db
RULES = "/api/loyalty/earning/rules"
PREVIEW = "/api/loyalty/earning/preview"


@pytest.mark.parametrize(
    ("body", "field", "code"),
    [
        ({"name": "x", "kind": "multiplier"}, "multiplier_pct", "required"),
        ({"name": "x", "kind": "multiplier", "multiplier_pct": 0}, "multiplier_pct", "out_of_range"),
        ({"name": "x", "kind": "base", "fen_per_point": 100, "sku": "A"}, "sku", "not_applicable"),
        ({"name": "x", "kind": "bonus", "event": "wedding", "bonus_points": 5}, "event", "invalid_choice"),
        ({"name": "x", "kind": "multiplier", "multiplier_pct": 200, "tier": 999999}, "tier", "not_found"),
        (
            {"name": "x", "kind": "multiplier", "multiplier_pct": 200, "starts_on": "2026-11-12",
             "ends_on": "2026-11-11"},
            "ends_on", "invalid_range",
        ),
        ({"name": "", "kind": "cap_day", "cap_points": 5}, "name", None),
        ({"name": "x", "kind": "nope"}, "kind", None),
    ],
)  # fmt: skip
def test_bad_rule_is_400_naming_the_field_and_writes_nothing(admin_client_api, body, field, code):
    response = admin_client_api.post(RULES, body, format="json")
    assert response.status_code == 400, response.json()
    text = str(response.json())
    assert field in text and (code is None or code in text)
    assert not EarningRule.objects.exists()


def test_rule_crud(admin_client_api, tiers):
    body = {"name": "Gold x1.5", "kind": "multiplier", "multiplier_pct": 150, "tier": tiers["Gold"].pk}
    created = admin_client_api.post(RULES, body, format="json")
    assert created.status_code == 201, created.json()
    rule_id = created.json()["id"]
    assert admin_client_api.get(RULES).json()[0]["multiplier_pct"] == 150
    updated = admin_client_api.put(f"{RULES}/{rule_id}", {**body, "multiplier_pct": 200}, format="json")
    assert updated.status_code == 200 and EarningRule.objects.get(pk=rule_id).multiplier_pct == 200
    assert admin_client_api.delete(f"{RULES}/{rule_id}").status_code == 204
    assert admin_client_api.get(f"{RULES}/{rule_id}").status_code == 404


def test_preview_answers_with_the_breakdown_and_writes_nothing(admin_client_api, store, card):
    EarningRule.objects.create(name="11.11", kind="multiplier", multiplier_pct=200)
    body = {"store": store.code, "card": card.number, "amount_fen": 11900,
            "items": [{"sku": "A", "amount_fen": 9800}, {"sku": "B", "amount_fen": 2100}]}  # fmt: skip
    response = admin_client_api.post(PREVIEW, body, format="json")
    assert response.status_code == 200, response.json()
    assert response.json()["points"] == 238 and response.json()["line_points"] == [196, 42]
    assert [b["points"] for b in response.json()["breakdown"]] == [119, 119]
    card.refresh_from_db()
    assert card.points_balance == 0


@pytest.mark.parametrize(
    ("change", "field"),
    [({"amount_fen": -1}, "amount_fen"), ({"store": "nowhere"}, "store"), ({"card": "000"}, "card"),
     ({"tier": 999999}, "tier")],
)  # fmt: skip
def test_preview_bad_input_is_400_naming_the_field(admin_client_api, store, tiers, change, field):
    response = admin_client_api.post(PREVIEW, {"store": store.code, "amount_fen": 100, **change}, format="json")
    assert response.status_code == 400 and field in str(response.json())


def test_staff_without_the_permission_is_403(staff_client):
    assert staff_client.get(RULES).status_code == 403
    assert staff_client.post(PREVIEW, {"amount_fen": 100}, format="json").status_code == 403


def test_in_openapi(admin_client_api):
    schema = admin_client_api.get("/api/schema/", HTTP_ACCEPT="application/json").content.decode()
    assert "/api/loyalty/earning/preview" in schema and "/api/loyalty/earning/rules" in schema


def test_marketing_role_owns_the_rules_and_the_preview(db, django_user_model):
    from django.contrib.auth.models import Group
    from rest_framework.authtoken.models import Token
    from rest_framework.test import APIClient

    from crm.services.roles import MARKETING, roles_ensure

    roles_ensure()
    user = django_user_model.objects.create_user(username="marketer-earning", password="x" * 12, is_staff=True)
    user.groups.add(Group.objects.get(name=MARKETING))
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=user).key}")
    body = {"name": "Base", "kind": "base", "fen_per_point": 50}
    assert client.post(RULES, body, format="json").status_code == 201
    assert client.post(PREVIEW, {"amount_fen": 1000}, format="json").json()["points"] == 20
