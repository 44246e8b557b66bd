"""Coupons API: the till redeems a coupon scanned from the card page's QR (once); staff keep the rewards
catalogue and grant coupons without points. Writes go through loyalty.services.coupons / rewards."""

from __future__ import annotations

from django.urls import path
from django.utils.translation import gettext as _
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from crm.api.permissions import HasStaffPerms
from crm.errors import NotFound
from crm.models import Campaign
from loyalty.api import TillThrottle
from loyalty.models import CampaignCoupon, Coupon, JourneyStep, Reward
from loyalty.permissions import IsCashier
from loyalty.services.campaign_coupons import campaign_coupon_set, campaign_coupon_stats
from loyalty.services.coupons import GRANT_SOURCES, coupon_grant, coupon_redeem
from loyalty.services.journeys import journey_step_save
from loyalty.services.rewards import reward_save


class RewardCatalogueSerializer(serializers.ModelSerializer):
    eligible_tiers = serializers.PrimaryKeyRelatedField(many=True, read_only=True)

    class Meta:
        model = Reward
        fields = [
            "id", "name", "kind", "description", "value_fen", "points_cost", "stock", "per_customer_limit",
            "valid_from", "valid_until", "valid_days", "eligible_tiers", "is_active",
        ]  # fmt: skip


class RewardInputSerializer(serializers.Serializer):
    # Types here; ranges and rules in reward_validate (one place for API and console).
    name = serializers.CharField(max_length=200)
    kind = serializers.CharField(default=Reward.Kind.GIFT)
    description = serializers.CharField(max_length=256, required=False, allow_blank=True, default="")
    value_fen = serializers.IntegerField(required=False, allow_null=True, default=None)
    points_cost = serializers.IntegerField()
    stock = serializers.IntegerField(required=False, allow_null=True, default=None)
    per_customer_limit = serializers.IntegerField(required=False, allow_null=True, default=None)
    valid_from = serializers.DateTimeField(required=False, allow_null=True, default=None)
    valid_until = serializers.DateTimeField(required=False, allow_null=True, default=None)
    valid_days = serializers.IntegerField(required=False, allow_null=True, default=None)
    eligible_tiers = serializers.ListField(child=serializers.IntegerField(), required=False, default=list)
    is_active = serializers.BooleanField(default=True)


def _reward_write(data: dict, reward_id: int | None) -> Reward:
    data = dict(data)
    tiers = data.pop("eligible_tiers")
    return reward_save(reward_id=reward_id, eligible_tier_ids=tiers, **data)


class CatalogueApi(APIView):
    permission_classes = [HasStaffPerms]
    required_perms = {"GET": ("loyalty.view_reward",), "POST": ("loyalty.add_reward",)}

    @extend_schema(
        tags=["loyalty-coupons"], summary="The rewards catalogue", responses=RewardCatalogueSerializer(many=True)
    )
    def get(self, request):
        rewards = Reward.objects.prefetch_related("eligible_tiers")
        return Response(RewardCatalogueSerializer(rewards, many=True).data)

    @extend_schema(
        tags=["loyalty-coupons"],
        summary="Add a reward",
        request=RewardInputSerializer,
        responses={201: RewardCatalogueSerializer},
    )
    def post(self, request):
        data = _valid(RewardInputSerializer, request.data)
        return Response(RewardCatalogueSerializer(_reward_write(data, None)).data, status=status.HTTP_201_CREATED)


class CatalogueItemApi(APIView):
    permission_classes = [HasStaffPerms]
    required_perms = {"PUT": ("loyalty.change_reward",)}

    @extend_schema(
        tags=["loyalty-coupons"],
        summary="Change a reward",
        request=RewardInputSerializer,
        responses=RewardCatalogueSerializer,
    )
    def put(self, request, reward_id: int):
        data = _valid(RewardInputSerializer, request.data)
        return Response(RewardCatalogueSerializer(_reward_write(data, reward_id)).data)


class CouponOutputSerializer(serializers.ModelSerializer):
    reward = serializers.CharField(source="reward.name")
    reward_kind = serializers.CharField(source="reward.kind")
    value_fen = serializers.IntegerField(source="reward.value_fen", allow_null=True)
    card_number = serializers.CharField(source="card.number")
    store = serializers.CharField(source="redeemed_store.code", allow_null=True, default=None)

    class Meta:
        model = Coupon
        fields = ["id", "reward", "reward_kind", "value_fen", "card_number", "source", "issued_at", "expires_at",
                  "redeemed_at", "store"]  # fmt: skip


