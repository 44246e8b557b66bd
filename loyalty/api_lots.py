"""Lots and returns API: the till posts returns; staff read a card's lots and the returns list."""

from __future__ import annotations

from django.shortcuts import get_object_or_404
from drf_spectacular.utils import extend_schema
from rest_framework import generics, serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from crm.api.permissions import HasStaffPerms
from loyalty.api import TillThrottle
from loyalty.models import Card, PointsLot, PurchaseReturn, Store
from loyalty.permissions import IsCashier
from loyalty.scoping import scope_to_user_stores
from loyalty.services.lots import points_expiring_next
from loyalty.services.returns import MAX_LINES, return_record


class ReturnLineInputSerializer(serializers.Serializer):
    sku = serializers.CharField(max_length=64)
    qty = serializers.IntegerField(min_value=1, max_value=100_000)


class ReturnInputSerializer(serializers.Serializer):
    store = serializers.CharField(max_length=32)
    receipt_id = serializers.CharField(max_length=64)
    return_id = serializers.CharField(max_length=64, help_text="The till's id for this return (idempotency key).")
    lines = ReturnLineInputSerializer(many=True, allow_empty=False, max_length=MAX_LINES)


class ReturnLineOutputSerializer(serializers.Serializer):
    sku = serializers.CharField()
    qty = serializers.IntegerField()
    amount_fen = serializers.IntegerField()
    points = serializers.IntegerField(help_text="Points these units earned (reversed, or part of the shortfall).")


class ReturnOutputSerializer(serializers.ModelSerializer):
    store = serializers.CharField(source="store.code")
    receipt_id = serializers.CharField(source="purchase.receipt_id")
    card = serializers.CharField(source="purchase.card.number")
    balance = serializers.IntegerField(source="purchase.card.points_balance")
    lines = ReturnLineOutputSerializer(many=True)
    duplicate = serializers.BooleanField(default=False)

    class Meta:
        model = PurchaseReturn
        fields = [
            "id",
            "store",
            "return_id",
            "receipt_id",
            "card",
            "amount_fen",
            "points_reversed",
            "shortfall",
            "balance",
            "lines",
            "created_at",
            "duplicate",
        ]


def _return_output(ret: PurchaseReturn, duplicate: bool) -> dict:
    ret = PurchaseReturn.objects.select_related("store", "purchase__card").prefetch_related("lines").get(pk=ret.pk)
    data = ReturnOutputSerializer(ret).data
    data["duplicate"] = duplicate
    return data


class ReturnCreateApi(APIView):
    permission_classes = [IsCashier]
    throttle_classes = [TillThrottle]  # a till's rate, shared with its scans (429 with Retry-After)

    @extend_schema(
        tags=["loyalty-till"],
        summary="Record a till return",
        description=(
            "Returns some lines of a receipt and reverses the points they earned, once per (store, return_id), "
            "proportionally for part of a line's qty. 201 when recorded; 200 with `duplicate: true` for the same "
            "return again. Points already spent: per LOYALTY_RETURN_NEGATIVE_BALANCE the balance goes negative, "
            "or what is missing is the return's `shortfall`. Refusals, nothing written: 400 `store_unknown`, "
            "403 `store_forbidden`, 404 `receipt_unknown`, 400 `sku_not_bought` (field `lines[i].sku`), "
            "409 `return_exceeds_purchase` (field `lines[i].qty`, all returns of the receipt counted), "
            "409 `return_id_reused`."
        ),
        request=ReturnInputSerializer,
        responses={201: ReturnOutputSerializer, 200: ReturnOutputSerializer},
    )
    def post(self, request):
        serializer = ReturnInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        result = return_record(
            store_code=data["store"],
            receipt_id=data["receipt_id"],
            return_id=data["return_id"],
            lines=[dict(line) for line in data["lines"]],
            cashier=request.user,
        )
        code = status.HTTP_200_OK if result.duplicate else status.HTTP_201_CREATED
        return Response(_return_output(result.purchase_return, result.duplicate), status=code)


class ReturnListApi(generics.ListAPIView):
    """Returns, newest first (store managers: their stores')."""

    serializer_class = ReturnOutputSerializer
    permission_classes = [HasStaffPerms]
    required_perms = {"GET": ("loyalty.view_purchasereturn",)}

    @extend_schema(tags=["loyalty"], summary="List returns")
    def get(self, request, *args, **kwargs):
        return super().get(request, *args, **kwargs)

    def get_queryset(self):
        qs = PurchaseReturn.objects.select_related("store", "purchase__card").prefetch_related("lines")
        return qs.filter(store__in=scope_to_user_stores(Store.objects.all(), self.request.user))


class LotOutputSerializer(serializers.ModelSerializer):
    class Meta:
        model = PointsLot
        fields = ["id", "points", "remaining", "expires_on", "expires_at", "created_at"]


class CardLotsOutputSerializer(serializers.Serializer):
    balance = serializers.IntegerField()
    open_points = serializers.IntegerField(help_text="Sum of the open lots' remaining: max(balance, 0).")
    expiring_points = serializers.IntegerField(allow_null=True)
    expiring_on = serializers.DateField(allow_null=True, help_text="Last day, Asia/Shanghai.")
    lots = LotOutputSerializer(many=True)


class CardLotsApi(APIView):
    permission_classes = [HasStaffPerms]
    required_perms = {"GET": ("loyalty.view_card",)}

    @extend_schema(tags=["loyalty"], summary="A card's points lots", responses=CardLotsOutputSerializer)
    def get(self, request, card_id: int):
        card = get_object_or_404(scope_to_user_stores(Card.objects.all(), request.user), pk=card_id)
        lots = list(PointsLot.objects.filter(card=card).order_by("expires_at", "id"))
        nxt = points_expiring_next(card.pk)
        data = {
            "balance": card.points_balance,
            "open_points": sum(lot.remaining for lot in lots),
            "expiring_points": nxt[0] if nxt else None,
            "expiring_on": nxt[1] if nxt else None,
            "lots": lots,
        }
        return Response(CardLotsOutputSerializer(data).data)
