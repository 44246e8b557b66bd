"""Staff API for campaigns, red-packet pools and their reconciliation (the marketing role's permissions)."""

from __future__ import annotations

from django.http import FileResponse
from django.urls import path
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema, extend_schema_field, inline_serializer
from rest_framework import serializers, status
from rest_framework.parsers import FormParser, MultiPartParser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from crm.api.permissions import HasStaffPerms
from crm.errors import ApplicationError, Conflict, NotFound
from crm.models import Campaign, RedPacketPool
from crm.selectors.campaigns import campaign_get, campaign_list, campaign_stats, pool_get
from crm.services import campaign_runs, campaign_schedules, run_control
from crm.services import campaigns as campaign_services
from crm.services import redpackets as redpacket_services


class RedPacketInput(serializers.Serializer):
    budget_fen = serializers.IntegerField(min_value=1)
    count = serializers.IntegerField(min_value=1, max_value=100_000)
    mode = serializers.ChoiceField(choices=RedPacketPool.Mode.choices, default=RedPacketPool.Mode.LUCKY)
    min_fen = serializers.IntegerField(required=False, allow_null=True)
    max_fen = serializers.IntegerField(required=False, allow_null=True)
    expires_at = serializers.DateTimeField()
    act_name = serializers.CharField(max_length=32, required=False)
    wishing = serializers.CharField(max_length=128, required=False)
    sender_name = serializers.CharField(max_length=128, required=False)
    starts_at = serializers.DateTimeField(required=False, allow_null=True, help_text="Claims open (default: launch).")
    eligibility = serializers.JSONField(
        required=False, help_text="Who may claim: a segment definition (the filter language); empty: everyone."
    )
    gate_friends = serializers.IntegerField(
        required=False, min_value=0, max_value=50,
        help_text="Fission: friends new to the brand a customer must bring through their invite QR (0: no gate).",
    )  # fmt: skip
    gate_game = serializers.BooleanField(
        required=False, help_text="Mini-game gate: a signed game result from the red packet's page unlocks it.",
    )  # fmt: skip
    gate_purchase_fen = serializers.IntegerField(
        required=False, min_value=0,
        help_text="Purchase gate: fen spent since the pool opened (till receipts and imported orders); 0: no gate.",
    )  # fmt: skip
    claim_expiry_hours = serializers.IntegerField(
        required=False, min_value=1, max_value=168,
        help_text="A claim not paid within this many hours is refunded (default 24).",
    )  # fmt: skip
    gate_channel = serializers.IntegerField(
        required=False, allow_null=True,
        help_text="Add-staff gate: the channel (id) whose contact way the customer must have added staff through.",
    )  # fmt: skip


class PoolOutput(serializers.ModelSerializer):
    class Meta:
        model = RedPacketPool
        fields = [
            "id", "campaign", "budget_fen", "count", "mode", "min_fen", "max_fen", "expires_at", "status",
            "act_name", "wishing", "sender_name", "activated_at", "created_at", "created_by", "approved_by",
            "starts_at", "eligibility", "gate_friends", "gate_game", "gate_purchase_fen", "gate_channel",
            "claim_expiry_hours",
            "approved_at", "needs_approval", "reconciled_at", "reconcile_balanced", "reconcile_difference_fen",
        ]

    needs_approval = serializers.SerializerMethodField()

    @extend_schema_field(OpenApiTypes.BOOL)
    def get_needs_approval(self, pool: RedPacketPool) -> bool:
        return redpacket_services.redpacket_pool_needs_approval(pool)


