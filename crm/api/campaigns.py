"""Staff API for campaigns, red-packet pools and their reconciliation (the marketing role's permissions)."""

from __future__ import annotations

from django.urls import path
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from crm.api.permissions import HasStaffPerms
from crm.errors import Conflict
from crm.models import Campaign, RedPacketPool
from crm.selectors.campaigns import campaign_get, campaign_list, campaign_stats, pool_get
from crm.services import campaign_runs, run_control
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


class PoolOutput(serializers.ModelSerializer):
    class Meta:
        model = RedPacketPool
        fields = [
            "id", "campaign", "budget_fen", "count", "mode", "min_fen", "max_fen", "expires_at", "status",
            "act_name", "wishing", "sender_name", "activated_at", "created_at",
        ]


class CampaignOutput(serializers.ModelSerializer):
    red_packet = serializers.SerializerMethodField()

    class Meta:
        model = Campaign
        fields = [
            "id", "name", "segment", "text", "link_title", "link_url", "link_desc", "scheduled_at", "status",
            "launched_at", "finished_at", "cancelled_at", "created_at", "updated_at", "red_packet",
        ]

    def get_red_packet(self, obj: Campaign) -> dict | None:
        pool = obj.red_packet_pool if hasattr(obj, "red_packet_pool") else None
        return PoolOutput(pool).data if pool else None


class CampaignCreateInput(serializers.Serializer):
    name = serializers.CharField(max_length=128)
    text = serializers.CharField(max_length=4000)
    segment = serializers.JSONField(required=False, default=dict)
    link_title = serializers.CharField(max_length=128, required=False, default="", allow_blank=True)
    link_url = serializers.URLField(max_length=1024, required=False, default="", allow_blank=True)
    link_desc = serializers.CharField(max_length=512, required=False, default="", allow_blank=True)
    scheduled_at = serializers.DateTimeField(required=False, allow_null=True, default=None)
    red_packet = RedPacketInput(required=False, allow_null=True, default=None)


class CampaignUpdateInput(serializers.Serializer):
    name = serializers.CharField(max_length=128, required=False)
    text = serializers.CharField(max_length=4000, required=False)
    segment = serializers.JSONField(required=False)
    link_title = serializers.CharField(max_length=128, required=False, allow_blank=True)
    link_url = serializers.URLField(max_length=1024, required=False, allow_blank=True)
    link_desc = serializers.CharField(max_length=512, required=False, allow_blank=True)
    scheduled_at = serializers.DateTimeField(required=False, allow_null=True)


class ScheduleInput(serializers.Serializer):
    scheduled_at = serializers.DateTimeField()


class LuckyDrawInput(serializers.Serializer):
    prizes = serializers.JSONField()
    win_rate_percent = serializers.IntegerField(min_value=0, max_value=100, default=100)


class _Base(APIView):
    """Each view names the permissions of each method (crm.api.permissions); the marketing role holds them."""

    permission_classes = [HasStaffPerms]


class CampaignListApi(_Base):
    required_perms = {"GET": ("crm.view_campaign",), "POST": ("crm.add_campaign",)}

    def get(self, request: Request) -> Response:
        qs = campaign_list(status=request.query_params.get("status"), search=request.query_params.get("search"))
        return Response(CampaignOutput(qs[:200], many=True).data)

    def post(self, request: Request) -> Response:
        data = CampaignCreateInput(data=request.data)
        data.is_valid(raise_exception=True)
        campaign = campaign_services.campaign_create(**data.validated_data)
        return Response(CampaignOutput(campaign_get(campaign.id)).data, status=status.HTTP_201_CREATED)


