"""Staff API for contacts and channels (under /api/): list with filters, detail with timeline, bulk tag, CSV export."""

from __future__ import annotations

import csv
import io
import json

from django.db import transaction
from django.http import StreamingHttpResponse
from django.urls import path
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.pagination import LimitOffsetPagination
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from crm.api.permissions import HasStaffPerms
from crm.errors import ApplicationError, NotFound
from crm.models import Staff, Tag
from crm.models.channels import Channel
from crm.selectors.contacts import contact_get, contact_list, contact_timeline
from crm.services import segments
from crm.services.channels import channel_create, channel_daily_stats
from crm.services.consent import consent_record
from crm.services.contacts import contact_set_birthday, phone_hash
from crm.services.handover import handover_create, handover_report, handover_start
from crm.services.openness import source_import_csv, source_ingest
from crm.services.roles import EXPORT_CONTACT, HANDOVER_STAFF
from crm.services.tags import contacts_bulk_tag


class ContactFilterSerializer(serializers.Serializer):
    tag = serializers.ListField(child=serializers.IntegerField(), required=False, help_text="All of these tags.")
    channel = serializers.IntegerField(required=False)
    staff = serializers.CharField(required=False)
    tier = serializers.CharField(required=False, help_text='A tag of that name in the tag group "Tier".')
    consent = serializers.ChoiceField(choices=["marketing", "behaviour", "profiling"], required=False)
    added_from = serializers.DateTimeField(required=False)
    added_to = serializers.DateTimeField(required=False)
    segment = serializers.IntegerField(required=False, help_text="A saved segment's id.")
    filter = serializers.CharField(required=False, help_text="A definition in the filter language, as JSON "
                                   "(see /api/segments/fields/); a bad part is a 400 naming filter.<path>.")
    q = serializers.CharField(required=False, help_text="Name, remark, external_userid or phone number.")


def _condition(param: str, condition: dict) -> dict:
    """One query parameter as a condition of the filter language, validated; a bad one is a 400 on the param."""
    try:
        return segments.segment_validate(condition, field=param)
    except ApplicationError as exc:
        exc.field = param
        raise


def _definition(v: dict) -> dict:
    """The list's query parameters as one definition in the filter language (there is no second filter code)."""
    parts = []
    if v.get("tag"):
        parts.append(_condition("tag", {"field": "tags", "op": "all", "value": v["tag"]}))
    if v.get("channel"):
        parts.append(_condition("channel", {"field": "channel", "op": "in", "value": [v["channel"]]}))
    if v.get("staff"):
        userid = Staff.objects.filter(userid__iexact=v["staff"]).values_list("userid", flat=True).first()
        parts.append(_condition("staff", {"field": "staff", "op": "in", "value": [userid or v["staff"]]}))
    if v.get("tier"):
        tier_tags = list(Tag.objects.filter(group__name="Tier", name__iexact=v["tier"]).values_list("id", flat=True))
        parts.append(_condition("tier", {"field": "tags", "op": "any", "value": tier_tags}) if tier_tags
                     else {"any": []})
    if v.get("consent"):
        parts.append(_condition("consent", {"field": "consent", "op": "granted", "value": v["consent"]}))
    if v.get("added_from"):
        parts.append(_condition("added_from", {"field": "added", "op": "after", "value": v["added_from"].isoformat()}))
    if v.get("added_to"):
        parts.append(_condition("added_to", {"field": "added", "op": "before", "value": v["added_to"].isoformat()}))
    if v.get("segment") is not None:
        parts.append(_condition("segment", {"field": "segment", "op": "in", "value": [v["segment"]]}))
    if v.get("filter"):
        try:
            raw = json.loads(v["filter"])
        except ValueError:
            raise ApplicationError("filter must be JSON.", field="filter") from None
        parts.append(segments.segment_validate(raw, field="filter"))
    parts = [p for p in parts if p]
    return parts[0] if len(parts) == 1 else {"all": parts} if parts else {}


def _filters(request: Request) -> dict:
    data = {k: v for k, v in request.query_params.items() if k != "tag"}
    if request.query_params.getlist("tag"):
        data["tag"] = request.query_params.getlist("tag")
    s = ContactFilterSerializer(data=data)
    s.is_valid(raise_exception=True)
    v = s.validated_data
    filters: dict = {"definition": _definition(v)}
    q = (v.get("q") or "").strip()
    if q:
        compact = q.translate(str.maketrans("", "", "+-() "))
        if compact.isdigit() and len(compact) >= 7:  # a phone number: match on its keyed hash
            filters["phone_hash"] = phone_hash(q)
        else:
            filters["search"] = q
    return filters


class ContactOutputSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    external_userid = serializers.CharField()
    name = serializers.CharField()
    type = serializers.IntegerField()
    gender = serializers.IntegerField()
    channel = serializers.SerializerMethodField()
    first_added_at = serializers.DateTimeField(allow_null=True)
    birthday = serializers.DateField(allow_null=True)
    tags = serializers.SerializerMethodField()

    def get_channel(self, obj) -> dict | None:
        return {"id": obj.channel.id, "name": obj.channel.name, "state": obj.channel.state} if obj.channel else None

    def get_tags(self, obj) -> list[str]:
        return [str(ct.tag) for ct in obj.contact_tags.all()]


class FollowOutputSerializer(serializers.Serializer):
    staff = serializers.CharField(source="staff.userid")
    remark = serializers.CharField()
    description = serializers.CharField()
    state = serializers.CharField()
    add_way = serializers.IntegerField()
    added_at = serializers.DateTimeField(allow_null=True)
    deleted_by_staff_at = serializers.DateTimeField(allow_null=True)
    deleted_by_customer_at = serializers.DateTimeField(allow_null=True)


class EventOutputSerializer(serializers.Serializer):
    kind = serializers.CharField()
    staff = serializers.CharField(source="staff.userid", default=None, allow_null=True)
    data = serializers.JSONField()
    occurred_at = serializers.DateTimeField()


class ContactDetailSerializer(ContactOutputSerializer):
    unionid = serializers.CharField()
    follows = FollowOutputSerializer(many=True)
    timeline = serializers.SerializerMethodField()

    def get_timeline(self, obj) -> list[dict]:
        return EventOutputSerializer(contact_timeline(obj), many=True).data


class ContactListApi(APIView):
    permission_classes = [HasStaffPerms]
    required_perms = {"GET": ("crm.view_contact",)}
    pagination_class = LimitOffsetPagination  # so the schema documents the page (count, next, results)

    @extend_schema(parameters=[ContactFilterSerializer], responses=ContactOutputSerializer(many=True))
    def get(self, request: Request) -> Response:
        qs = contact_list(**_filters(request)).prefetch_related("contact_tags__tag__group")
        paginator = self.pagination_class()
        page = paginator.paginate_queryset(qs, request, view=self)
        return paginator.get_paginated_response(ContactOutputSerializer(page, many=True).data)


class ContactUpdateInputSerializer(serializers.Serializer):
    # A string (or null) here; the service parses and checks it (not in the future, not before 1900).
    birthday = serializers.CharField(allow_null=True, allow_blank=True, help_text="YYYY-MM-DD; null clears it.")


class ContactDetailApi(APIView):
    permission_classes = [HasStaffPerms]
    required_perms = {"GET": ("crm.view_contact",), "PATCH": ("crm.change_contact",)}

    @extend_schema(responses=ContactDetailSerializer)
    def get(self, request: Request, contact_id: int) -> Response:
        contact = contact_get(contact_id)
        if contact is None:
            raise NotFound(f"Contact {contact_id} does not exist.")
        return Response(ContactDetailSerializer(contact).data)

    @extend_schema(request=ContactUpdateInputSerializer, responses=ContactDetailSerializer,
                   summary="Change what staff may edit of a contact (its birthday)")
    def patch(self, request: Request, contact_id: int) -> Response:
        serializer = ContactUpdateInputSerializer(data=request.data, partial=True)
        serializer.is_valid(raise_exception=True)
        contact = contact_get(contact_id)
        if contact is None:
            raise NotFound(f"Contact {contact_id} does not exist.")
        if "birthday" in serializer.validated_data:
            with transaction.atomic():
                contact_set_birthday(contact, serializer.validated_data["birthday"], source="api")
        return Response(ContactDetailSerializer(contact_get(contact_id)).data)


class _Echo:
    def write(self, value: str) -> str:
        return value


class ContactExportApi(APIView):
    """CSV of the filtered contacts, streamed (the list can be large)."""

    permission_classes = [HasStaffPerms]
    required_perms = {"GET": ("crm.view_contact", EXPORT_CONTACT)}

    @extend_schema(parameters=[ContactFilterSerializer], responses={(200, "text/csv"): str})
    def get(self, request: Request) -> StreamingHttpResponse:
        qs = contact_list(**_filters(request)).prefetch_related("contact_tags__tag__group", "follows__staff")
        writer = csv.writer(_Echo())
        header = ["id", "external_userid", "name", "gender", "channel_state", "first_added_at", "staff", "tags"]

        def rows():
            yield writer.writerow(header)
            for c in qs.iterator(chunk_size=2000):
                yield writer.writerow([
                    c.id, c.external_userid, c.name, c.gender, c.channel.state if c.channel else "",
                    c.first_added_at.isoformat() if c.first_added_at else "",
                    " ".join(f.staff.userid for f in c.follows.all() if f.is_active),
                    "|".join(str(ct.tag) for ct in c.contact_tags.all()),
                ])

        response = StreamingHttpResponse(rows(), content_type="text/csv; charset=utf-8")
        response["Content-Disposition"] = 'attachment; filename="contacts.csv"'
        return response


