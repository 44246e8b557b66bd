"""Customer-facing pages: the loyalty card with its rotating QR (opened from the welcome message link)."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.urls import path, reverse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from crm.errors import ApplicationError, error_body
from crm.services.customer_links import unsign_contact
from loyalty import selectors
from loyalty.models import Card
from loyalty.qr import qr_svg, qr_token_mint, ttl_seconds
from loyalty.services import card_get_or_create

CARD_LINK_PURPOSE = "card"


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
def card_page(request: HttpRequest, token: str) -> HttpResponse:
    try:
        card = _card_for_token(token)
    except ApplicationError as exc:
        return render(request, "loyalty/card_error.html", {"message": exc.message}, status=exc.status_code)
    next_tier = selectors.tier_next(card)
    context = {
        "card": card,
        "contact": card.contact,
        "qr": _qr_payload(card),
        "ttl": ttl_seconds(),
        "next_tier": next_tier,
        "points_to_next": (next_tier.min_points - card.lifetime_points) if next_tier else None,
        "ledger": selectors.card_ledger(card.pk, limit=5),
        "refresh_url": reverse("loyalty:card-qr", args=[token]),
    }
    return render(request, "loyalty/card.html", context)


@require_GET
@never_cache
def card_qr(request: HttpRequest, token: str) -> JsonResponse:
    """A fresh QR token for the card page (polled by its inline script): {qr_token, expires_in, qr_svg, ...}."""
    try:
        card = _card_for_token(token)
    except ApplicationError as exc:
        return JsonResponse(error_body(exc.code, exc.message, exc.field), status=exc.status_code)
    return JsonResponse(_qr_payload(card))


urlpatterns = [
    path("m/card/<str:token>/", card_page, name="card-page"),
    path("m/card/<str:token>/qr", card_qr, name="card-qr"),
]
