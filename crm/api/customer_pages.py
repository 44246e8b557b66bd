"""Customer-facing pages under /m/: the red-packet claim page, the lucky draw, and WeChat OAuth's callback.

Two ways in, to the same page:
- a signed link (`/m/rp/<token>/`, `/m/draw/<token>/`): the token in the URL identifies the customer and the pool,
  so the form is csrf-exempt (the token is the credential). Always accepted (settings.CUSTOMER_LINKS = "signed" sends
  only these; older messages carry them too).
- the same link for everyone (`/m/pool/<id>/`, `/m/luckydraw/<id>/`): the visitor identified by WeChat's web OAuth
  and kept in the session (crm/services/wechat_oauth.py); without an identity the page sends them through OAuth and
  back. The session is the credential there, so a POST must carry the CSRF token the page rendered.
Plain HTML, no JS needed; JSON when the request asks for it (Accept: application/json or ?format=json).
"""

from __future__ import annotations

import json
import math

from django.http import HttpRequest, HttpResponse, HttpResponseRedirect, JsonResponse
from django.middleware.csrf import CsrfViewMiddleware
from django.shortcuts import render
from django.urls import path
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_http_methods

from crm.api.throttles import PAGE_VIEW, claim_throttle, no_visitor, session_visitor, throttle_page
from crm.errors import ApplicationError
from crm.models import Contact, LuckyDraw, LuckyDrawEntry, RedPacketClaim, RedPacketPool
from crm.selectors.campaigns import campaign_reached
from crm.services import wechat_oauth
from crm.services.campaigns import lucky_draw_play, parse_draw_token
from crm.services.fission import fission_invite, fission_progress
from crm.services.game_gate import game_finish, game_start
from crm.services.gates import gate_progress
from crm.services.redpackets import parse_claim_token, redpacket_claim, redpacket_claim_refusal

MESSAGES = {
    "claimed": gettext_lazy("You got a red packet!"),
    "already_claimed": gettext_lazy("You have already claimed this red packet."),
    "none_left": gettext_lazy("Sorry, all red packets have been claimed."),
    "expired": gettext_lazy("Sorry, this red packet has expired."),
    "not_started": gettext_lazy("This red packet is not open yet."),
    "not_eligible": gettext_lazy("Sorry, this red packet is for other customers."),
    "locked": gettext_lazy("Invite friends to add us with your QR code below to unlock your red packet."),
}
# A gated pool's page says what is left to do (gate_progress), one line per gate.
GATE_LOCKED = gettext_lazy("Complete the tasks below to unlock your red packet.")


def _wants_json(request: HttpRequest) -> bool:
    return request.GET.get("format") == "json" or "application/json" in request.headers.get("Accept", "")


def _yuan(fen: int) -> str:
    return f"{fen // 100}.{fen % 100:02d}"


def _error(request: HttpRequest, exc: ApplicationError, template: str = "crm/redpacket_error.html") -> HttpResponse:
    if _wants_json(request):
        body = {"error": {"code": exc.code, "message": exc.message, "field": exc.field}}
        return JsonResponse(body, status=exc.status_code)
    retry = (exc.details or {}).get("next", "") if isinstance(exc.details, dict) else ""
    return render(request, template, {"message": exc.message, "code": exc.code, "retry_url": retry},
                  status=exc.status_code)


# --- identity: a signed token, else the session OAuth filled, else off to OAuth ----------------------------


def to_oauth(request: HttpRequest, purpose: str) -> HttpResponse:
    """Send a visitor without an identity through WeChat OAuth and back to this page (as a GET: a POST's form is
    shown again, to be tapped once they are known). JSON callers get 401 with the URL to open."""
    url = wechat_oauth.oauth_start(request, purpose=purpose, next_path=request.path)
    if _wants_json(request):
        body = {"error": {"code": "identify", "message": str(_("Open this page in WeChat to continue.")),
                          "field": None, "details": {"authorize_url": url}}}
        return JsonResponse(body, status=401)
    return HttpResponseRedirect(url, status=303 if request.method == "POST" else 302)


def csrf_refusal(request: HttpRequest) -> HttpResponse | None:
    """Django's CSRF check for a POST whose credential is the session cookie (the view itself is csrf-exempt so that
    signed links, whose token is the credential, need none); a 403 page when it fails."""
    if CsrfViewMiddleware(lambda r: HttpResponse()).process_view(request, None, (), {}) is None:
        return None
    exc = ApplicationError(_("This page has expired. Please reload it and try again."), code="csrf", status_code=403)
    return _error(request, exc)


def shared_identity(request: HttpRequest, purpose: str) -> tuple[int | None, HttpResponse | None]:
    """(contact id, None) for a known visitor, or (None, the response to answer with)."""
    contact_id = wechat_oauth.session_contact(request, purpose)
    if contact_id is None:
        return None, to_oauth(request, purpose)
    if request.method == "POST":
        refusal = csrf_refusal(request)
        if refusal is not None:
            return None, refusal
    return contact_id, None