class CouponRedeemInputSerializer(serializers.Serializer):
    code = serializers.CharField(max_length=64, help_text="What the till scanned from the coupon's QR.")
    store = serializers.CharField(max_length=32, help_text="Code of the store this till is at.")


class CouponRedeemApi(APIView):
    """A coupon is used once: a second redeem is 409 coupon_redeemed, an expired one 410 coupon_expired, a store
    the cashier is not bound to 403 store_forbidden."""

    permission_classes = [IsCashier]
    throttle_classes = [TillThrottle]

    @extend_schema(
        tags=["loyalty-till"], summary="Redeem a coupon at the till", request=CouponRedeemInputSerializer,
        responses={200: CouponOutputSerializer},
    )  # fmt: skip
    def post(self, request):
        data = _valid(CouponRedeemInputSerializer, request.data)
        coupon = coupon_redeem(code=data["code"], store_code=data["store"], user=request.user)
        return Response(CouponOutputSerializer(coupon).data)


class CouponGrantInputSerializer(serializers.Serializer):
    card = serializers.IntegerField(required=False)
    contact = serializers.IntegerField(required=False)
    reward = serializers.IntegerField()
    source = serializers.ChoiceField(choices=[(s.value, s.label) for s in GRANT_SOURCES])
    idempotency_key = serializers.CharField(max_length=160, help_text="One per (source, contact).")

    def validate(self, attrs):
        if not attrs.get("card") and not attrs.get("contact"):
            raise serializers.ValidationError({"card": "Give card (or contact)."})
        return attrs


class CouponGrantApi(APIView):
    permission_classes = [HasStaffPerms]
    required_perms = {"POST": ("loyalty.add_coupon",)}

    @extend_schema(
        tags=["loyalty-coupons"], summary="Grant a coupon without points", request=CouponGrantInputSerializer,
        responses={201: CouponOutputSerializer, 200: CouponOutputSerializer},
    )  # fmt: skip
    def post(self, request):
        data = _valid(CouponGrantInputSerializer, request.data)
        coupon, created = coupon_grant(
            card_id=data.get("card"),
            contact_id=data.get("contact"),
            reward_id=data["reward"],
            source=data["source"],
            idempotency_key=data["idempotency_key"],
        )
        return Response(CouponOutputSerializer(coupon).data, status=201 if created else 200)


class CampaignCouponInputSerializer(serializers.Serializer):
    reward = serializers.IntegerField(allow_null=True, help_text="A reward of kind coupon; null takes it away.")


class CampaignCouponOutputSerializer(serializers.Serializer):
    campaign = serializers.IntegerField()
    reward = serializers.IntegerField(allow_null=True)
    link_url = serializers.CharField(help_text="The message's link: the card page, where the coupon shows.")
    grants = serializers.DictField(
        child=serializers.IntegerField(), help_text="Recipients by outcome: granted, or a reason (out_of_stock)."
    )


def _campaign_coupon_body(campaign_id: int) -> dict:
    campaign = Campaign.objects.filter(pk=campaign_id).first()
    if campaign is None:
        raise NotFound(_("No such campaign."), field="campaign")
    row = CampaignCoupon.objects.filter(campaign=campaign).first()
    return {
        "campaign": campaign.pk,
        "reward": row.reward_id if row else None,
        "link_url": campaign.link_url,
        "grants": campaign_coupon_stats(campaign.pk),
    }


class CampaignCouponApi(APIView):
    """The coupon a campaign grants (no points) to each customer its message is delivered to, once per run."""

    permission_classes = [HasStaffPerms]
    required_perms = {"GET": ("loyalty.view_campaigncoupon",), "PUT": ("loyalty.change_campaigncoupon",)}

    @extend_schema(tags=["loyalty-coupons"], summary="A campaign's coupon", responses=CampaignCouponOutputSerializer)
    def get(self, request, campaign_id: int):
        return Response(_campaign_coupon_body(campaign_id))

    @extend_schema(
        tags=["loyalty-coupons"], summary="Set or remove a campaign's coupon", request=CampaignCouponInputSerializer,
        responses=CampaignCouponOutputSerializer,
    )  # fmt: skip
    def put(self, request, campaign_id: int):
        data = _valid(CampaignCouponInputSerializer, request.data)
        campaign_coupon_set(campaign_id=campaign_id, reward_id=data["reward"])
        return Response(_campaign_coupon_body(campaign_id))


