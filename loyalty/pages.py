"""Customer-facing pages: the loyalty card with its rotating QR (opened from the welcome message link), and the
customer's own consent choices shown and changed on it.

Two ways in: the signed link `/m/card/<token>/`, and the same link for everyone `/m/card/` (customer_links.card_link),
where WeChat OAuth says whose card it is (crm/services/wechat_oauth.py, purpose "card"); that page then works on the
visitor's own signed token (QR refresh, consent), minted for them, so everything below stays token-based.

The consent form posts to /m/card/<token>/consent. Like the red-packet page it is csrf-exempt: the signed token
in the URL identifies the customer (it stands in for WeChat OAuth) and there is no session to ride. The same URL
answers JSON (GET: the state; POST: a change) when asked (Accept: application/json, ?format=json or a JSON body).
"""

from __future__ import annotations

import json

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.urls import path, reverse
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_http_methods

from crm.api.customer_pages import shared_identity
from crm.api.throttles import session_visitor, throttle_page
from crm.errors import ApplicationError, error_body
from crm.models import ConsentRecord, Contact
from crm.services.consent import consent_from_customer, consent_policy_version, consent_state
from crm.services.customer_links import sign_contact, unsign_contact
from loyalty import selectors
from loyalty.models import Card
from loyalty.qr import qr_svg, qr_token_mint, ttl_seconds
from loyalty.selectors_tiers import tier_progress
from loyalty.services import card_get_or_create

CARD_LINK_PURPOSE = "card"
# What the customer is asked, per purpose (the policy version is shown next to it).
CONSENT_TEXT = {
    ConsentRecord.Purpose.MARKETING: (
        gettext_lazy("Offers and campaign messages"),
        gettext_lazy("Staff may send you offers, red packets and lucky draws in WeCom."),
    ),
    ConsentRecord.Purpose.BEHAVIOUR: (
        gettext_lazy("Personalisation from your activity"),
        gettext_lazy("We may keep what you view and do in our mini program to tailor offers."),
    ),
}


def _card_for_token(token: str) -> Card:
    return card_get_or_create(unsign_contact(token, CARD_LINK_PURPOSE))


def _qr_payload(card: Card) -> dict:
    qr = qr_token_mint(card.number)
    return {
        "qr_token": qr.token,
        "expires_in": qr.expires_in(),
        "qr_svg": qr_svg(qr.token),
        "points_balance": card.points_balance,
        "tier": card.tier.name if card.tier else None,
        "is_vip": bool(card.tier and card.tier.is_vip),
    }


@require_GET
@never_cache
@throttle_page("card")
def card_page(request: HttpRequest, token: str) -> HttpResponse:
    try:
        card = _card_for_token(token)
    except ApplicationError as exc:
        return render(request, "loyalty/card_error.html", {"message": exc.message}, status=exc.status_code)
    return _card_response(request, card, token)


@require_GET
@never_cache
@throttle_page("card", visitor=session_visitor)
def shared_card_page(request: HttpRequest) -> HttpResponse:
    """The card link for everyone: the visitor's own card, once WeChat OAuth has said who they are."""
    contact_id, response = shared_identity(request, CARD_LINK_PURPOSE)
    if response is not None:
        return response
    if not Contact.objects.filter(pk=contact_id).exists():
        return render(request, "loyalty/card_error.html", {"message": _("This card does not exist.")}, status=404)
    return _card_response(request, card_get_or_create(contact_id), sign_contact(contact_id, CARD_LINK_PURPOSE))


def _card_response(request: HttpRequest, card: Card, token: str) -> HttpResponse:
    from loyalty.pages_mall import coupons_for_card, points_expiring  # the mall module imports this one

    progress = tier_progress(card)  # on the tier rules' basis and window, not lifetime points
    next_tier = progress.next_tier
    context = {
        "card": card,
        "contact": card.contact,
        "qr": _qr_payload(card),
        "ttl": ttl_seconds(),
        "next_tier": next_tier,
        "progress": progress,
        "ledger": selectors.card_ledger(card.pk, limit=5),
        "refresh_url": reverse("loyalty:card-qr", args=[token]),
        "consents": _consent_rows(card.contact_id),
        "consent_url": reverse("loyalty:card-consent", args=[token]),
        "policy_version": consent_policy_version(),
        # The points mall (loyalty/pages_mall.py): its link on the same signed token, the coupons held as QRs.
        "mall_url": reverse("loyalty:mall-page", args=[token]),
        "coupons": coupons_for_card(card),
        "expiring": points_expiring(card),
    }
    return render(request, "loyalty/card.html", context)


