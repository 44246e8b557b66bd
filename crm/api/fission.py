"""The fission leaderboard of a pool gated on friends: for marketing, who is bringing friends and who unlocked."""

from __future__ import annotations

from django.urls import path
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from crm.api.permissions import HasStaffPerms
from crm.errors import ApplicationError
from crm.selectors.campaigns import pool_get
from crm.selectors.fission import fission_leaderboard, fission_totals


class LeaderboardRow(serializers.Serializer):
    rank = serializers.IntegerField()
    contact_id = serializers.IntegerField()
    name = serializers.CharField()
    friends = serializers.IntegerField()
    needed = serializers.IntegerField()
    unlocked = serializers.BooleanField()
    claim_status = serializers.CharField(help_text="The inviter's claim status, empty before they claim.")
    invited_at = serializers.DateTimeField()


class LeaderboardOutput(serializers.Serializer):
    pool_id = serializers.IntegerField()
    gate_friends = serializers.IntegerField()
    inviters = serializers.IntegerField()
    friends = serializers.IntegerField()
    unlocked = serializers.IntegerField()
    rows = LeaderboardRow(many=True)


class LeaderboardQuery(serializers.Serializer):
    limit = serializers.IntegerField(required=False, default=50, min_value=1, max_value=500)


class PoolFissionLeaderboardApi(APIView):
    permission_classes = [HasStaffPerms]
    required_perms = {"GET": ("crm.view_redpacketpool", "crm.view_fissionreferral")}

    @extend_schema(parameters=[OpenApiParameter("limit", int, description="Rows, 1 to 500 (50).")],
                   responses=LeaderboardOutput)  # fmt: skip
    def get(self, request: Request, pool_id: int) -> Response:
        query = LeaderboardQuery(data=request.query_params)
        query.is_valid(raise_exception=True)
        pool = pool_get(pool_id)
        if not pool.gate_friends:
            raise ApplicationError("This pool has no fission gate.", field="pool_id", code="no_fission_gate")
        return Response(LeaderboardOutput({
            "pool_id": pool.pk, "gate_friends": pool.gate_friends, **fission_totals(pool),
            "rows": fission_leaderboard(pool, limit=query.validated_data["limit"]),
        }).data)


urlpatterns = [
    path("api/redpacket-pools/<int:pool_id>/fission-leaderboard", PoolFissionLeaderboardApi.as_view(),
         name="redpacket-pool-fission-leaderboard"),
]
