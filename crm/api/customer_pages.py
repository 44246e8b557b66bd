"""Customer-facing pages under /m/: the red-packet claim page.

The signed token in the URL identifies the customer and the pool (it stands in for WeChat OAuth), so the form
is csrf-exempt: there is no session to ride, and the token is the credential. Plain HTML, no JS needed; JSON
when the request asks for it (Accept: application/json or ?format=json).
"""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.urls import path
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_http_methods

from crm.errors import ApplicationError
from crm.models import Contact, LuckyDraw, LuckyDrawEntry, RedPacketClaim, RedPacketPool
from crm.services.campaigns import lucky_draw_play, parse_draw_token
from crm.services.redpackets import parse_claim_token, redpacket_claim

MESSAGES = {
    "claimed": gettext_lazy("You got a red packet!"),
    "already_claimed": gettext_lazy("You have already claimed this red packet."),
    "none_left": gettext_lazy("Sorry, all red packets have been claimed."),
    "expired": gettext_lazy("Sorry, this red packet has expired."),
    "not_started": gettext_lazy("This red packet is not open yet."),
}


def _wants_json(request: HttpRequest) -> bool:
    return request.GET.get("format") == "json" or "application/json" in request.headers.get("Accept", "")


def _yuan(fen: int) -> str:
    return f"{fen // 100}.{fen % 100:02d}"


def _error(request: HttpRequest, exc: ApplicationError) -> HttpResponse:
    if _wants_json(request):
        body = {"error": {"code": exc.code, "message": exc.message, "field": exc.field}}
        return JsonResponse(body, status=exc.status_code)
    return render(request, "crm/redpacket_error.html", {"message": exc.message}, status=exc.status_code)


@csrf_exempt
@require_http_methods(["GET", "POST"])
def redpacket_page(request: HttpRequest, token: str) -> HttpResponse:
    try:
        pool_id, contact_id = parse_claim_token(token)
        pool = RedPacketPool.objects.select_related("campaign").filter(id=pool_id).first()
        contact = Contact.objects.filter(id=contact_id).first()
        if pool is None or contact is None:
            raise ApplicationError(_("This red packet does not exist."), code="not_found", status_code=404)
        if request.method == "POST":
            outcome = redpacket_claim(pool_id=pool_id, contact_id=contact_id)
            status, amount = outcome.status, outcome.amount_fen
        else:
            existing = RedPacketClaim.objects.filter(pool=pool, contact=contact).first()
            if existing:
                status, amount = "already_claimed", existing.amount_fen
            elif pool.status == RedPacketPool.Status.DRAFT:
                status, amount = "not_started", 0
            elif pool.status != RedPacketPool.Status.ACTIVE or pool.expires_at <= timezone.now():
                status, amount = "expired", 0
            else:
                status, amount = "open", 0
    except ApplicationError as exc:
        return _error(request, exc)
    campaign = pool.campaign
    if _wants_json(request):
        return JsonResponse(
            {
                "status": status,
                "message": str(MESSAGES.get(status, "")),
                "amount_fen": amount,
                "pool_id": pool.id,
                "campaign": campaign.name if campaign else "",
                "expires_at": pool.expires_at.isoformat(),
            }
        )
    context = {
        "status": status,
        "message": MESSAGES.get(status, ""),
        "amount_yuan": _yuan(amount),
        "amount_fen": amount,
        "pool": pool,
        "campaign": campaign,
        "contact": contact,
        "expires_at": timezone.localtime(pool.expires_at),
    }
    return render(request, "crm/redpacket.html", context)


@csrf_exempt
@require_http_methods(["GET", "POST"])
def lucky_draw_page(request: HttpRequest, token: str) -> HttpResponse:
    """GET: the draw and a Draw button; POST: draws once (a second POST shows the first result)."""
    try:
        draw_id, contact_id = parse_draw_token(token)
        draw = LuckyDraw.objects.select_related("campaign").filter(id=draw_id).first()
        if draw is None or not Contact.objects.filter(id=contact_id).exists():
            raise ApplicationError(_("This lucky draw does not exist."), code="not_found", status_code=404)
        if draw.campaign.status == draw.campaign.Status.CANCELLED:
            raise ApplicationError(_("This lucky draw has ended."), code="ended", status_code=410)
        if request.method == "POST":
            entry = lucky_draw_play(draw_id=draw.id, contact_id=contact_id)
        else:
            entry = LuckyDrawEntry.objects.filter(draw=draw, contact_id=contact_id).first()
    except ApplicationError as exc:
        return _error(request, exc)
    status = "open" if entry is None else ("won" if entry.prize else "no_prize")
    if _wants_json(request):
        return JsonResponse({"status": status, "prize": entry.prize if entry else "", "draw_id": draw.id,
                             "campaign": draw.campaign.name})
    return render(request, "crm/lucky_draw.html", {"status": status, "entry": entry, "draw": draw})


urlpatterns = [
    path("m/rp/<str:token>/", redpacket_page, name="redpacket-page"),
    path("m/draw/<str:token>/", lucky_draw_page, name="lucky-draw-page"),
]