# --- red packet ----------------------------------------------------------------------------------------------


def _throttled(request: HttpRequest, wait: float | None) -> HttpResponse:
    """429 with Retry-After: this visitor (or this IP) claimed too often; nothing was reserved."""
    exc = ApplicationError(_("Too many attempts. Please wait a minute and try again."), code="throttled",
                           status_code=429)
    response = _error(request, exc)
    if wait is not None:
        response["Retry-After"] = str(max(1, math.ceil(wait)))
    return response


def _redpacket(request: HttpRequest, pool_id: int, contact_id: int) -> HttpResponse:
    if request.method == "POST":  # counted before any database work: a refused burst costs one Redis call
        allowed, wait = claim_throttle(request, contact_id)
        if not allowed:
            return _throttled(request, wait)
    try:
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
                status, amount = redpacket_claim_refusal(pool, contact.id) or "open", 0
        friends_left = status == "locked" and not fission_progress(pool, contact.id)["unlocked"]
        invite = fission_invite(pool.id, contact.id) if pool.gate_friends and friends_left else None
        progress = fission_progress(pool, contact.id) if pool.gate_friends else None
        gates = gate_progress(pool, contact.id)
    except ApplicationError as exc:
        return _error(request, exc)
    message = MESSAGES.get(status, "")
    if status == "locked" and any(g["gate"] != "friends" for g in gates):
        message = GATE_LOCKED
    if request.method == "POST" and status == "locked":
        # A claim before the gates are passed: refused with which ones (the page below lists them again).
        left = [g["gate"] for g in gates if not g["done"]]
        if _wants_json(request):
            return JsonResponse({"error": {"code": "gate_incomplete", "message": str(message), "field": "gate",
                                           "details": {"gates": left, "progress": gates}}}, status=403)  # fmt: skip
    campaign = pool.campaign
    if _wants_json(request):
        return JsonResponse(
            {
                "status": status,
                "message": str(message),
                "amount_fen": amount,
                "pool_id": pool.id,
                "contact_id": contact.id,
                "campaign": campaign.name if campaign else "",
                "expires_at": pool.expires_at.isoformat(),
                "invite": {**progress, "qr_code": invite.qr_code if invite else ""} if progress else None,
                "gates": gates,
            }
        )
    context = {
        "progress": progress,
        "invite": invite,
        "status": status,
        "message": message,
        "gates": [{**g, **_gate_text(g)} for g in gates],
        # The game runs on the signed link's page (its token names the customer to the game's calls).
        "game_start_url": f"{request.path}game/start/" if pool.gate_game and request.path.startswith("/m/rp/") else "",
        "amount_yuan": _yuan(amount),
        "amount_fen": amount,
        "pool": pool,
        "campaign": campaign,
        "contact": contact,
        "expires_at": timezone.localtime(pool.expires_at),
    }
    http_status = 403 if request.method == "POST" and status == "locked" else 200
    return render(request, "crm/redpacket.html", context, status=http_status)


def _gate_text(gate: dict) -> dict:
    """The line the page shows for a gate ("spent ¥30.00 of ¥50.00")."""
    kind = gate["gate"]
    if kind == "game":
        text = _("Game played") if gate["done"] else _("Play the game below")
    elif kind == "purchase":
        text = _("Spent ¥%(spent)s of ¥%(needed)s") % {"spent": _yuan(min(gate["spent_fen"], gate["needed_fen"])),
                                                        "needed": _yuan(gate["needed_fen"])}  # fmt: skip
    elif kind == "staff":
        text = (_("Added our staff via %(channel)s") if gate["done"] else _("Add our staff via %(channel)s")) % {
            "channel": gate["channel"]}
    else:
        text = _("%(n)s of %(needed)s friends") % {"n": gate["friends"], "needed": gate["needed"]}
    return {"text": text}


def _game(request: HttpRequest, token: str, action: str) -> JsonResponse:
    """The mini-game gate's two calls from the page: start (a signed session) and result (verified)."""
    try:
        pool_id, contact_id = parse_claim_token(token)
        if action == "start":
            return JsonResponse(game_start(pool_id, contact_id))
        try:
            body = json.loads(request.body or b"{}")
        except ValueError:
            body = None
        if not isinstance(body, dict):
            raise ApplicationError(_("The request body must be a JSON object."), code="bad_json", field="body")
        session = game_finish(pool_id=pool_id, contact_id=contact_id, nonce=body.get("nonce"),
                              score=body.get("score"), sig=body.get("sig"))  # fmt: skip
    except ApplicationError as exc:
        return JsonResponse({"error": {"code": exc.code, "message": str(exc.message), "field": exc.field,
                                       "details": exc.details}}, status=exc.status_code)  # fmt: skip
    return JsonResponse({"status": "played", "score": session.score})


@csrf_exempt  # the signed token in the URL is the credential
@require_http_methods(["POST"])
@never_cache
@throttle_page("redpacket")
def game_start_view(request: HttpRequest, token: str) -> JsonResponse:
    return _game(request, token, "start")