class CampaignOutput(serializers.ModelSerializer):
    """Times in Asia/Shanghai (+08:00, the site's time zone); recur_time is a Shanghai time of day."""

    red_packet = serializers.SerializerMethodField()
    saved_segment_id = serializers.IntegerField(read_only=True, allow_null=True)
    image_url = serializers.SerializerMethodField()
    next_occurrence = serializers.SerializerMethodField()

    class Meta:
        model = Campaign
        fields = [
            "id", "name", "target", "saved_segment_id", "segment", "group_chat_ids", "text", "attachment",
            "link_title", "link_url", "link_desc", "image_url", "miniprogram_appid", "miniprogram_page",
            "miniprogram_title", "scheduled_at", "recurrence", "recur_weekday", "recur_day", "recur_time",
            "recur_until", "next_occurrence", "status", "paused_at", "launched_at", "finished_at", "cancelled_at",
            "created_at", "updated_at", "red_packet",
        ]

    def get_red_packet(self, obj: Campaign) -> dict | None:
        pool = obj.red_packet_pool if hasattr(obj, "red_packet_pool") else None
        return PoolOutput(pool).data if pool else None

    def get_image_url(self, obj: Campaign) -> str:
        return campaign_services.campaign_image_url(obj)

    @extend_schema_field(serializers.DateTimeField(allow_null=True))
    def get_next_occurrence(self, obj: Campaign) -> str | None:
        if obj.status not in (Campaign.Status.SCHEDULED, Campaign.Status.RUNNING):
            return None
        upcoming = campaign_schedules.upcoming(obj, 1)
        return serializers.DateTimeField().to_representation(upcoming[0]) if upcoming else None


class CampaignUpdateInput(serializers.Serializer):
    """What a campaign is made of (the campaign service checks the whole; the image is uploaded on its own, as
    multipart, to /api/campaigns/<id>/image/). Times with a zone, or taken as Asia/Shanghai."""

    name = serializers.CharField(max_length=128, required=False)
    text = serializers.CharField(max_length=4000, required=False, allow_blank=True)
    target = serializers.ChoiceField(choices=Campaign.Target.choices, required=False)
    segment = serializers.JSONField(required=False, allow_null=True)
    saved_segment_id = serializers.IntegerField(required=False, allow_null=True)
    group_chat_ids = serializers.ListField(child=serializers.CharField(max_length=64), required=False,
                                           max_length=100_000)
    attachment = serializers.ChoiceField(choices=Campaign.Attachment.choices, required=False, allow_blank=True)
    link_title = serializers.CharField(max_length=128, required=False, allow_blank=True)
    link_url = serializers.URLField(max_length=1024, required=False, allow_blank=True)
    link_desc = serializers.CharField(max_length=512, required=False, allow_blank=True)
    miniprogram_appid = serializers.CharField(max_length=64, required=False, allow_blank=True)
    miniprogram_page = serializers.CharField(max_length=255, required=False, allow_blank=True)
    miniprogram_title = serializers.CharField(max_length=64, required=False, allow_blank=True)
    scheduled_at = serializers.DateTimeField(required=False, allow_null=True)
    recurrence = serializers.ChoiceField(choices=Campaign.Recurrence.choices, required=False)
    recur_weekday = serializers.IntegerField(required=False, allow_null=True, min_value=0, max_value=6)
    recur_day = serializers.IntegerField(required=False, allow_null=True, min_value=1, max_value=31)
    recur_time = serializers.TimeField(required=False, allow_null=True)
    recur_until = serializers.DateTimeField(required=False, allow_null=True)


class CampaignCreateInput(CampaignUpdateInput):
    name = serializers.CharField(max_length=128)
    text = serializers.CharField(max_length=4000, allow_blank=True)
    red_packet = RedPacketInput(required=False, allow_null=True, default=None)


class AudienceInput(serializers.Serializer):
    target = serializers.ChoiceField(choices=Campaign.Target.choices, default=Campaign.Target.SEGMENT)
    segment = serializers.JSONField(required=False, allow_null=True, default=None)
    saved_segment_id = serializers.IntegerField(required=False, allow_null=True, default=None)
    group_chat_ids = serializers.ListField(child=serializers.CharField(max_length=64), required=False, default=None,
                                           allow_null=True)


AudienceOutput = inline_serializer("CampaignAudience", {
    "count": serializers.IntegerField(), "kind": serializers.ChoiceField(choices=["customers", "groups"])})
