"""The shared guards behind the fuzz findings (crm/api/guards.py): integers past a column's range, path ids no row
can have, and integer query parameters that are not integers, each a 4xx naming the input (never a 500)."""

from __future__ import annotations

import pytest
from rest_framework import serializers
from rest_framework.test import APIClient

from crm.api.guards import BIGINT_MAX, INT_MAX
from crm.models import Campaign

pytestmark = pytest.mark.django_db
BEYOND_BIGINT = 2**63 + 5


@pytest.fixture
def admin(django_user_model):
    client = APIClient()
    client.force_login(django_user_model.objects.create_user("fuzzadmin", is_staff=True, is_superuser=True))
    return client


def _error(response, status: int) -> dict:
    assert response.status_code == status, response.content[:300]
    return response.json()["error"]


def test_a_drf_integer_without_bounds_holds_to_postgresql_integer_and_one_with_its_own_keeps_them():
    plain = serializers.IntegerField()
    assert plain.run_validation(INT_MAX) == INT_MAX
    with pytest.raises(serializers.ValidationError) as too_big:
        plain.run_validation(INT_MAX + 1)
    assert too_big.value.detail[0].code == "max_value"
    with pytest.raises(serializers.ValidationError):
        plain.run_validation(-(2**31) - 1)
    assert serializers.IntegerField(max_value=BIGINT_MAX).run_validation(2**40) == 2**40
    assert serializers.IntegerField(max_value=5).to_representation(2**40) == 2**40  # answers are not bounded


@pytest.mark.parametrize("value", [INT_MAX + 1, BEYOND_BIGINT])
def test_a_body_integer_past_its_column_is_a_400_naming_the_field(admin, value):
    body = {"name": "Spring", "text": "Hi", "red_packet": {
        "budget_fen": value, "count": 1, "expires_at": "2030-01-01T00:00:00+08:00"}}
    error = _error(admin.post("/api/campaigns/", body, format="json"), 400)
    assert error["field"] == "red_packet.budget_fen" and error["code"] == "max_value"
    assert not Campaign.objects.exists()


def test_a_filter_language_number_past_bigint_is_a_400_naming_its_path(admin):
    definition = {"all": [{"field": "points", "op": "gte", "value": BEYOND_BIGINT}]}
    error = _error(admin.post("/api/segments/preview/", {"definition": definition}, format="json"), 400)
    assert error["field"] == "definition.all[0].value"


def test_a_path_id_no_row_can_have_is_a_json_404_naming_the_parameter(admin):
    for method, url in [("get", f"/api/campaigns/{BEYOND_BIGINT}/"), ("put", f"/api/loyalty/catalogue/{BEYOND_BIGINT}"),
                        ("post", f"/api/redpacket-pools/{BEYOND_BIGINT}/refund")]:
        response = getattr(admin, method)(url, {}, format="json")
        assert response["Content-Type"] == "application/json"
        assert _error(response, 404)["field"] in ("campaign_id", "reward_id", "pool_id")
    assert _error(admin.get("/api/no-such-endpoint/"), 404)["code"] == "not_found"  # JSON under /api/ too
    page = admin.get("/admin/console/no-such-page/")
    assert page.status_code == 404 and "html" in page["Content-Type"]  # the console keeps its page


@pytest.mark.parametrize(("url", "field"), [
    ("/api/loyalty/cards?tier=²", "tier"), ("/api/loyalty/tier-changes?card=abc", "card"),
    ("/api/group-packets/?group=abc", "group"), (f"/api/group-packets/?group={BEYOND_BIGINT}", "group"),
])
def test_an_integer_query_parameter_that_is_not_one_is_a_400_naming_it(admin, url, field):
    assert _error(admin.get(url), 400)["field"] == field
