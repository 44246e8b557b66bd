"""Group lucky packets over HTTP: the staff API (marketing: create, list, detail with its claims, launch) and the
customer's open endpoint (a member's signed link is the credential, so no session and no CSRF)."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.urls import path
from django.utils import timezone
from django.utils.translation import gettext_lazy
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_http_methods
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_field, inline_serializer
from rest_framework import serializers, status
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from crm.api.customer_pages import _error, _wants_json, shared_identity
from crm.api.guards import query_int
from crm.api.permissions import HasStaffPerms
from crm.api.throttles import RedisThrottledView, page_throttles, session_visitor, throttle_page, token_visitor
from crm.errors import ApplicationError
from crm.models import GroupPacketPost, RedPacketPool
from crm.models.redpackets import MAX_PACKET_FEN, MIN_PACKET_FEN
from crm.services import group_packets as gp
from crm.services.redpackets import redpacket_reconcile


class GroupPacketInput(serializers.Serializer):
    group = serializers.IntegerField(help_text="The customer group (id) the packet is posted in.")
    budget_fen = serializers.IntegerField(min_value=1)
    count = serializers.IntegerField(min_value=1, max_value=gp.MAX_GROUP_PACKETS)
    min_fen = serializers.IntegerField(required=False, min_value=MIN_PACKET_FEN, max_value=MAX_PACKET_FEN)
    max_fen = serializers.IntegerField(required=False, min_value=MIN_PACKET_FEN, max_value=MAX_PACKET_FEN)
    starts_at = serializers.DateTimeField(required=False, allow_null=True)
    expires_at = serializers.DateTimeField(required=False, allow_null=True, help_text="Default: 24 h after start.")
    act_name = serializers.CharField(required=False, max_length=32)
    wishing = serializers.CharField(required=False, max_length=128)


class GroupPacketOutput(serializers.ModelSerializer):
    group_name = serializers.CharField(source="group.__str__", read_only=True)
    link = serializers.SerializerMethodField()
    board_url = serializers.SerializerMethodField()
    post_status = serializers.SerializerMethodField()

    class Meta:
        model = RedPacketPool
        fields = ["id", "group", "group_name", "act_name", "wishing", "budget_fen", "count", "min_fen", "max_fen",
                  "status", "starts_at", "expires_at", "activated_at", "approved_by", "link", "board_url",
                  "post_status"]  # fmt: skip

    def get_link(self, pool: RedPacketPool) -> str:
        return gp.group_packet_link(pool.id)

    def get_board_url(self, pool: RedPacketPool) -> str:
        return gp.board_url(pool.id)

    def get_post_status(self, pool: RedPacketPool) -> str:
        post = GroupPacketPost.objects.filter(pool_id=pool.id).first()
        return post.status if post else ""


class ClaimLine(serializers.Serializer):
    contact_id = serializers.IntegerField()
    name = serializers.CharField()
    amount_fen = serializers.IntegerField()
    claimed_at = serializers.DateTimeField()
    best_luck = serializers.BooleanField()
    payout_status = serializers.CharField()


class BoardOutput(serializers.Serializer):
    pool_id = serializers.IntegerField()
    budget_fen = serializers.IntegerField()
    count = serializers.IntegerField()
    opened = serializers.IntegerField()
    remaining = serializers.IntegerField()
    opened_fen = serializers.IntegerField()
    remaining_fen = serializers.IntegerField()
    finished = serializers.BooleanField()
    claims = ClaimLine(many=True)


class GroupPacketDetailOutput(GroupPacketOutput):
    board = serializers.SerializerMethodField()
    reconciliation = serializers.SerializerMethodField()

    class Meta(GroupPacketOutput.Meta):
        fields = [*GroupPacketOutput.Meta.fields, "board", "reconciliation"]

    @extend_schema_field(BoardOutput)
    def get_board(self, pool: RedPacketPool) -> dict:
        return BoardOutput(gp.group_packet_board(pool.id)).data

    @extend_schema_field(OpenApiTypes.OBJECT)
    def get_reconciliation(self, pool: RedPacketPool) -> dict:
        return redpacket_reconcile(pool.id)


class _Base(APIView):
    permission_classes = [HasStaffPerms]


def _packets():
    return RedPacketPool.objects.filter(group__isnull=False).select_related("group").order_by("-id")


class GroupPacketListApi(_Base):
    required_perms = {"GET": ("crm.view_grouppacket",), "POST": ("crm.add_grouppacket",)}

    @extend_schema(operation_id="group_packets_list", responses=GroupPacketOutput(many=True),
                   parameters=[OpenApiParameter("group", int, description="Only this customer group's (id).")])
    def get(self, request: Request) -> Response:
        qs = _packets()
        group = query_int(request, "group")
        if group is not None:
            qs = qs.filter(group_id=group)
        return Response(GroupPacketOutput(qs[:200], many=True).data)

    @extend_schema(request=GroupPacketInput, responses={201: GroupPacketOutput})
    def post(self, request: Request) -> Response:
        data = GroupPacketInput(data=request.data)
        data.is_valid(raise_exception=True)
        fields = dict(data.validated_data)
        pool = gp.group_packet_create(group_id=fields.pop("group"), created_by=request.user, **fields)
        return Response(GroupPacketOutput(gp.group_packet_get(pool.id)).data, status=status.HTTP_201_CREATED)


class GroupPacketDetailApi(_Base):
    required_perms = {"GET": ("crm.view_grouppacket",)}

    @extend_schema(responses=GroupPacketDetailOutput)
    def get(self, request: Request, pool_id: int) -> Response:
        return Response(GroupPacketDetailOutput(gp.group_packet_get(pool_id)).data)


class GroupPacketLaunchApi(_Base):
    """Activate it (a second admin's approval first over the threshold) and post it in its group, once."""

    required_perms = {"POST": ("crm.change_grouppacket",)}

    @extend_schema(request=None, responses=GroupPacketOutput)
    def post(self, request: Request, pool_id: int) -> Response:
        gp.group_packet_launch(pool_id)
        return Response(GroupPacketOutput(gp.group_packet_get(pool_id)).data)


class GroupPacketRepostApi(_Base):
    """Post a packet whose post in the group failed again, now, from the group's current owner (audited); 409
    not_failed when the post did not fail (a post that may have gone out is never re-sent)."""

    required_perms = {"POST": ("crm.change_grouppacket",)}

    @extend_schema(request=None, responses=inline_serializer("GroupPacketRepostOutput", {
        "outcome": serializers.CharField(), "packet": GroupPacketOutput()}))  # fmt: skip
    def post(self, request: Request, pool_id: int) -> Response:
        outcome = gp.group_packet_post_retry(pool_id, user=request.user)
        return Response({"outcome": outcome, "packet": GroupPacketOutput(gp.group_packet_get(pool_id)).data})


class OpenInput(serializers.Serializer):
    token = serializers.CharField(help_text="The member's signed link token (/m/gp/t/<token>/).")


class GroupPacketOpenApi(RedisThrottledView):
    """The customer opens the packet: 200 with the amount, or 4xx with the reason code (exhausted, not_member,
    already_claimed, not_started, expired, bad_link). Owner: the customer; the signed token is the permission.
    Throttled per member link and per IP (429 with Retry-After)."""

    authentication_classes: list = []
    permission_classes = [AllowAny]
    throttle_classes = page_throttles("gp")

    def throttle_visitor(self, request) -> str | None:
        token = request.data.get("token") if hasattr(request.data, "get") else None
        return token_visitor(request, {"token": token})

    @extend_schema(
        operation_id="group_packets_open",
        request=OpenInput,
        responses=inline_serializer("GroupPacketOpened", {"status": serializers.CharField(),
                                                          "amount_fen": serializers.IntegerField(),
                                                          "board": BoardOutput()}),
    )  # fmt: skip
    def post(self, request: Request) -> Response:
        data = OpenInput(data=request.data)
        data.is_valid(raise_exception=True)
        pool_id, contact_id = gp.parse_member_token(data.validated_data["token"])
        outcome = gp.group_packet_open(pool_id=pool_id, contact_id=contact_id)
        return Response({"status": outcome.status, "amount_fen": outcome.amount_fen,
                         "board": BoardOutput(gp.group_packet_board(pool_id)).data})


urlpatterns = [
    path("api/group-packets/", GroupPacketListApi.as_view(), name="group-packet-list"),
    path("m/gp/open", GroupPacketOpenApi.as_view(), name="group-packet-open"),
    path("api/group-packets/<int:pool_id>/", GroupPacketDetailApi.as_view(), name="group-packet-detail"),
    path("api/group-packets/<int:pool_id>/launch", GroupPacketLaunchApi.as_view(), name="group-packet-launch"),
    path("api/group-packets/<int:pool_id>/repost", GroupPacketRepostApi.as_view(), name="group-packet-repost"),
]


# --- the customer's pages under /m/gp/ (plain HTML, as the other customer pages; JSON on request) --------------

MESSAGES = {"claimed": gettext_lazy("You got a red packet!"),
            **{code: text for code, (_status, text) in gp.REFUSALS.items()}}


def _yuan(fen: int) -> str:
    return f"{fen // 100}.{fen % 100:02d}"


def _page(request: HttpRequest, pool_id: int, contact_id: int | None) -> HttpResponse:
    """The packet and its board; with a visitor, their state and (POST) their open."""
    status, amount = "", 0
    try:
        pool = gp.group_packet_get(pool_id)
        if contact_id is not None and request.method == "POST":
            try:
                outcome = gp.group_packet_open(pool_id=pool_id, contact_id=contact_id)
                status, amount = outcome.status, outcome.amount_fen
            except ApplicationError as exc:
                if exc.code not in MESSAGES:
                    raise
                status, amount = exc.code, (exc.details or {}).get("amount_fen", 0)
        elif contact_id is not None:
            status, amount = gp.group_packet_state(pool, contact_id)
        board = gp.group_packet_board(pool_id)
    except ApplicationError as exc:
        return _error(request, exc)
    if _wants_json(request):
        return JsonResponse({"status": status, "message": str(MESSAGES.get(status, "")), "amount_fen": amount,
                             **BoardOutput(board).data})  # fmt: skip
    claims = [{**line, "amount_yuan": _yuan(line["amount_fen"]),
               "claimed_at": timezone.localtime(line["claimed_at"])} for line in board["claims"]]  # fmt: skip
    return render(request, "crm/group_packet.html", {
        "board": board, "claims": claims, "status": status, "message": MESSAGES.get(status, ""),
        "amount_fen": amount, "amount_yuan": _yuan(amount), "budget_yuan": _yuan(board["budget_fen"]),
        "expires_at": timezone.localtime(board["expires_at"]),
    })  # fmt: skip


@csrf_exempt  # checked in shared_identity: the session is the credential here
@require_http_methods(["GET", "POST"])
@never_cache
@throttle_page("gp", visitor=session_visitor)
def shared_page(request: HttpRequest, pool_id: int) -> HttpResponse:
    """The link posted in the group: the visitor is who WeChat OAuth says."""
    contact_id, response = shared_identity(request, "redpacket")
    return response or _page(request, pool_id, contact_id)


@csrf_exempt  # the signed token is the credential
@require_http_methods(["GET", "POST"])
@never_cache
@throttle_page("gp")
def member_page(request: HttpRequest, token: str) -> HttpResponse:
    try:
        pool_id, contact_id = gp.parse_member_token(token)
    except ApplicationError as exc:
        return _error(request, exc)
    return _page(request, pool_id, contact_id)


@require_GET
@never_cache
@throttle_page("gp")
def board_page(request: HttpRequest, token: str) -> HttpResponse:
    """The group's public view of the split (a signed link, no identity): who opened, how much, the best luck."""
    try:
        pool_id = gp.parse_board_token(token)
    except ApplicationError as exc:
        return _error(request, exc)
    return _page(request, pool_id, None)


urlpatterns += [
    path("m/gp/board/<str:token>/", board_page, name="group-packet-board"),
    path("m/gp/t/<str:token>/", member_page, name="group-packet-member-page"),
    path("m/gp/<int:pool_id>/", shared_page, name="group-packet-page"),
]