PreviewOutput = inline_serializer("CampaignPreview", {
    "chat_type": serializers.CharField(), "text": serializers.CharField(), "text_bytes": serializers.IntegerField(),
    "max_text_bytes": serializers.IntegerField(), "attachment": serializers.JSONField(allow_null=True),
    "link_appended": serializers.CharField()})


class ScheduleInput(serializers.Serializer):
    scheduled_at = serializers.DateTimeField()


class LuckyDrawInput(serializers.Serializer):
    prizes = serializers.JSONField()
    win_rate_percent = serializers.IntegerField(min_value=0, max_value=100, default=100)


_INT = serializers.IntegerField
_RECONCILIATION = {name: _INT() for name in (
    "pool_id", "budget_fen", "paid_fen", "pending_fen", "paying_fen", "queued_fen", "failed_fen", "refunded_fen",
    "expired_claims_fen", "claimable_fen", "in_flight_fen", "reserved_fen", "claimed_fen", "claims",
    "mismatched_claims", "total_fen")}
ReconciliationOutput = inline_serializer("PoolReconciliation", {
    **_RECONCILIATION, "status": serializers.CharField(), "redis_state": serializers.CharField(),
    "balanced": serializers.BooleanField()})
RefundOutput = inline_serializer("PoolRefund", {
    "pool_id": _INT(), "refunded_fen": _INT(), "reconciliation": ReconciliationOutput})
LaunchOutput = inline_serializer("CampaignLaunch", {"campaign": CampaignOutput(), "queued_messages": _INT()})
RemindOutput = inline_serializer("CampaignRemind", {"reminded": _INT()})
LuckyDrawOutput = inline_serializer("LuckyDraw", {
    "id": _INT(), "campaign": _INT(), "prizes": serializers.JSONField(), "win_rate_percent": _INT()})
_COUNTS = serializers.DictField(child=_INT())
StatsOutput = inline_serializer("CampaignStats", {
    "campaign_id": _INT(), "status": serializers.CharField(), "recipients_total": _INT(), "recipients": _COUNTS,
    "messages_total": _INT(), "messages": _COUNTS,
    "red_packet": inline_serializer("CampaignStatsRedPacket", {
        "pool_id": _INT(), "status": serializers.CharField(), "budget_fen": _INT(), "count": _INT(), "claims": _INT(),
        "claims_by_status": serializers.DictField(child=inline_serializer("ClaimsOfStatus", {
            "count": _INT(), "amount_fen": _INT()})),
    }, allow_null=True)})


class _Base(APIView):
    """Each view names the permissions of each method (crm.api.permissions); the marketing role holds them."""

    permission_classes = [HasStaffPerms]


class CampaignListApi(_Base):
    required_perms = {"GET": ("crm.view_campaign",), "POST": ("crm.add_campaign",)}

    @extend_schema(operation_id="campaigns_list", responses=CampaignOutput(many=True))
    def get(self, request: Request) -> Response:
        qs = campaign_list(status=request.query_params.get("status"), search=request.query_params.get("search"))
        return Response(CampaignOutput(qs[:200], many=True).data)

    @extend_schema(request=CampaignCreateInput, responses={201: CampaignOutput})
    def post(self, request: Request) -> Response:
        data = CampaignCreateInput(data=request.data)
        data.is_valid(raise_exception=True)
        campaign = campaign_services.campaign_create(**data.validated_data, require_audience=True, actor=request.user)
        return Response(CampaignOutput(campaign_get(campaign.id)).data, status=status.HTTP_201_CREATED)


