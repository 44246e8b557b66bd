"""Tiers API (staff): the tier rules (basis, window, grace), the tier change events, a manual tier move."""

from __future__ import annotations

from django.urls import path
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import generics, serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from crm.api.guards import query_int
from crm.api.permissions import HasStaffPerms
from crm.errors import ApplicationError, NotFound
from loyalty.models import Card, Tier, TierChange, TierPolicy
from loyalty.scoping import scope_to_user_stores
from loyalty.selectors_tiers import tier_changes
from loyalty.services.tiers import tier_policy_get, tier_policy_save, tier_set_manual


class TierThresholdSerializer(serializers.ModelSerializer):
    class Meta:
        model = Tier
        fields = ["id", "name", "rank", "min_points", "min_spend_fen", "is_vip"]


class TierRulesOutputSerializer(serializers.Serializer):
    basis = serializers.ChoiceField(choices=TierPolicy.Basis.choices)
    window_days = serializers.IntegerField(help_text="Rolling window in days; 0 counts the whole history.")
    grace_days = serializers.IntegerField(help_text="Days a card below its tier keeps it before a downgrade.")
    tiers = TierThresholdSerializer(many=True)


class TierRulesInputSerializer(serializers.Serializer):
    # Types here; ranges, choices and the ladder in the service (one place for API and console).
    basis = serializers.CharField()
    window_days = serializers.IntegerField()
    grace_days = serializers.IntegerField()


class TierChangeOutputSerializer(serializers.ModelSerializer):
    card_number = serializers.CharField(source="card.number")
    contact_id = serializers.IntegerField(source="card.contact_id")
    from_tier = serializers.CharField(source="from_tier.name", default=None)
    to_tier = serializers.CharField(source="to_tier.name", default=None)

    class Meta:
        model = TierChange
        fields = [
            "id", "card", "card_number", "contact_id", "from_tier", "to_tier", "reason", "basis", "value",
            "window_days", "created_at",
        ]  # fmt: skip


class TierSetInputSerializer(serializers.Serializer):
    tier = serializers.IntegerField(help_text="Tier id.")


def _rules_body() -> dict:
    policy = tier_policy_get()
    return TierRulesOutputSerializer(
        {
            "basis": policy.basis,
            "window_days": policy.window_days,
            "grace_days": policy.grace_days,
            "tiers": Tier.objects.order_by("rank"),
        }
    ).data


class TierRulesApi(APIView):
    """Owner: admin (loyalty configuration)."""

    permission_classes = [HasStaffPerms]
    required_perms = {"GET": ("loyalty.view_tierpolicy",), "PUT": ("loyalty.change_tierpolicy",)}

    @extend_schema(tags=["loyalty"], summary="The tier rules and thresholds", responses=TierRulesOutputSerializer)
    def get(self, request):
        return Response(_rules_body())

    @extend_schema(
        tags=["loyalty"],
        summary="Change the tier rules (basis, rolling window, grace)",
        description="400 naming the field (basis, window_days, grace_days) with a reason code; nothing written.",
        request=TierRulesInputSerializer,
        responses=TierRulesOutputSerializer,
    )
    def put(self, request):
        serializer = TierRulesInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        tier_policy_save(**serializer.validated_data)
        return Response(_rules_body())


class TierChangeListApi(generics.ListAPIView):
    """Owner: admin; store managers see their own stores' cards (loyalty.scoping)."""

    serializer_class = TierChangeOutputSerializer
    permission_classes = [HasStaffPerms]
    required_perms = {"GET": ("loyalty.view_tierchange",)}

    @extend_schema(
        tags=["loyalty"],
        summary="Tier change events, newest first",
        parameters=[
            OpenApiParameter("card", int, description="Card id."),
            OpenApiParameter("reason", str, enum=TierChange.Reason.values),
        ],
    )
    def get(self, request, *args, **kwargs):
        return super().get(request, *args, **kwargs)

    def get_queryset(self):
        card, reason = query_int(self.request, "card"), self.request.query_params.get("reason")
        if reason and reason not in TierChange.Reason.values:
            raise ApplicationError("Unknown reason.", code="invalid_choice", field="reason")
        cards = scope_to_user_stores(Card.objects.all(), self.request.user)
        return tier_changes(card_id=card, reason=reason).filter(card__in=cards)


class CardTierSetApi(APIView):
    """Owner: admin. A manual move (reason manual); the rules apply again at the next evaluation."""

    permission_classes = [HasStaffPerms]
    required_perms = {"POST": ("loyalty.change_card",)}

    @extend_schema(
        tags=["loyalty"],
        summary="Put a card in a tier by hand",
        request=TierSetInputSerializer,
        responses={201: TierChangeOutputSerializer, 200: None},
    )
    def post(self, request, card_id: int):
        serializer = TierSetInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        if not scope_to_user_stores(Card.objects.filter(pk=card_id), request.user).exists():
            raise NotFound("No such card.", field="card")
        change = tier_set_manual(card_id=card_id, tier_id=serializer.validated_data["tier"])
        if change is None:
            return Response(status=status.HTTP_200_OK)
        return Response(TierChangeOutputSerializer(change).data, status=status.HTTP_201_CREATED)


urlpatterns = [
    path("api/loyalty/tier-rules", TierRulesApi.as_view(), name="tier-rules"),
    path("api/loyalty/tier-changes", TierChangeListApi.as_view(), name="tier-change-list"),
    path("api/loyalty/cards/<int:card_id>/tier", CardTierSetApi.as_view(), name="card-tier-set"),
]
