"""The API's OpenAPI schema class: every operation documents the error answers it can give, in their one shape.

Each view documents its success answer; the errors come from shared code (authentication, permissions, DRF's
validation, crm.errors.api_exception_handler, the throttles), so they are documented here once, not per view:

- 400 an operation taking input (a body or query parameters) refused it, or a business rule refused the call;
- 401 / 403 no or bad credentials / the role does not allow it;
- 404 a path's object does not exist (or a body names one that does not);
- 409 a write conflicts with the object's state;
- 415 the body is not in a media type the operation accepts;
- 429 a throttled view's rate was exceeded.

Every one of them is `crm.errors.error_body`: {"error": {"code", "message", "field", "details"}}.
"""

from __future__ import annotations

from drf_spectacular.openapi import AutoSchema
from rest_framework import serializers
from rest_framework.fields import empty


class ApiErrorSerializer(serializers.Serializer):
    code = serializers.CharField(help_text="Machine-readable, e.g. invalid, required, not_found, permission_denied.")
    message = serializers.CharField()
    field = serializers.CharField(allow_null=True, help_text="The input at fault (dotted, e.g. segment.all[1].value).")
    details = serializers.JSONField(required=False, help_text="Every field's errors, for a validation error.")


class ApiErrorBodySerializer(serializers.Serializer):
    error = ApiErrorSerializer()


UNSAFE = ("POST", "PUT", "PATCH", "DELETE")
DESCRIPTIONS = {
    "400": "Bad input: `error.field` names it.",
    "401": "Not signed in, or a bad token.",
    "403": "Signed in, but the role does not allow this.",
    "404": "Not found.",
    "409": "Conflicts with the object's current state.",
    "415": "Unsupported media type.",
    "429": "Too many requests: retry after the Retry-After header's seconds.",
}


class ApiSchema(AutoSchema):
    def _get_serializer_field_meta(self, field, direction):
        meta = super()._get_serializer_field_meta(field, direction)
        # An answer's field whose source may be missing (`source="purchase.receipt_id", default=None`) is null then.
        if direction == "response" and getattr(field, "default", empty) is None:
            meta["nullable"] = True
        return meta

    def _error_codes(self, operation: dict) -> list[str]:
        parameters = operation.get("parameters", [])
        takes_query = any(p.get("in") == "query" for p in parameters)
        codes = ["401", "403"]
        if self.method in UNSAFE or takes_query:
            codes.append("400")
        if self.method in UNSAFE or any(p.get("in") == "path" for p in parameters):
            codes.append("404")
        if self.method in UNSAFE:
            codes.append("409")
        if "requestBody" in operation:
            codes.append("415")
        if getattr(self.view, "throttle_classes", None):
            codes.append("429")
        return codes

    def get_operation(self, path, path_regex, path_prefix, method, registry):
        operation = super().get_operation(path, path_regex, path_prefix, method, registry)
        if operation is None:
            return operation
        responses = operation["responses"]
        for code in self._error_codes(operation):
            if code not in responses:
                response = self._get_response_for_code(ApiErrorBodySerializer, code)
                response["description"] = DESCRIPTIONS[code]
                responses[code] = response
        operation["responses"] = dict(sorted(responses.items()))
        return operation