class CampaignDetailApi(_Base):
    required_perms = {
        "GET": ("crm.view_campaign",), "PATCH": ("crm.change_campaign",), "DELETE": ("crm.delete_campaign",)
    }

    @extend_schema(responses=CampaignOutput)
    def get(self, request: Request, campaign_id: int) -> Response:
        return Response(CampaignOutput(campaign_get(campaign_id)).data)

    @extend_schema(request=CampaignUpdateInput, responses=CampaignOutput)
    def patch(self, request: Request, campaign_id: int) -> Response:
        data = CampaignUpdateInput(data=request.data, partial=True)
        data.is_valid(raise_exception=True)
        campaign_services.campaign_update(campaign_id, **data.validated_data, require_audience=True)
        return Response(CampaignOutput(campaign_get(campaign_id)).data)

    @extend_schema(responses={204: None})
    def delete(self, request: Request, campaign_id: int) -> Response:
        campaign_services.campaign_delete(campaign_id)
        return Response(status=status.HTTP_204_NO_CONTENT)


class CampaignScheduleApi(_Base):
    required_perms = {"POST": ("crm.change_campaign",)}

    @extend_schema(request=ScheduleInput, responses=CampaignOutput)
    def post(self, request: Request, campaign_id: int) -> Response:
        data = ScheduleInput(data=request.data)
        data.is_valid(raise_exception=True)
        campaign_services.campaign_schedule(campaign_id, data.validated_data["scheduled_at"])
        return Response(CampaignOutput(campaign_get(campaign_id)).data)


class CampaignImageApi(_Base):
    """The campaign's image: uploaded as multipart (field "image": JPG or PNG, at most 10 MB), shown to staff."""

    required_perms = {"GET": ("crm.view_campaign",), "POST": ("crm.change_campaign",)}
    parser_classes = [MultiPartParser, FormParser]

    @extend_schema(responses={(200, "image/*"): bytes})
    def get(self, request: Request, campaign_id: int) -> FileResponse:
        campaign = campaign_get(campaign_id)
        if not campaign.image:
            raise NotFound("This campaign has no image.", field="image")
        return FileResponse(campaign.image.open("rb"), content_type=_image_type(campaign.image.name))

    @extend_schema(
        request={"multipart/form-data": inline_serializer("CampaignImageUpload", {"image": serializers.FileField()})},
        responses=CampaignOutput,
    )
    def post(self, request: Request, campaign_id: int) -> Response:
        image = request.FILES.get("image")
        if image is None:
            raise ApplicationError("Send the image as the multipart field \"image\".", field="image")
        campaign_services.campaign_image_set(campaign_id, image)
        return Response(CampaignOutput(campaign_get(campaign_id)).data)


def _image_type(name: str) -> str:
    return "image/png" if name.lower().endswith(".png") else "image/jpeg"


class CampaignAudienceApi(_Base):
    """How many the campaign reaches now: consenting customers of its segment, or its groups."""

    required_perms = {"GET": ("crm.view_campaign",)}

    @extend_schema(responses=AudienceOutput)
    def get(self, request: Request, campaign_id: int) -> Response:
        return Response(campaign_services.campaign_audience(campaign_get(campaign_id)))


class AudiencePreviewApi(_Base):
    """The audience of a target not saved yet (a definition, a saved segment, or groups): the live count."""

    required_perms = {"POST": ("crm.view_campaign",)}

    @extend_schema(request=AudienceInput, responses=AudienceOutput)
    def post(self, request: Request) -> Response:
        data = AudienceInput(data=request.data)
        data.is_valid(raise_exception=True)
        return Response(campaign_services.audience_preview(**data.validated_data))


class CampaignPreviewApi(_Base):
    """What the WeChat chat bubble shows."""

    required_perms = {"GET": ("crm.view_campaign",)}

    @extend_schema(responses=PreviewOutput)
    def get(self, request: Request, campaign_id: int) -> Response:
        return Response(campaign_services.campaign_preview(campaign_get(campaign_id)))


class CampaignPauseApi(_Base):
    """Pause a recurring campaign: no occurrence runs until it is resumed."""

    required_perms = {"POST": ("crm.change_campaign",)}

    @extend_schema(request=None, responses=CampaignOutput)
    def post(self, request: Request, campaign_id: int) -> Response:
        campaign_schedules.campaign_pause(campaign_id)
        return Response(CampaignOutput(campaign_get(campaign_id)).data)


