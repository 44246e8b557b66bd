"""The WeCom callback receiver (verify, store, enqueue, answer well within WeCom's 5 s), and the staff API over
the stored events: list them by status (failed ones with payload and error) and replay a failed one."""

from __future__ import annotations

import logging

from django.db import DatabaseError
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.urls import path
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_http_methods
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from crm.api.permissions import HasStaffPerms
from crm.errors import ApplicationError, error_body
from crm.models import CallbackEvent
from crm.services.callbacks import (
    NOT_STORED,
    CallbackRefused,
    callback_receive,
    callback_replay_one,
    callback_verify_url,
)

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


class CallbackEventSerializer(serializers.ModelSerializer):
    failed_step = serializers.CharField(read_only=True)

    class Meta:
        model = CallbackEvent
        fields = ["id", "event", "change_type", "status", "failed_step", "attempts", "error", "result", "payload",
                  "event_time", "received_at", "last_attempt_at", "routed_at", "applied_at", "next_attempt_at"]
        read_only_fields = fields


class CallbackEventListApi(APIView):
    """Stored WeCom callbacks, newest first (at most 200), optionally of one status: `?status=failed` is the
    failed-callbacks screen's list."""

    permission_classes = [HasStaffPerms]
    required_perms = {"GET": ("crm.view_callbackevent",)}

    @extend_schema(
        tags=["callbacks"], summary="Stored WeCom callbacks (newest 200), by status",
        parameters=[OpenApiParameter("status", str, enum=list(CallbackEvent.Status.values))],
        responses={200: CallbackEventSerializer(many=True)},
    )
    def get(self, request: Request) -> Response:
        events = CallbackEvent.objects.order_by("-id")
        status = request.query_params.get("status")
        if status:
            if status not in CallbackEvent.Status.values:
                raise ApplicationError(f"status must be one of {', '.join(CallbackEvent.Status.values)}",
                                       field="status")
            events = events.filter(status=status)
        return Response(CallbackEventSerializer(events[:200], many=True).data)


class CallbackReplayApi(APIView):
    """Apply a failed callback again now (a fresh retry budget; audited). 409 when it is not failed."""

    permission_classes = [HasStaffPerms]
    required_perms = {"POST": ("crm.replay_callbackevent",)}

    @extend_schema(tags=["callbacks"], summary="Replay a failed WeCom callback", request=None,
                   responses={202: CallbackEventSerializer})
    def post(self, request: Request, event_id: int) -> Response:
        event = callback_replay_one(event_id=event_id, actor=request.user)
        return Response(CallbackEventSerializer(event).data, status=202)


urlpatterns = [
    path("wecom/callback", wecom_callback, name="wecom-callback"),
    path("api/callbacks/", CallbackEventListApi.as_view(), name="api-callback-list"),
    path("api/callbacks/<int:event_id>/replay/", CallbackReplayApi.as_view(), name="api-callback-replay"),
]
