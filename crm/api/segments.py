"""Staff API for the filter language and saved segments (owner role: marketing): CRUD under /api/segments/, a live
preview (count and a sample of members) of any definition, and the catalogue of fields the builder renders."""

from __future__ import annotations

from django.urls import path
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from crm.api.permissions import HasStaffPerms
from crm.errors import NotFound
from crm.selectors.segments import segment_get, segment_list, segment_preview
from crm.services import saved_segments, segments

DEFINITION_HELP = (
    'A node: {"all": [...]}, {"any": [...]}, {"not": {...}} or a condition {"field", "op", "value", ...}; '
    "GET /api/segments/fields/ lists the fields. {} selects every contact. A bad part is a 400 naming its path, "
    "e.g. definition.all[1].value."
)


class SegmentInputSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=128)
    description = serializers.CharField(max_length=512, required=False, allow_blank=True, default="")
    definition = serializers.JSONField(help_text=DEFINITION_HELP)


class SegmentPatchSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=128, required=False)
    description = serializers.CharField(max_length=512, required=False, allow_blank=True)
    definition = serializers.JSONField(required=False, help_text=DEFINITION_HELP)


class SegmentOutputSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField()
    description = serializers.CharField()
    definition = serializers.JSONField()
    last_count = serializers.IntegerField(allow_null=True)
    counted_at = serializers.DateTimeField(allow_null=True)
    created_by = serializers.CharField(source="created_by.username", default=None)
    created_at = serializers.DateTimeField()
    updated_at = serializers.DateTimeField()


class PreviewInputSerializer(serializers.Serializer):
    definition = serializers.JSONField(help_text=DEFINITION_HELP)


class SampleContactSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    external_userid = serializers.CharField()
    name = serializers.CharField()
    avatar = serializers.CharField()
    first_added_at = serializers.DateTimeField()


PreviewOutput = inline_serializer("SegmentPreview", {
    "count": serializers.IntegerField(), "definition": serializers.JSONField(),
    "sample": SampleContactSerializer(many=True),
})  # fmt: skip

_PERMS_READ = ("crm.view_segment",)


class SegmentListApi(APIView):
    permission_classes = [HasStaffPerms]
    required_perms = {"GET": _PERMS_READ, "POST": ("crm.add_segment",)}

    @extend_schema(responses=SegmentOutputSerializer(many=True))
    def get(self, request: Request) -> Response:
        return Response(SegmentOutputSerializer(segment_list(), many=True).data)

    @extend_schema(request=SegmentInputSerializer, responses={201: SegmentOutputSerializer})
    def post(self, request: Request) -> Response:
        s = SegmentInputSerializer(data=request.data)
        s.is_valid(raise_exception=True)
        segment = saved_segments.segment_create(**s.validated_data, actor=request.user)
        return Response(SegmentOutputSerializer(segment).data, status=201)


class SegmentDetailApi(APIView):
    permission_classes = [HasStaffPerms]
    required_perms = {"GET": _PERMS_READ, "PATCH": ("crm.change_segment",), "DELETE": ("crm.delete_segment",)}

    @extend_schema(responses=SegmentOutputSerializer)
    def get(self, request: Request, segment_id: int) -> Response:
        segment = segment_get(segment_id)
        if segment is None:
            raise NotFound(f"Segment {segment_id} does not exist.")
        return Response(SegmentOutputSerializer(segment).data)

    @extend_schema(request=SegmentPatchSerializer, responses=SegmentOutputSerializer)
    def patch(self, request: Request, segment_id: int) -> Response:
        s = SegmentPatchSerializer(data=request.data)
        s.is_valid(raise_exception=True)
        segment = saved_segments.segment_update(segment_id, **s.validated_data)
        return Response(SegmentOutputSerializer(segment).data)

    @extend_schema(request=None, responses={204: None})
    def delete(self, request: Request, segment_id: int) -> Response:
        saved_segments.segment_delete(segment_id)
        return Response(status=204)


class SegmentPreviewApi(APIView):
    """How many contacts a definition selects, and the first 10 of them; writes nothing."""

    permission_classes = [HasStaffPerms]
    required_perms = {"POST": _PERMS_READ}

    @extend_schema(request=PreviewInputSerializer, responses=PreviewOutput)
    def post(self, request: Request) -> Response:
        s = PreviewInputSerializer(data=request.data)
        s.is_valid(raise_exception=True)
        definition = segments.segment_validate(s.validated_data["definition"], field="definition")
        preview = segment_preview(definition, limit=10)
        return Response({"count": preview["count"], "definition": definition,
                         "sample": SampleContactSerializer(preview["sample"], many=True).data})


class SegmentFieldsApi(APIView):
    """The language's fields: name, label, ops, value kind, extra keys and choices (the builder renders these)."""

    permission_classes = [HasStaffPerms]
    required_perms = {"GET": _PERMS_READ}

    @extend_schema(responses=OpenApiTypes.OBJECT)
    def get(self, request: Request) -> Response:
        return Response({"fields": segments.segment_fields()})


urlpatterns = [
    path("api/segments/", SegmentListApi.as_view(), name="segment-list"),
    path("api/segments/preview/", SegmentPreviewApi.as_view(), name="segment-preview"),
    path("api/segments/fields/", SegmentFieldsApi.as_view(), name="segment-fields"),
    path("api/segments/<int:segment_id>/", SegmentDetailApi.as_view(), name="segment-detail"),
]