class CampaignResumeApi(_Base):
    """Resume a paused recurring campaign from its next occurrence (missed ones are not caught up)."""

    required_perms = {"POST": ("crm.change_campaign",)}

    @extend_schema(request=None, responses=CampaignOutput)
    def post(self, request: Request, campaign_id: int) -> Response:
        campaign_schedules.campaign_resume(campaign_id)
        return Response(CampaignOutput(campaign_get(campaign_id)).data)


class CampaignLaunchApi(_Base):
    required_perms = {"POST": ("crm.change_campaign",)}

    @extend_schema(request=None, responses=LaunchOutput)
    def post(self, request: Request, campaign_id: int) -> Response:
        campaign_get(campaign_id)
        queued = campaign_runs.campaign_launch(campaign_id)
        return Response({"campaign": CampaignOutput(campaign_get(campaign_id)).data, "queued_messages": len(queued)})


class CampaignCancelApi(_Base):
    required_perms = {"POST": ("crm.change_campaign",)}

    @extend_schema(request=None, responses=CampaignOutput)
    def post(self, request: Request, campaign_id: int) -> Response:
        run_control.campaign_cancel(campaign_id)
        return Response(CampaignOutput(campaign_get(campaign_id)).data)


class CampaignRemindApi(_Base):
    required_perms = {"POST": ("crm.change_campaign",)}

    @extend_schema(request=None, responses=RemindOutput)
    def post(self, request: Request, campaign_id: int) -> Response:
        return Response({"reminded": run_control.campaign_remind(campaign_id)})


class CampaignStatsApi(_Base):
    required_perms = {"GET": ("crm.view_campaign",)}

    @extend_schema(responses=StatsOutput)
    def get(self, request: Request, campaign_id: int) -> Response:
        return Response(campaign_stats(campaign_id))


class CampaignRedPacketApi(_Base):
    required_perms = {"POST": ("crm.change_campaign", "crm.add_redpacketpool")}

    @extend_schema(request=RedPacketInput, responses={201: PoolOutput})
    def post(self, request: Request, campaign_id: int) -> Response:
        campaign = campaign_get(campaign_id)
        if campaign.status not in campaign_services.EDITABLE:
            raise Conflict("Add a red packet before the campaign is launched.", field="status")
        data = RedPacketInput(data=request.data)
        data.is_valid(raise_exception=True)
        pool = redpacket_services.redpacket_pool_create(campaign_id=campaign.id, **data.validated_data)
        return Response(PoolOutput(pool).data, status=status.HTTP_201_CREATED)


class CampaignLuckyDrawApi(_Base):
    required_perms = {"POST": ("crm.change_campaign", "crm.add_luckydraw")}

    @extend_schema(request=LuckyDrawInput, responses={201: LuckyDrawOutput})
    def post(self, request: Request, campaign_id: int) -> Response:
        data = LuckyDrawInput(data=request.data)
        data.is_valid(raise_exception=True)
        draw = campaign_services.lucky_draw_create(campaign_id=campaign_id, **data.validated_data)
        body = {"id": draw.id, "campaign": draw.campaign_id, "prizes": draw.prizes}
        return Response({**body, "win_rate_percent": draw.win_rate_percent}, status=status.HTTP_201_CREATED)


class PoolListApi(_Base):
    required_perms = {"GET": ("crm.view_redpacketpool",)}

    @extend_schema(operation_id="redpacket_pools_list", responses=PoolOutput(many=True))
    def get(self, request: Request) -> Response:
        return Response(PoolOutput(RedPacketPool.objects.order_by("-id")[:200], many=True).data)


class PoolDetailApi(_Base):
    required_perms = {"GET": ("crm.view_redpacketpool",)}

    @extend_schema(responses=PoolOutput)
    def get(self, request: Request, pool_id: int) -> Response:
        return Response(PoolOutput(pool_get(pool_id)).data)


