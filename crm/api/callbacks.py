"""The WeCom callback receiver: verify, store, enqueue, answer (well within WeCom's 5 s)."""

from __future__ import annotations

import logging

from django.db import DatabaseError
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.urls import path
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_http_methods

from crm.errors import error_body
from crm.services.callbacks import NOT_STORED, CallbackRefused, callback_receive, callback_verify_url

logger = logging.getLogger(__name__)


@csrf_exempt
@require_http_methods(["GET", "POST"])
def wecom_callback(request: HttpRequest) -> HttpResponse:
    """GET: URL verification (answer the plaintext echostr). POST: an encrypted event (answer an empty 200).

    No session or token auth: the msg_signature is the auth. The ingest server (crm/api/callback_ingest.py)
    answers the same path with the same services and group commit; this view serves it inside the web app."""
    try:
        if request.method == "GET":
            return HttpResponse(callback_verify_url(params=request.GET), content_type="text/plain; charset=utf-8")
        callback_receive(params=request.GET, body=request.body)
    except CallbackRefused as exc:
        logger.warning("callback refused", extra={"reason": exc.code, "remote": request.META.get("REMOTE_ADDR")})
        return JsonResponse(error_body(exc.code, exc.message), status=exc.status_code)
    except DatabaseError:
        # Not stored, so not acknowledged: WeCom retries the very same request, which then gets through.
        logger.exception("callback not stored")
        return JsonResponse(error_body(NOT_STORED["code"], NOT_STORED["message"]), status=NOT_STORED["status"])
    return HttpResponse(b"", content_type="text/plain")


urlpatterns = [
    path("wecom/callback", wecom_callback, name="wecom-callback"),
]