@csrf_exempt  # the signed token in the URL is the credential
@require_http_methods(["POST"])
@never_cache
@throttle_page("redpacket")
def game_result_view(request: HttpRequest, token: str) -> JsonResponse:
    return _game(request, token, "result")


@csrf_exempt
@require_http_methods(["GET", "POST"])
@throttle_page("redpacket", methods=PAGE_VIEW)
def redpacket_page(request: HttpRequest, token: str) -> HttpResponse:
    try:
        pool_id, contact_id = parse_claim_token(token)
    except ApplicationError as exc:
        return _error(request, exc)
    return _redpacket(request, pool_id, contact_id)


@csrf_exempt  # checked in shared_identity: the session is the credential here
@require_http_methods(["GET", "POST"])
@never_cache
@throttle_page("redpacket", visitor=session_visitor, methods=PAGE_VIEW)
def pool_page(request: HttpRequest, pool_id: int) -> HttpResponse:
    """The same red-packet link for everyone: the visitor is who WeChat OAuth says."""
    found = RedPacketPool.objects.filter(id=pool_id).values_list("campaign_id", flat=True)
    if not found:
        return _error(request, ApplicationError(_("This red packet does not exist."), code="not_found",
                                                status_code=404))
    contact_id, response = shared_identity(request, "redpacket")
    if response is None and not campaign_reached(found[0], contact_id):
        response = _error(request, ApplicationError(
            _("This red packet was sent to other customers."), code="not_recipient", status_code=403))
    return response or _redpacket(request, pool_id, contact_id)


# --- lucky draw ----------------------------------------------------------------------------------------------


def _draw(request: HttpRequest, draw_id: int, contact_id: int) -> HttpResponse:
    """GET: the draw and a Draw button; POST: draws once (a second POST shows the first result)."""
    try:
        draw = LuckyDraw.objects.select_related("campaign").filter(id=draw_id).first()
        contact = Contact.objects.filter(id=contact_id).first()
        if draw is None or contact is None:
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
    return render(request, "crm/lucky_draw.html", {"status": status, "entry": entry, "draw": draw,
                                                   "contact": contact})


@csrf_exempt
@require_http_methods(["GET", "POST"])
@throttle_page("draw")
def lucky_draw_page(request: HttpRequest, token: str) -> HttpResponse:
    try:
        draw_id, contact_id = parse_draw_token(token)
    except ApplicationError as exc:
        return _error(request, exc)
    return _draw(request, draw_id, contact_id)


@csrf_exempt  # checked in shared_identity: the session is the credential here
@require_http_methods(["GET", "POST"])
@never_cache
@throttle_page("draw", visitor=session_visitor)
def shared_draw_page(request: HttpRequest, draw_id: int) -> HttpResponse:
    """The same lucky-draw link for everyone."""
    found = LuckyDraw.objects.filter(id=draw_id).values_list("campaign_id", flat=True)
    if not found:
        return _error(request, ApplicationError(_("This lucky draw does not exist."), code="not_found",
                                                status_code=404))
    contact_id, response = shared_identity(request, "draw")
    if response is None and not campaign_reached(found[0], contact_id):
        response = _error(request, ApplicationError(
            _("This lucky draw was sent to other customers."), code="not_recipient", status_code=403))
    return response or _draw(request, draw_id, contact_id)


# --- WeChat OAuth's redirect_uri -------------------------------------------------------------------------------


@require_GET
@never_cache
@throttle_page("oauth", visitor=no_visitor)
def oauth_callback(request: HttpRequest) -> HttpResponse:
    """WeChat sends the visitor here with ?code&state: identify them, then back to the page they opened."""
    ip = request.META.get("REMOTE_ADDR", "")
    if not wechat_oauth.callback_allowed(ip):
        exc = ApplicationError(_("Too many attempts. Please wait a minute and try again."), code="throttled",
                               status_code=429)
        return _error(request, exc, "crm/customer_error.html")
    try:
        next_path = wechat_oauth.oauth_callback(request, code=request.GET.get("code", ""),
                                                state=request.GET.get("state", ""))
    except ApplicationError as exc:
        if exc.status_code < 500:  # WeChat being down is not the visitor's fault
            wechat_oauth.callback_refused(ip)
        return _error(request, exc, "crm/customer_error.html")
    return HttpResponseRedirect(next_path)


urlpatterns = [
    path("m/oauth/callback/", oauth_callback, name="wechat-oauth-callback"),
    path("m/pool/<int:pool_id>/", pool_page, name="redpacket-pool-page"),
    path("m/luckydraw/<int:draw_id>/", shared_draw_page, name="lucky-draw-shared-page"),
    path("m/rp/<str:token>/", redpacket_page, name="redpacket-page"),
    path("m/rp/<str:token>/game/start/", game_start_view, name="redpacket-game-start"),
    path("m/rp/<str:token>/game/result/", game_result_view, name="redpacket-game-result"),
    path("m/draw/<str:token>/", lucky_draw_page, name="lucky-draw-page"),
]