class PoolReconciliationApi(_Base):
    required_perms = {"GET": ("crm.view_redpacketpool",)}

    @extend_schema(responses=ReconciliationOutput)
    def get(self, request: Request, pool_id: int) -> Response:
        return Response(redpacket_services.redpacket_reconcile(pool_id))


class PoolApproveApi(_Base):
    """A second admin approves a draft pool over REDPACKET_APPROVAL_THRESHOLD_FEN (403 for its creator)."""

    required_perms = {"POST": ("crm.approve_redpacketpool",)}

    @extend_schema(request=None, responses=PoolOutput)
    def post(self, request: Request, pool_id: int) -> Response:
        return Response(PoolOutput(redpacket_services.redpacket_pool_approve(pool_id, approver=request.user)).data)


class PoolRefundApi(_Base):
    required_perms = {"POST": ("crm.change_redpacketpool",)}

    @extend_schema(request=None, responses=RefundOutput)
    def post(self, request: Request, pool_id: int) -> Response:
        pool_get(pool_id)
        refund = redpacket_services.redpacket_refund_expired(pool_id)
        return Response(
            {"pool_id": pool_id, "refunded_fen": refund.amount_fen if refund else 0,
             "reconciliation": redpacket_services.redpacket_reconcile(pool_id)}
        )


urlpatterns = [
    path("api/campaigns/", CampaignListApi.as_view(), name="campaign-list"),
    path("api/campaigns/audience/", AudiencePreviewApi.as_view(), name="campaign-audience-preview"),
    path("api/campaigns/<int:campaign_id>/", CampaignDetailApi.as_view(), name="campaign-detail"),
    path("api/campaigns/<int:campaign_id>/image/", CampaignImageApi.as_view(), name="campaign-image"),
    path("api/campaigns/<int:campaign_id>/audience/", CampaignAudienceApi.as_view(), name="campaign-audience"),
    path("api/campaigns/<int:campaign_id>/preview/", CampaignPreviewApi.as_view(), name="campaign-preview"),
    path("api/campaigns/<int:campaign_id>/pause/", CampaignPauseApi.as_view(), name="campaign-pause"),
    path("api/campaigns/<int:campaign_id>/resume/", CampaignResumeApi.as_view(), name="campaign-resume"),
    path("api/campaigns/<int:campaign_id>/schedule", CampaignScheduleApi.as_view(), name="campaign-schedule"),
    path("api/campaigns/<int:campaign_id>/launch", CampaignLaunchApi.as_view(), name="campaign-launch"),
    path("api/campaigns/<int:campaign_id>/cancel", CampaignCancelApi.as_view(), name="campaign-cancel"),
    path("api/campaigns/<int:campaign_id>/remind", CampaignRemindApi.as_view(), name="campaign-remind"),
    path("api/campaigns/<int:campaign_id>/stats", CampaignStatsApi.as_view(), name="campaign-stats"),
    path("api/campaigns/<int:campaign_id>/red-packet", CampaignRedPacketApi.as_view(), name="campaign-red-packet"),
    path("api/campaigns/<int:campaign_id>/lucky-draw", CampaignLuckyDrawApi.as_view(), name="campaign-lucky-draw"),
    path("api/redpacket-pools/", PoolListApi.as_view(), name="redpacket-pool-list"),
    path("api/redpacket-pools/<int:pool_id>/", PoolDetailApi.as_view(), name="redpacket-pool-detail"),
    path(
        "api/redpacket-pools/<int:pool_id>/reconciliation",
        PoolReconciliationApi.as_view(),
        name="redpacket-pool-reconciliation",
    ),
    path("api/redpacket-pools/<int:pool_id>/refund", PoolRefundApi.as_view(), name="redpacket-pool-refund"),
    path("api/redpacket-pools/<int:pool_id>/approve", PoolApproveApi.as_view(), name="redpacket-pool-approve"),
]
