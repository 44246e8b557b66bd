"""Guards that keep out-of-range integers from reaching the database, once for every view (issue 14.5).

A number PostgreSQL cannot store raises DataError ("integer out of range") deep in a write: a 500, and no field
named. Two places let such numbers in, and both are closed here rather than per view:

- DRF's IntegerField has no bounds unless given: `bound_integer_fields()` (called from CrmConfig.ready) holds a
  field without its own to the range of PostgreSQL's `integer` (int4), the narrowest column an API integer lands
  in, so a larger value is a 400 naming the field. A field that needs more says so (max_value=BIGINT_MAX); a
  ModelSerializer's fields keep the bounds Django derives from their model field. Query parameters read by hand
  go through `query_int`.
- Django's `<int:...>` path converter takes any run of digits: `PathIntegerGuard` answers 404 (naming the
  parameter) for an id no `bigint` primary key can have, before the view runs.

`api_not_found` is the site's 404 handler: the JSON error body under /api/, Django's page elsewhere.
"""

from __future__ import annotations

from django.http import Http404, JsonResponse
from django.views import defaults
from rest_framework import serializers

from crm.errors import ApplicationError, error_body

INT_MIN, INT_MAX = -(2**31), 2**31 - 1  # PostgreSQL integer (int4)
BIGINT_MIN, BIGINT_MAX = -(2**63), 2**63 - 1  # PostgreSQL bigint: every primary key (BigAutoField)

_bounded = False


def bound_integer_fields() -> None:
    """Checked when a value is read, not made a bound of the field: the same plain Serializer classes describe
    answers too, whose ids are bigint, and the schema keeps saying so."""
    global _bounded
    if _bounded:
        return
    _bounded = True
    original = serializers.IntegerField.to_internal_value

    def to_internal_value(self, data):
        value = original(self, data)
        if self.max_value is None and value > INT_MAX:
            self.fail("max_value", max_value=INT_MAX)
        if self.min_value is None and value < INT_MIN:
            self.fail("min_value", min_value=INT_MIN)
        return value

    serializers.IntegerField.to_internal_value = to_internal_value


def query_int(request, name: str, *, min_value: int = 0, max_value: int = BIGINT_MAX) -> int | None:
    """An integer query parameter (an id): None when absent or empty, a 400 naming it when it is not an integer
    in range (int() would take "²" for a digit and raise, or a filter would take "abc" and raise)."""
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return None
    try:
        return serializers.IntegerField(min_value=min_value, max_value=max_value).run_validation(raw)
    except serializers.ValidationError as exc:
        detail = exc.detail[0]
        raise ApplicationError(str(detail), code=detail.code, field=name) from None


class PathParameterNotFound(Http404):
    def __init__(self, field: str) -> None:
        super().__init__(f"No object has this {field}.")
        self.field = field


class PathIntegerGuard:
    """Middleware: a path's integer that no row can have is a 404 (not a DataError in the view's write)."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        return self.get_response(request)

    def process_view(self, request, view_func, view_args, view_kwargs):
        for name, value in view_kwargs.items():
            if type(value) is int and not BIGINT_MIN <= value <= BIGINT_MAX:
                raise PathParameterNotFound(name)
        return None


def api_not_found(request, exception=None):
    if request.path.startswith("/api/"):
        field = getattr(exception, "field", None)
        message = str(exception) if field else "Not found."
        return JsonResponse(error_body("not_found", message, field), status=404)
    return defaults.page_not_found(request, exception)