class CampaignDetailApi(_Base):
    required_perms = {
        "GET": ("crm.view_campaign",), "PATCH": ("crm.change_campaign",), "DELETE": ("crm.delete_campaign",)
    }

    def get(self, request: Request, campaign_id: int) -> Response:
        return Response(CampaignOutput(campaign_get(campaign_id)).data)

    def patch(self, request: Request, campaign_id: int) -> Response:
        data = CampaignUpdateInput(data=request.data, partial=True)
        data.is_valid(raise_exception=True)
        campaign_services.campaign_update(campaign_id, **data.validated_data)
        return Response(CampaignOutput(campaign_get(campaign_id)).data)

    def delete(self, request: Request, campaign_id: int) -> Response:
        campaign_services.campaign_delete(campaign_id)
        return Response(status=status.HTTP_204_NO_CONTENT)


class CampaignScheduleApi(_Base):
    required_perms = {"POST": ("crm.change_campaign",)}

    def post(self, request: Request, campaign_id: int) -> Response:
        data = ScheduleInput(data=request.data)
        data.is_valid(raise_exception=True)
        campaign_services.campaign_schedule(campaign_id, data.validated_data["scheduled_at"])
        return Response(CampaignOutput(campaign_get(campaign_id)).data)


class CampaignLaunchApi(_Base):
    required_perms = {"POST": ("crm.change_campaign",)}

    def post(self, request: Request, campaign_id: int) -> Response:
        campaign_get(campaign_id)
        queued = campaign_runs.campaign_launch(campaign_id)
        return Response({"campaign": CampaignOutput(campaign_get(campaign_id)).data, "queued_messages": len(queued)})


class CampaignCancelApi(_Base):
    required_perms = {"POST": ("crm.change_campaign",)}

    def post(self, request: Request, campaign_id: int) -> Response:
        run_control.campaign_cancel(campaign_id)
        return Response(CampaignOutput(campaign_get(campaign_id)).data)


class CampaignRemindApi(_Base):
    required_perms = {"POST": ("crm.change_campaign",)}

    def post(self, request: Request, campaign_id: int) -> Response:
        return Response({"reminded": run_control.campaign_remind(campaign_id)})


class CampaignStatsApi(_Base):
    required_perms = {"GET": ("crm.view_campaign",)}

    def get(self, request: Request, campaign_id: int) -> Response:
        return Response(campaign_stats(campaign_id))


class CampaignRedPacketApi(_Base):
    required_perms = {"POST": ("crm.change_campaign", "crm.add_redpacketpool")}

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

    def post(self, request: Request, campaign_id: int) -> Response:
        data = LuckyDrawInput(data=request.data)
        data.is_valid(raise_exception=True)
        draw = campaign_services.lucky_draw_create(campaign_id=campaign_id, **data.validated_data)
        body = {"id": draw.id, "campaign": draw.campaign_id, "prizes": draw.prizes}
        return Response({**body, "win_rate_percent": draw.win_rate_percent}, status=status.HTTP_201_CREATED)


class PoolListApi(_Base):
    required_perms = {"GET": ("crm.view_redpacketpool",)}

    def get(self, request: Request) -> Response:
        return Response(PoolOutput(RedPacketPool.objects.order_by("-id")[:200], many=True).data)


class PoolDetailApi(_Base):
    required_perms = {"GET": ("crm.view_redpacketpool",)}

    def get(self, request: Request, pool_id: int) -> Response:
        return Response(PoolOutput(pool_get(pool_id)).data)


class PoolReconciliationApi(_Base):
    required_perms = {"GET": ("crm.view_redpacketpool",)}

    def get(self, request: Request, pool_id: int) -> Response:
        return Response(redpacket_services.redpacket_reconcile(pool_id))


class PoolRefundApi(_Base):
    required_perms = {"POST": ("crm.change_redpacketpool",)}

    def post(self, request: Request, pool_id: int) -> Response:
        pool_get(pool_id)
        refund = redpacket_services.redpacket_refund_expired(pool_id)
        return Response(
            {"pool_id": pool_id, "refunded_fen": refund.amount_fen if refund else 0,
             "reconciliation": redpacket_services.redpacket_reconcile(pool_id)}
        )


urlpatterns = [
    path("api/campaigns/", CampaignListApi.as_view(), name="campaign-list"),
    path("api/campaigns/<int:campaign_id>/", CampaignDetailApi.as_view(), name="campaign-detail"),
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
]
