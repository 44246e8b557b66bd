"""Staff API for corp tags (owner role: marketing renames, admin deletes): renames and deletes go through
crm.services.tags, which pushes them to WeCom first; the answer says what WeCom did (`wecom`)."""

from __future__ import annotations

from django.urls import path
from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from crm.api.permissions import HasStaffPerms
from crm.errors import NotFound
from crm.models.tags import Tag, TagGroup
from crm.services import tags as tag_services

WECOM_HELP = ('What WeCom did: "pushed" (changed there too), "local" (not in WeCom: changed in the CRM only), '
              '"already_gone" (WeCom had deleted it already).')


class RenameInputSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=tag_services.NAME_MAX, help_text="1 to 30 characters (WeCom's limit).")


class TagGroupOutputSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField()
    wecom_id = serializers.CharField(allow_null=True)
    deleted_at = serializers.DateTimeField(allow_null=True)


class TagOutputSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField()
    group = TagGroupOutputSerializer()
    wecom_id = serializers.CharField(allow_null=True)
    deleted_at = serializers.DateTimeField(allow_null=True)


class TagChangeSerializer(serializers.Serializer):
    tag = TagOutputSerializer(source="obj")
    wecom = serializers.CharField(help_text=WECOM_HELP)
    message = serializers.CharField()


class TagGroupChangeSerializer(serializers.Serializer):
    group = TagGroupOutputSerializer(source="obj")
    wecom = serializers.CharField(help_text=WECOM_HELP)
    message = serializers.CharField()


def _tag(tag_id: int) -> Tag:
    tag = Tag.objects.select_related("group").filter(pk=tag_id).first()
    if tag is None:
        raise NotFound(f"Tag {tag_id} does not exist.", field="tag_id")
    return tag


def _group(group_id: int) -> TagGroup:
    group = TagGroup.objects.filter(pk=group_id).first()
    if group is None:
        raise NotFound(f"Tag group {group_id} does not exist.", field="group_id")
    return group


class TagListApi(APIView):
    permission_classes = [HasStaffPerms]
    required_perms = {"GET": ("crm.view_tag",)}

    @extend_schema(responses=TagOutputSerializer(many=True))
    def get(self, request: Request) -> Response:
        tags = Tag.objects.select_related("group").filter(deleted_at__isnull=True).order_by("group__name", "name")
        return Response(TagOutputSerializer(tags, many=True).data)


class TagDetailApi(APIView):
    permission_classes = [HasStaffPerms]
    required_perms = {"GET": ("crm.view_tag",), "PATCH": ("crm.change_tag",), "DELETE": ("crm.delete_tag",)}

    @extend_schema(responses=TagOutputSerializer)
    def get(self, request: Request, tag_id: int) -> Response:
        return Response(TagOutputSerializer(_tag(tag_id)).data)

    @extend_schema(request=RenameInputSerializer, responses=TagChangeSerializer)
    def patch(self, request: Request, tag_id: int) -> Response:
        s = RenameInputSerializer(data=request.data)
        s.is_valid(raise_exception=True)
        return Response(TagChangeSerializer(tag_services.tag_rename(_tag(tag_id), s.validated_data["name"])).data)

    @extend_schema(request=None, responses=TagChangeSerializer)
    def delete(self, request: Request, tag_id: int) -> Response:
        return Response(TagChangeSerializer(tag_services.tag_delete(_tag(tag_id))).data)


class TagGroupDetailApi(APIView):
    permission_classes = [HasStaffPerms]
    required_perms = {"GET": ("crm.view_taggroup",), "PATCH": ("crm.change_taggroup",),
                      "DELETE": ("crm.delete_taggroup",)}

    @extend_schema(responses=TagGroupOutputSerializer)
    def get(self, request: Request, group_id: int) -> Response:
        return Response(TagGroupOutputSerializer(_group(group_id)).data)

    @extend_schema(request=RenameInputSerializer, responses=TagGroupChangeSerializer)
    def patch(self, request: Request, group_id: int) -> Response:
        s = RenameInputSerializer(data=request.data)
        s.is_valid(raise_exception=True)
        change = tag_services.tag_group_rename(_group(group_id), s.validated_data["name"])
        return Response(TagGroupChangeSerializer(change).data)

    @extend_schema(request=None, responses=TagGroupChangeSerializer)
    def delete(self, request: Request, group_id: int) -> Response:
        return Response(TagGroupChangeSerializer(tag_services.tag_group_delete(_group(group_id))).data)


urlpatterns = [
    path("api/tags/", TagListApi.as_view(), name="tag-list"),
    path("api/tags/<int:tag_id>/", TagDetailApi.as_view(), name="tag-detail"),
    path("api/tag-groups/<int:group_id>/", TagGroupDetailApi.as_view(), name="taggroup-detail"),
]