def _consent_rows(contact_id: int) -> list[dict]:
    state = consent_state(contact_id)
    return [
        {"purpose": purpose, "title": title, "text": text, **state[purpose]}
        for purpose, (title, text) in CONSENT_TEXT.items()
    ]


def _consent_json(contact_id: int) -> dict:
    state = consent_state(contact_id)
    for row in state.values():
        row["recorded_at"] = row["recorded_at"].isoformat() if row["recorded_at"] else None
    return {"policy_version": consent_policy_version(), "consents": state}


def _parse_bool(value, field: str) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value if value is not None else "").strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off"):
        return False
    raise ApplicationError(_("%(field)s must be true or false.") % {"field": field}, field=field)


def _consent_input(request: HttpRequest) -> dict:
    """The posted change: a JSON object, or the card page's form."""
    if request.content_type != "application/json":
        return request.POST.dict()
    try:
        data = json.loads(request.body or b"{}")
    except ValueError:
        raise ApplicationError(_("The body is not valid JSON."), field="body")
    if not isinstance(data, dict):
        raise ApplicationError(_("The body must be a JSON object."), field="body")
    return data


@csrf_exempt
@require_http_methods(["GET", "POST"])
@never_cache
@throttle_page("card")
def card_consent(request: HttpRequest, token: str) -> HttpResponse:
    """GET: the consent in force per purpose (JSON). POST purpose + granted (+ policy_version for a grant): one
    customer decision, recorded as the next version with source "card_page"; back to the card page, or JSON."""
    wants_json = (
        request.method == "GET"
        or request.GET.get("format") == "json"
        or request.content_type == "application/json"
        or "application/json" in request.headers.get("Accept", "")
    )
    try:
        contact_id = unsign_contact(token, CARD_LINK_PURPOSE)
        if request.method == "POST":
            data = _consent_input(request)
            purpose = str(data.get("purpose") or "")
            if not purpose:
                raise ApplicationError(_("purpose is required."), field="purpose")
            if "granted" not in data:
                raise ApplicationError(_("granted is required."), field="granted")
            consent_from_customer(
                contact_id=contact_id,
                purpose=purpose,
                granted=_parse_bool(data.get("granted"), "granted"),
                policy_version=str(data.get("policy_version") or ""),
            )
        elif not Contact.objects.filter(pk=contact_id).exists():
            raise ApplicationError(_("This card does not exist."), code="not_found", field="token", status_code=404)
    except ApplicationError as exc:
        if wants_json:
            return JsonResponse(error_body(exc.code, exc.message, exc.field), status=exc.status_code)
        return render(request, "loyalty/card_error.html", {"message": exc.message}, status=exc.status_code)
    if wants_json:
        return JsonResponse(_consent_json(contact_id))
    # 303: the browser reloads the card page with GET, showing the new state (a refresh does not re-post).
    return HttpResponse(status=303, headers={"Location": reverse("loyalty:card-page", args=[token]) + "#consent"})


@require_GET
@never_cache
@throttle_page("card", json=True)
def card_qr(request: HttpRequest, token: str) -> JsonResponse:
    """A fresh QR token for the card page (polled by its inline script): {qr_token, expires_in, qr_svg, ...}."""
    try:
        card = _card_for_token(token)
    except ApplicationError as exc:
        return JsonResponse(error_body(exc.code, exc.message, exc.field), status=exc.status_code)
    return JsonResponse(_qr_payload(card))


urlpatterns = [
    path("m/card/", shared_card_page, name="card-shared-page"),
    path("m/card/<str:token>/", card_page, name="card-page"),
    path("m/card/<str:token>/qr", card_qr, name="card-qr"),
    path("m/card/<str:token>/consent", card_consent, name="card-consent"),
]