class BulkTagInputSerializer(serializers.Serializer):
    contact_ids = serializers.ListField(child=serializers.IntegerField(), allow_empty=False, max_length=10000)
    tag_ids = serializers.ListField(child=serializers.IntegerField(), allow_empty=False, max_length=100)
    action = serializers.ChoiceField(choices=["tag", "untag"], default="tag")


class ContactBulkTagApi(APIView):
    permission_classes = [HasStaffPerms]
    required_perms = {"POST": ("crm.add_contacttag", "crm.delete_contacttag")}

    @extend_schema(
        request=BulkTagInputSerializer,
        responses=inline_serializer("BulkTagResult", {"changed": serializers.IntegerField()}),
    )
    def post(self, request: Request) -> Response:
        s = BulkTagInputSerializer(data=request.data)
        s.is_valid(raise_exception=True)
        changed = contacts_bulk_tag(
            contact_ids=s.validated_data["contact_ids"],
            tag_ids=s.validated_data["tag_ids"],
            remove=s.validated_data["action"] == "untag",
        )
        return Response({"changed": changed})


class ChannelInputSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=128)
    state = serializers.CharField(max_length=30)
    staff_userids = serializers.ListField(child=serializers.CharField(), allow_empty=False)
    welcome_text = serializers.CharField(required=False, allow_blank=True, default="")


class ChannelOutputSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField()
    state = serializers.CharField()
    config_id = serializers.CharField()
    qr_code = serializers.CharField()
    welcome_text = serializers.CharField()


class ChannelCreateApi(APIView):
    permission_classes = [HasStaffPerms]
    required_perms = {"POST": ("crm.add_channel",)}

    @extend_schema(request=ChannelInputSerializer, responses={201: ChannelOutputSerializer})
    def post(self, request: Request) -> Response:
        s = ChannelInputSerializer(data=request.data)
        s.is_valid(raise_exception=True)
        channel = channel_create(**s.validated_data)
        return Response(ChannelOutputSerializer(channel).data, status=201)


class ChannelStatsInputSerializer(serializers.Serializer):
    start = serializers.DateField()
    end = serializers.DateField()

    def validate(self, attrs):
        if attrs["end"] < attrs["start"]:
            raise serializers.ValidationError({"end": "end is before start"})
        if (attrs["end"] - attrs["start"]).days > 366:
            raise serializers.ValidationError({"end": "at most one year"})
        return attrs


class ChannelDayStatsSerializer(serializers.Serializer):
    day = serializers.DateField()
    adds = serializers.IntegerField()
    deletions = serializers.IntegerField()
    net = serializers.IntegerField()


class ChannelStatsApi(APIView):
    """Per day (Asia/Shanghai): relations added through the channel, deleted, net."""

    permission_classes = [HasStaffPerms]
    required_perms = {"GET": ("crm.view_channel",)}

    @extend_schema(parameters=[ChannelStatsInputSerializer], responses=ChannelDayStatsSerializer(many=True))
    def get(self, request: Request, channel_id: int) -> Response:
        channel = Channel.objects.filter(pk=channel_id).first()
        if channel is None:
            raise NotFound(f"Channel {channel_id} does not exist.")
        s = ChannelStatsInputSerializer(data=request.query_params)
        s.is_valid(raise_exception=True)
        return Response(channel_daily_stats(channel, s.validated_data["start"], s.validated_data["end"]))


class ConsentInputSerializer(serializers.Serializer):
    purpose = serializers.ChoiceField(choices=["marketing", "behaviour", "profiling"])
    granted = serializers.BooleanField()
    source = serializers.CharField(max_length=64)
    policy_version = serializers.CharField(max_length=32, required=False, allow_blank=True, default="")


class ConsentOutputSerializer(serializers.Serializer):
    purpose = serializers.CharField()
    version = serializers.IntegerField()
    granted = serializers.BooleanField()
    source = serializers.CharField()
    policy_version = serializers.CharField()
    recorded_at = serializers.DateTimeField()


