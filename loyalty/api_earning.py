"""Earning API (staff): the earning rules (CRUD through loyalty.services.earning) and the preview "what would this
receipt earn?". Owner: marketing / admin (the earningrule model permissions and loyalty.preview_earning)."""

from __future__ import annotations

from django.urls import path
from drf_spectacular.utils import extend_schema, extend_schema_serializer
from rest_framework import serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from crm.api.permissions import HasStaffPerms
from crm.errors import NotFound
from loyalty.models import EarningRule
from loyalty.services.earning import RULE_FIELDS, earn_preview, earning_rule_delete, earning_rule_save


class EarningRuleSerializer(serializers.ModelSerializer):
    class Meta:
        model = EarningRule
        fields = ["id", *RULE_FIELDS, "created_at", "updated_at"]
        read_only_fields = ["id", "created_at", "updated_at"]


class EarningRuleInputSerializer(serializers.Serializer):
    # Shapes only; what each kind needs, ranges and references are the service's (one place for API and console).
    name = serializers.CharField(max_length=128)
    kind = serializers.ChoiceField(choices=EarningRule.Kind.choices)
    is_active = serializers.BooleanField(default=True)
    fen_per_point = serializers.IntegerField(required=False, allow_null=True)
    multiplier_pct = serializers.IntegerField(required=False, allow_null=True, help_text="200 = double points.")
    tier = serializers.IntegerField(required=False, allow_null=True, help_text="Tier id.")
    store = serializers.IntegerField(required=False, allow_null=True, help_text="Store id.")
    starts_on = serializers.DateField(required=False, allow_null=True)
    ends_on = serializers.DateField(required=False, allow_null=True)
    category = serializers.CharField(required=False, allow_blank=True, max_length=64)
    sku = serializers.CharField(required=False, allow_blank=True, max_length=64)
    min_spend_fen = serializers.IntegerField(required=False, allow_null=True)
    cap_points = serializers.IntegerField(required=False, allow_null=True)
    event = serializers.CharField(required=False, allow_blank=True)
    bonus_points = serializers.IntegerField(required=False, allow_null=True)


class PreviewLineSerializer(serializers.Serializer):
    sku = serializers.CharField()
    name = serializers.CharField(required=False, allow_blank=True)
    qty = serializers.IntegerField(required=False)
    amount_fen = serializers.IntegerField()


@extend_schema_serializer(component_name="EarningPreviewInput")  # crm.api.segments has a PreviewInput
class PreviewInputSerializer(serializers.Serializer):
    store = serializers.CharField(required=False, allow_blank=True, help_text="Store code.")
    card = serializers.CharField(required=False, allow_blank=True, help_text="Card number (its tier and day).")
    tier = serializers.IntegerField(required=False, allow_null=True, help_text="Tier id, when no card is given.")
    amount_fen = serializers.IntegerField()
    items = PreviewLineSerializer(many=True, required=False)
    at = serializers.DateTimeField(required=False, allow_null=True, help_text="When; now by default.")


class BreakdownSerializer(serializers.Serializer):
    rule = serializers.IntegerField(allow_null=True)
    name = serializers.CharField()
    points = serializers.IntegerField()


class BonusSerializer(BreakdownSerializer):
    event = serializers.CharField()


class PreviewOutputSerializer(serializers.Serializer):
    points = serializers.IntegerField()
    breakdown = BreakdownSerializer(many=True)
    line_points = serializers.ListField(child=serializers.IntegerField())
    bonuses = BonusSerializer(many=True)


def preview_run(data: dict):
    """Shared by the API and the console's preview screen."""
    return earn_preview(
        store_code=data.get("store") or None,
        amount_fen=data["amount_fen"],
        lines=[dict(x) for x in data.get("items") or []] or None,
        card_number=data.get("card") or None,
        tier_id=data.get("tier"),
        at=data.get("at"),
    )


class EarningRuleListApi(APIView):
    """Owner: marketing / admin."""

    permission_classes = [HasStaffPerms]
    required_perms = {"GET": ("loyalty.view_earningrule",), "POST": ("loyalty.add_earningrule",)}

    @extend_schema(tags=["loyalty"], summary="Earning rules", responses=EarningRuleSerializer(many=True))
    def get(self, request):
        return Response(EarningRuleSerializer(EarningRule.objects.order_by("id"), many=True).data)

    @extend_schema(
        tags=["loyalty"],
        summary="Add an earning rule",
        description="400 naming the field with a reason code (e.g. required, not_applicable, out_of_range).",
        request=EarningRuleInputSerializer,
        responses={201: EarningRuleSerializer},
    )
    def post(self, request):
        serializer = EarningRuleInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        rule = earning_rule_save(serializer.validated_data)
        return Response(EarningRuleSerializer(rule).data, status=status.HTTP_201_CREATED)


class EarningRuleDetailApi(APIView):
    """Owner: marketing / admin."""

    permission_classes = [HasStaffPerms]
    required_perms = {
        "GET": ("loyalty.view_earningrule",),
        "PUT": ("loyalty.change_earningrule",),
        "DELETE": ("loyalty.delete_earningrule",),
    }

    @extend_schema(tags=["loyalty"], summary="One earning rule", responses=EarningRuleSerializer)
    def get(self, request, rule_id: int):
        rule = EarningRule.objects.filter(pk=rule_id).first()
        if rule is None:
            raise NotFound("No such earning rule.", field="id")
        return Response(EarningRuleSerializer(rule).data)

    @extend_schema(
        tags=["loyalty"], summary="Replace an earning rule", request=EarningRuleInputSerializer,
        responses=EarningRuleSerializer,
    )  # fmt: skip
    def put(self, request, rule_id: int):
        serializer = EarningRuleInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        return Response(EarningRuleSerializer(earning_rule_save(serializer.validated_data, rule_id=rule_id)).data)

    @extend_schema(tags=["loyalty"], summary="Delete an earning rule", responses={204: None})
    def delete(self, request, rule_id: int):
        earning_rule_delete(rule_id)
        return Response(status=status.HTTP_204_NO_CONTENT)


class EarningPreviewApi(APIView):
    """Owner: marketing / admin. Writes nothing."""

    permission_classes = [HasStaffPerms]
    required_perms = {"POST": ("loyalty.preview_earning",)}

    @extend_schema(
        tags=["loyalty"],
        summary="What would this receipt earn?",
        description="The active rules applied to a store, a card (or a tier), an amount, lines and a time. "
        "400 naming the field (amount_fen, store, card, tier, items[i].*) with a reason code.",
        request=PreviewInputSerializer,
        responses=PreviewOutputSerializer,
    )
    def post(self, request):
        serializer = PreviewInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        result = preview_run(serializer.validated_data)
        return Response(PreviewOutputSerializer(result).data)


urlpatterns = [
    path("api/loyalty/earning/rules", EarningRuleListApi.as_view(), name="earning-rules"),
    path("api/loyalty/earning/rules/<int:rule_id>", EarningRuleDetailApi.as_view(), name="earning-rule"),
    path("api/loyalty/earning/preview", EarningPreviewApi.as_view(), name="earning-preview"),
]