class JourneyStepSerializer(serializers.ModelSerializer):
    granted = serializers.SerializerMethodField(help_text="Customers granted this step's coupon so far.")

    class Meta:
        model = JourneyStep
        fields = ["id", "name", "trigger", "tier", "action", "reward", "is_active", "granted"]

    def get_granted(self, step) -> int:
        return step.grants.filter(status="granted").count()


class JourneyStepInputSerializer(serializers.Serializer):
    # Types here; the rules (a coupon reward, the tier only for tier_entered) in journey_step_validate.
    name = serializers.CharField(max_length=128)
    trigger = serializers.ChoiceField(choices=JourneyStep.Trigger.choices)
    tier = serializers.IntegerField(required=False, allow_null=True, default=None)
    action = serializers.ChoiceField(choices=JourneyStep.Action.choices, default=JourneyStep.Action.GRANT_COUPON)
    reward = serializers.IntegerField(help_text="A reward of kind coupon.")
    is_active = serializers.BooleanField(default=True)


def _journey_step_write(data: dict, step_id: int | None) -> JourneyStep:
    return journey_step_save(
        step_id=step_id, name=data["name"], trigger=data["trigger"], tier_id=data["tier"], action=data["action"],
        reward_id=data["reward"], is_active=data["is_active"],
    )  # fmt: skip


class JourneyStepsApi(APIView):
    """Journey steps: when a customer's card is made, makes its first purchase or moves up into a tier, grant a
    coupon without points, once per customer and step."""

    permission_classes = [HasStaffPerms]
    required_perms = {"GET": ("loyalty.view_journeystep",), "POST": ("loyalty.add_journeystep",)}

    @extend_schema(tags=["loyalty-coupons"], summary="Journey steps", responses=JourneyStepSerializer(many=True))
    def get(self, request):
        return Response(JourneyStepSerializer(JourneyStep.objects.all(), many=True).data)

    @extend_schema(
        tags=["loyalty-coupons"], summary="Add a journey step", request=JourneyStepInputSerializer,
        responses={201: JourneyStepSerializer},
    )  # fmt: skip
    def post(self, request):
        step = _journey_step_write(_valid(JourneyStepInputSerializer, request.data), None)
        return Response(JourneyStepSerializer(step).data, status=status.HTTP_201_CREATED)


class JourneyStepApi(APIView):
    permission_classes = [HasStaffPerms]
    required_perms = {"PUT": ("loyalty.change_journeystep",)}

    @extend_schema(
        tags=["loyalty-coupons"], summary="Change a journey step", request=JourneyStepInputSerializer,
        responses=JourneyStepSerializer,
    )  # fmt: skip
    def put(self, request, step_id: int):
        step = _journey_step_write(_valid(JourneyStepInputSerializer, request.data), step_id)
        return Response(JourneyStepSerializer(step).data)


def _valid(serializer_class: type[serializers.Serializer], data) -> dict:
    serializer = serializer_class(data=data)
    serializer.is_valid(raise_exception=True)
    return serializer.validated_data


urlpatterns = [
    path("api/loyalty/catalogue", CatalogueApi.as_view(), name="catalogue"),
    path("api/loyalty/catalogue/<int:reward_id>", CatalogueItemApi.as_view(), name="catalogue-item"),
    path("api/loyalty/coupons/redeem", CouponRedeemApi.as_view(), name="coupon-redeem"),
    path("api/loyalty/coupons/grant", CouponGrantApi.as_view(), name="coupon-grant"),
    path("api/loyalty/journeys", JourneyStepsApi.as_view(), name="journey-steps"),
    path("api/loyalty/journeys/<int:step_id>", JourneyStepApi.as_view(), name="journey-step"),
    path("api/loyalty/campaigns/<int:campaign_id>/coupon", CampaignCouponApi.as_view(), name="campaign-coupon"),
]
