"""One application error type, and the DRF handler that turns every API error into clean JSON.

Every error body is `{"error": {"code": ..., "message": ..., "field": ..., "details": ...}}`.
"""

from __future__ import annotations

import logging
from typing import Any

from django.core.exceptions import PermissionDenied
from django.core.exceptions import ValidationError as DjangoValidationError
from django.http import Http404
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import exception_handler

from crm.wecom.errors import WeComError

logger = logging.getLogger(__name__)


class ApplicationError(Exception):
    """A business rule refused the operation. `field` names the input at fault, when there is one."""

    status_code = status.HTTP_400_BAD_REQUEST

    def __init__(
        self,
        message: str,
        *,
        code: str = "invalid",
        field: str | None = None,
        status_code: int | None = None,
        details: Any = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.field = field
        self.details = details
        if status_code is not None:
            self.status_code = status_code


class NotFound(ApplicationError):
    status_code = status.HTTP_404_NOT_FOUND

    def __init__(self, message: str = "Not found.", **kwargs: Any) -> None:
        kwargs.setdefault("code", "not_found")
        super().__init__(message, **kwargs)


class Conflict(ApplicationError):
    status_code = status.HTTP_409_CONFLICT

    def __init__(self, message: str, **kwargs: Any) -> None:
        kwargs.setdefault("code", "conflict")
        super().__init__(message, **kwargs)


def error_body(code: str, message: str, field: str | None = None, details: Any = None) -> dict:
    body: dict[str, Any] = {"code": code, "message": message, "field": field}
    if details is not None:
        body["details"] = details
    return {"error": body}


def _first_field_error(detail: Any, prefix: str = "") -> tuple[str | None, str, str]:
    """Walk DRF's nested error detail to the first leaf: (dotted field, message, code)."""
    if isinstance(detail, dict):
        for key, value in detail.items():
            if isinstance(key, int):  # DRF keys ListField/ListSerializer child errors by position
                return _first_field_error(value, f"{prefix}[{key}]")
            name = key if key != "non_field_errors" else ""
            dotted = f"{prefix}.{name}" if prefix and name else (prefix or name)
            return _first_field_error(value, dotted)
    if isinstance(detail, list) and detail:
        for index, item in enumerate(detail):
            if item:
                dotted = prefix if not isinstance(item, dict) else f"{prefix}[{index}]"
                return _first_field_error(item, dotted)
    code = getattr(detail, "code", "invalid") or "invalid"
    return (prefix or None), str(detail), str(code)


def api_exception_handler(exc: Exception, context: dict) -> Response | None:
    if isinstance(exc, ApplicationError):
        return Response(error_body(exc.code, exc.message, exc.field, exc.details), status=exc.status_code)
    if isinstance(exc, WeComError):
        # WeCom answered an error or could not be reached: not our bug, so not a 500. A retry may help (503), or WeCom
        # refused the request as it stands (502, with its errcode for the operator).
        status = 503 if exc.retryable else 502
        code = "wecom_unavailable" if exc.retryable else "wecom_refused"
        return Response(error_body(code, f"WeCom: {exc.errmsg} (errcode {exc.errcode})", None,
                                   {"errcode": exc.errcode, "path": exc.path}), status=status)
    if isinstance(exc, DjangoValidationError):
        field = None
        if hasattr(exc, "error_dict"):
            field = next(iter(exc.error_dict), None)
        return Response(error_body("invalid", "; ".join(exc.messages), field), status=400)
    if isinstance(exc, Http404):
        exc = exceptions.NotFound()
    elif isinstance(exc, PermissionDenied):
        exc = exceptions.PermissionDenied()

    response = exception_handler(exc, context)
    if response is None:
        return None  # a real bug: let Django log it and answer 500
    if isinstance(exc, exceptions.ValidationError):
        field, message, code = _first_field_error(exc.detail)
        response.data = error_body(code, message, field, details=exc.detail)
    else:
        detail = getattr(exc, "detail", str(exc))
        code = getattr(detail, "code", None) or getattr(exc, "default_code", "error")
        response.data = error_body(str(code), str(detail))
    return response
