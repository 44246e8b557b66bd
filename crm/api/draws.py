"""Group lucky draws over HTTP: the staff API (marketing's permissions on GroupDraw), the customer's entry page
(a signed per-customer link whose purpose names the draw) and the public verify page anyone may open."""

from __future__ import annotations

from itertools import zip_longest

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.urls import path
from django.utils.translation import gettext as _
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_http_methods
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from crm.api.customer_pages import _error, _wants_json, shared_identity
from crm.api.permissions import HasStaffPerms
from crm.api.throttles import no_visitor, session_visitor, throttle_page
from crm.errors import ApplicationError, NotFound
from crm.models import GroupDraw, GroupDrawEntry, GroupDrawPrize, GroupDrawWinner
from crm.selectors.draws import draw_export
from crm.services import draws as svc
from crm.services.customer_links import absolute_url, sign_contact, unsign_contact

VIEW, ADD, CHANGE = ("crm.view_groupdraw",), ("crm.add_groupdraw",), ("crm.change_groupdraw",)


def entry_url(draw_id: int, contact_id: int) -> str:
    """The member's own entry link: the token's purpose names the draw, so it is refused for any other."""
    return absolute_url(f"/m/groupdraw/{int(draw_id)}/{sign_contact(contact_id, f'groupdraw:{int(draw_id)}')}/")


# --- staff API ---------------------------------------------------------------------------------------------


class PrizeInput(serializers.Serializer):
    kind = serializers.ChoiceField(choices=GroupDrawPrize.Kind.choices)
    reward_id = serializers.IntegerField(required=False, min_value=1)
    points = serializers.IntegerField(required=False, min_value=1)
    amount_fen = serializers.IntegerField(required=False, min_value=100, max_value=20_000)
    winners = serializers.IntegerField(min_value=1, max_value=10_000, default=1)


class DrawInput(serializers.Serializer):
    name = serializers.CharField(max_length=128)
    group_ids = serializers.ListField(child=serializers.IntegerField(), min_length=1)
    opens_at = serializers.DateTimeField()
    closes_at = serializers.DateTimeField()
    prizes = PrizeInput(many=True)


class PrizeOutput(serializers.ModelSerializer):
    class Meta:
        model = GroupDrawPrize
        fields = ["position", "kind", "reward_id", "points", "amount_fen", "winners"]


class DrawOutput(serializers.ModelSerializer):
    """The seed is only present once the draw is revealed."""

    prizes = PrizeOutput(many=True, read_only=True)
    seed = serializers.SerializerMethodField()

    class Meta:
        model = GroupDraw
        fields = ["id", "name", "groups", "opens_at", "closes_at", "status", "commitment", "seed", "prizes",
                  "opened_at", "closed_at", "revealed_at", "created_at"]

    def get_seed(self, draw: GroupDraw) -> str | None:
        return draw.seed_hex if draw.status == GroupDraw.Status.REVEALED else None


class EntryOutput(serializers.ModelSerializer):
    class Meta:
        model = GroupDrawEntry
        fields = ["id", "contact", "external_userid", "created_at"]


class WinnerOutput(serializers.ModelSerializer):
    external_userid = serializers.CharField(source="entry.external_userid")

    class Meta:
        model = GroupDrawWinner
        fields = ["rank", "external_userid", "prize", "status", "reason", "fulfilled_at"]


def _get(draw_id: int) -> GroupDraw:
    draw = GroupDraw.objects.prefetch_related("prizes", "groups").filter(pk=draw_id).first()
    if draw is None:
        raise NotFound(_("No such draw."), code="unknown_draw", field="draw")
    return draw


class DrawListApi(APIView):
    permission_classes = [HasStaffPerms]
    required_perms = {"GET": VIEW, "POST": ADD}

    @extend_schema(responses=DrawOutput(many=True), tags=["draws"])
    def get(self, request: Request) -> Response:
        draws = GroupDraw.objects.prefetch_related("prizes", "groups")[:200]
        return Response(DrawOutput(draws, many=True).data)

    @extend_schema(request=DrawInput, responses={201: DrawOutput}, tags=["draws"])
    def post(self, request: Request) -> Response:
        data = DrawInput(data=request.data)
        data.is_valid(raise_exception=True)
        draw = svc.draw_create(**data.validated_data, user=request.user)
        return Response(DrawOutput(_get(draw.pk)).data, status=status.HTTP_201_CREATED)


class DrawDetailApi(APIView):
    permission_classes = [HasStaffPerms]
    required_perms = {"GET": VIEW}

    @extend_schema(responses=DrawOutput, tags=["draws"])
    def get(self, request: Request, draw_id: int) -> Response:
        return Response(DrawOutput(_get(draw_id)).data)


