"""The OpenAPI schema the fuzzer runs on (issue 14.5): generated without a warning (every APIView has its
serializers, no operationId or enum name collides) and valid, with every operation's error answers documented in
the one error shape."""

from __future__ import annotations

import os

import pytest
from django.core.management import call_command
from drf_spectacular.generators import SchemaGenerator

pytestmark = pytest.mark.django_db


def test_the_schema_generates_without_a_warning_and_is_valid_openapi():
    call_command("spectacular", "--fail-on-warn", "--validate", "--file", os.devnull)


def test_every_operation_documents_its_error_answers_in_the_error_shape():
    schema = SchemaGenerator().get_schema(request=None, public=True)
    error = {"$ref": "#/components/schemas/ApiErrorBody"}
    operations = 0
    for path, item in schema["paths"].items():
        for method, operation in item.items():
            operations += 1
            responses = operation["responses"]
            assert {"401", "403"} <= set(responses), (method, path)
            if "{" in path or method != "get":
                assert "404" in responses, (method, path)
            if "requestBody" in operation:
                assert {"400", "415"} <= set(responses), (method, path)
            for code, response in responses.items():
                if code >= "400":
                    assert response["content"]["application/json"]["schema"] == error, (method, path, code)
    assert operations >= 90
    ids = [op["operationId"] for item in schema["paths"].values() for op in item.values()]
    assert len(ids) == len(set(ids))
    assert "redpacket_pools_list" in ids