class ContactConsentApi(APIView):
    permission_classes = [HasStaffPerms]
    required_perms = {"POST": ("crm.add_consentrecord",)}

    @extend_schema(request=ConsentInputSerializer, responses={201: ConsentOutputSerializer})
    def post(self, request: Request, contact_id: int) -> Response:
        s = ConsentInputSerializer(data=request.data)
        s.is_valid(raise_exception=True)
        record = consent_record(contact_id=contact_id, **s.validated_data)
        return Response(ConsentOutputSerializer(record).data, status=201)


class IngestInputSerializer(serializers.Serializer):
    records = serializers.ListField(child=serializers.DictField(), allow_empty=False)


class SourceIngestApi(APIView):
    """Records from an ecosystem source, kept only at the grain its openness allows (400 names a refused field)."""

    permission_classes = [HasStaffPerms]
    required_perms = {"POST": ("crm.change_datasource",)}

    @extend_schema(request=IngestInputSerializer, responses=OpenApiTypes.OBJECT)
    def post(self, request: Request, source_code: str) -> Response:
        s = IngestInputSerializer(data=request.data)
        s.is_valid(raise_exception=True)
        return Response(source_ingest(source_code=source_code, records=s.validated_data["records"]))


class SourceImportApi(APIView):
    """CSV upload (multipart `file`): the header and every row are checked; all rows are written or none."""

    permission_classes = [HasStaffPerms]
    required_perms = {"POST": ("crm.change_datasource",)}

    @extend_schema(
        request={"multipart/form-data": {"type": "object", "properties": {"file": {"type": "string",
                                                                                  "format": "binary"}}}},
        responses=OpenApiTypes.OBJECT,
    )
    def post(self, request: Request, source_code: str) -> Response:
        upload = request.FILES.get("file")
        if upload is None:
            raise ApplicationError("Upload a CSV as `file`.", field="file")
        text = io.TextIOWrapper(upload.file, encoding="utf-8-sig", newline="")
        return Response(source_import_csv(source_code=source_code, text=text))


class HandoverInputSerializer(serializers.Serializer):
    kind = serializers.ChoiceField(choices=["resigned", "onjob"])
    handover_userid = serializers.CharField()
    takeover_userids = serializers.ListField(child=serializers.CharField(), allow_empty=False)
    transfer_message = serializers.CharField(max_length=200, required=False, allow_blank=True, default="")
    include_groups = serializers.BooleanField(default=True)


class HandoverCreateApi(APIView):
    """Hand a staff member's customers and groups over (round robin over the takeovers); runs in the background."""

    permission_classes = [HasStaffPerms]
    required_perms = {"POST": ("crm.add_handover", HANDOVER_STAFF)}

    @extend_schema(request=HandoverInputSerializer, responses={202: OpenApiTypes.OBJECT})
    def post(self, request: Request) -> Response:
        s = HandoverInputSerializer(data=request.data)
        s.is_valid(raise_exception=True)
        handover = handover_create(**s.validated_data, created_by=request.user.get_username())
        handover_start(handover.pk)
        return Response(handover_report(handover.pk), status=202)


class HandoverReportApi(APIView):
    permission_classes = [HasStaffPerms]
    required_perms = {"GET": ("crm.view_handover",)}

    @extend_schema(responses=OpenApiTypes.OBJECT)
    def get(self, request: Request, handover_id: int) -> Response:
        return Response(handover_report(handover_id))


urlpatterns = [
    path("api/contacts/", ContactListApi.as_view(), name="contact-list"),
    path("api/contacts/export.csv", ContactExportApi.as_view(), name="contact-export"),
    path("api/contacts/bulk-tag/", ContactBulkTagApi.as_view(), name="contact-bulk-tag"),
    path("api/contacts/<int:contact_id>/", ContactDetailApi.as_view(), name="contact-detail"),
    path("api/contacts/<int:contact_id>/consent/", ContactConsentApi.as_view(), name="contact-consent"),
    path("api/sources/<slug:source_code>/ingest/", SourceIngestApi.as_view(), name="source-ingest"),
    path("api/sources/<slug:source_code>/import/", SourceImportApi.as_view(), name="source-import"),
    path("api/handovers/", HandoverCreateApi.as_view(), name="handover-create"),
    path("api/handovers/<int:handover_id>/", HandoverReportApi.as_view(), name="handover-report"),
    path("api/channels/", ChannelCreateApi.as_view(), name="channel-create"),
    path("api/channels/<int:channel_id>/stats/", ChannelStatsApi.as_view(), name="channel-stats"),
]