class DrawEntriesApi(APIView):
    permission_classes = [HasStaffPerms]
    required_perms = {"GET": VIEW}

    @extend_schema(responses=EntryOutput(many=True), tags=["draws"])
    def get(self, request: Request, draw_id: int) -> Response:
        draw = _get(draw_id)
        return Response({"entries": EntryOutput(draw.entries.all(), many=True).data,
                         "winners": WinnerOutput(draw.winners.select_related("entry"), many=True).data})


def _action(operation):
    class DrawActionApi(APIView):
        permission_classes = [HasStaffPerms]
        required_perms = {"POST": CHANGE}

        @extend_schema(request=None, responses=DrawOutput, tags=["draws"], operation_id=f"draw_{operation}")
        def post(self, request: Request, draw_id: int) -> Response:
            getattr(svc, f"draw_{operation}")(draw_id)
            return Response(DrawOutput(_get(draw_id)).data)

    DrawActionApi.__name__ = f"Draw{operation.title()}Api"
    return DrawActionApi


# --- customer pages ----------------------------------------------------------------------------------------


def _entry(request: HttpRequest, draw_id: int, contact_id: int) -> HttpResponse:
    """GET: the draw, its commitment and an Enter button; POST: enter once (a second tap shows the entry)."""
    try:
        draw = _get(draw_id)
        entry = draw.entries.filter(contact_id=contact_id).first()
        if request.method == "POST" and entry is None:
            entry = svc.draw_enter(draw_id, contact_id)
    except ApplicationError as exc:
        return _error(request, exc, "crm/customer_error.html")
    if _wants_json(request):
        return JsonResponse({"draw": draw.pk, "status": draw.status, "commitment": draw.commitment,
                             "entered": entry is not None})
    return render(request, "crm/draws_entry.html", {"draw": draw, "entry": entry})


@csrf_exempt  # the signed token in the URL is the credential
@require_http_methods(["GET", "POST"])
@never_cache
@throttle_page("draw")
def draw_entry_page(request: HttpRequest, draw_id: int, token: str) -> HttpResponse:
    try:
        contact_id = unsign_contact(token, f"groupdraw:{int(draw_id)}")
    except ApplicationError as exc:
        return _error(request, exc, "crm/customer_error.html")
    return _entry(request, draw_id, contact_id)


@csrf_exempt  # checked in shared_identity: the session (WeChat OAuth's identity) is the credential here
@require_http_methods(["GET", "POST"])
@never_cache
@throttle_page("draw", visitor=session_visitor)
def shared_draw_entry_page(request: HttpRequest, draw_id: int) -> HttpResponse:
    """The same link for every group member (posted in the group): WeChat OAuth says who is entering."""
    if not GroupDraw.objects.filter(pk=draw_id).exists():
        return _error(request, NotFound(_("No such draw."), code="unknown_draw", field="draw"),
                      "crm/customer_error.html")
    contact_id, response = shared_identity(request, "draw")  # the lucky-draw purpose of wechat_oauth
    return response or _entry(request, draw_id, contact_id)


@require_GET
@throttle_page("draw", visitor=no_visitor)
def draw_verify_page(request: HttpRequest, draw_id: int) -> HttpResponse:
    """Public: commitment, seed, sorted entries, recomputed winners and whether they match what was published."""
    data = draw_export(draw_id)
    if data is None:
        exc = ApplicationError(_("This draw has not been revealed yet."), code="not_revealed", field="draw",
                               status_code=404)
        return _error(request, exc, "crm/customer_error.html")
    result = svc.draw_verify_export(data)
    if _wants_json(request):
        return JsonResponse({**data, "recomputed": result["recomputed"], "matches": result["matches"]})
    return render(request, "crm/draws_verify.html", {"data": data, "result": result,
                  "rows": list(zip_longest(data["winners"], result["recomputed"]))})


urlpatterns = [
    path("api/draws/", DrawListApi.as_view(), name="api-draws"),
    path("api/draws/<int:draw_id>/", DrawDetailApi.as_view(), name="api-draw"),
    path("api/draws/<int:draw_id>/entries/", DrawEntriesApi.as_view(), name="api-draw-entries"),
    *[path(f"api/draws/<int:draw_id>/{op}/", _action(op).as_view(), name=f"api-draw-{op}")
      for op in ("open", "close", "reveal")],
    path("m/groupdraw/<int:draw_id>/", shared_draw_entry_page, name="group-draw-shared-entry"),
    path("m/groupdraw/<int:draw_id>/verify/", draw_verify_page, name="group-draw-verify"),
    path("m/groupdraw/<int:draw_id>/<str:token>/", draw_entry_page, name="group-draw-entry"),
]
