"""Operations basics: OpenAPI schema and Swagger UI served locally, every model in the admin and searchable,
and the API's error shape."""

import pytest
from django.apps import apps
from django.contrib import admin
from django.urls import path
from rest_framework import serializers
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.test import APIRequestFactory
from rest_framework.views import APIView

from crm.errors import ApplicationError

pytestmark = pytest.mark.django_db


@pytest.fixture
def staff_client(client, django_user_model):
    user = django_user_model.objects.create_superuser("ops", "ops@example.com", "pw-ops-123")
    client.force_login(user)
    return client


def test_openapi_schema_and_swagger_ui_are_served(staff_client):
    schema = staff_client.get("/api/schema/?format=json")
    assert schema.status_code == 200
    body = schema.json()
    assert body["openapi"].startswith("3.")
    assert body["paths"], "the schema documents the API's paths"
    docs = staff_client.get("/api/docs/")
    assert docs.status_code == 200
    html = docs.content.decode()
    # Assets are vendored (drf-spectacular-sidecar): nothing is fetched from a CDN at run time.
    assert "cdn.jsdelivr" not in html and "unpkg.com" not in html
    assert "/static/drf_spectacular_sidecar/" in html


def test_api_docs_need_a_staff_login(client):
    assert client.get("/api/schema/").status_code in (401, 403)


@pytest.mark.parametrize("app_label", ["crm", "loyalty", "wecom_sim"])
def test_every_model_is_registered_in_the_admin_and_searchable(app_label):
    missing, unsearchable = [], []
    for model in apps.get_app_config(app_label).get_models():
        model_admin = admin.site._registry.get(model)
        if model_admin is None:
            missing.append(model.__name__)
        elif not model_admin.search_fields:
            unsearchable.append(model.__name__)
    assert not missing, f"not registered in the admin: {missing}"
    assert not unsearchable, f"registered without search_fields: {unsearchable}"


class _Input(serializers.Serializer):
    amount_fen = serializers.IntegerField(min_value=1)


class _Probe(APIView):
    permission_classes = [AllowAny]

    def post(self, request):
        if request.data.get("rule"):
            raise ApplicationError("Budget exhausted.", code="budget_exhausted", field="amount_fen", status_code=409)
        _Input(data=request.data).is_valid(raise_exception=True)
        return Response({"ok": True})


urlpatterns = [path("probe", _Probe.as_view())]


def test_validation_errors_are_json_with_code_message_and_field():
    request = APIRequestFactory().post("/probe", {"amount_fen": -5}, format="json")
    response = _Probe.as_view()(request)
    assert response.status_code == 400
    error = response.data["error"]
    assert error["field"] == "amount_fen"
    assert error["code"] == "min_value"
    assert "greater than or equal to 1" in error["message"]


def test_application_errors_keep_their_status_code_and_field():
    request = APIRequestFactory().post("/probe", {"rule": "x"}, format="json")
    response = _Probe.as_view()(request)
    assert response.status_code == 409
    assert response.data["error"] == {"code": "budget_exhausted", "message": "Budget exhausted.", "field": "amount_fen"}


def test_malformed_json_is_a_400_not_a_500():
    request = APIRequestFactory().post("/probe", "{not json", content_type="application/json")
    response = _Probe.as_view()(request)
    assert response.status_code == 400
    assert response.data["error"]["code"] == "parse_error"
