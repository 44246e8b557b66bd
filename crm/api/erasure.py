"""Staff API for a person's data rights: export everything held about them (one JSON document with a
schema_version) and erase them (admin only, a reason required). Both are audited (crm.services.erasure)."""

from __future__ import annotations

from django.urls import path
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from crm.api.permissions import HasStaffPerms
from crm.services.erasure import REASON_MAX, contact_erase, contact_export
from crm.services.roles import ERASE_CONTACT, EXPORT_CONTACT


class ExportQuerySerializer(serializers.Serializer):
    reason = serializers.CharField(required=False, allow_blank=True, max_length=REASON_MAX,
                                   help_text="Why the data is exported (e.g. the customer's request); audited.")


class EraseInputSerializer(serializers.Serializer):
    reason = serializers.CharField(max_length=REASON_MAX, help_text="Why the person is erased; required, audited.")


class ContactDataExportApi(APIView):
    """Everything held about one person across the CRM, loyalty and Redis, as one JSON document."""

    permission_classes = [HasStaffPerms]
    required_perms = {"GET": (EXPORT_CONTACT,)}

    @extend_schema(
        parameters=[OpenApiParameter("reason", str, description="Why the data is exported; audited.")],
        responses={200: OpenApiTypes.OBJECT},
    )
    def get(self, request: Request, contact_id: int) -> Response:
        s = ExportQuerySerializer(data=request.query_params)
        s.is_valid(raise_exception=True)
        document = contact_export(contact_id, user=request.user, reason=s.validated_data.get("reason", ""))
        filename = f"contact-{contact_id}-export.json"
        return Response(document, headers={"Content-Disposition": f'attachment; filename="{filename}"'})


class ContactEraseApi(APIView):
    """Erase one person: anonymise what money and audit keep, delete the rest, tombstone them against sync."""

    permission_classes = [HasStaffPerms]
    required_perms = {"POST": (ERASE_CONTACT,)}

    @extend_schema(
        request=EraseInputSerializer,
        responses={200: inline_serializer("EraseOutput", {
            "contact_id": serializers.IntegerField(), "erased_at": serializers.DateTimeField(),
            "summary": serializers.DictField(help_text="What was kept (anonymised), cancelled and deleted."),
        })},
    )
    def post(self, request: Request, contact_id: int) -> Response:
        s = EraseInputSerializer(data=request.data)
        s.is_valid(raise_exception=True)
        return Response(contact_erase(contact_id, reason=s.validated_data["reason"], user=request.user))


urlpatterns = [
    path("api/contacts/<int:contact_id>/export/", ContactDataExportApi.as_view(), name="contact-data-export"),
    path("api/contacts/<int:contact_id>/erase/", ContactEraseApi.as_view(), name="contact-erase"),
]
