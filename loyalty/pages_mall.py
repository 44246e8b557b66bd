"""The points mall on the card page: browse the rewards this card may redeem, redeem one for points, and see the
coupons held (each a QR the till scans once) and "N points expire on D".

Identification is the card page's own (loyalty.pages): the signed token `/m/card/<token>/mall/`, minted per
visitor by the signed link or by the WeChat OAuth flow behind `/m/card/`; never a card id or number in the URL.
Unlike the consent form, the redeem POST is CSRF-protected (Django's middleware: the form carries the token, the
page sets the cookie), and it acts only on the card the signed token names."""

from __future__ import annotations

import re
import secrets

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import path, reverse
from django.utils import timezone
from django.utils.translation import gettext as _
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_POST

from crm.api.throttles import throttle_page
from crm.errors import ApplicationError
from loyalty.models import Card, Coupon, Reward
from loyalty.pages import _card_for_token
from loyalty.qr import qr_svg
from loyalty.services.rewards import redemption_create

_NONCE = re.compile(r"^[A-Za-z0-9_-]{16,64}$")


def rewards_for_card(card: Card) -> list[Reward]:
    """What the mall offers this card now: on offer, within validity, in stock, for its tier (or every tier)."""
    now = timezone.now()
    rewards = (
        Reward.objects.filter(is_active=True)
        .exclude(valid_from__gt=now)
        .exclude(valid_until__lte=now)
        .exclude(stock=0)
        .prefetch_related("eligible_tiers")
        .order_by("points_cost", "id")
    )
    out = []
    for reward in rewards:
        tiers = {t.pk for t in reward.eligible_tiers.all()}
        if not tiers or card.tier_id in tiers:
            out.append(reward)
    return out


def coupons_for_card(card: Card) -> list[dict]:
    """The card's coupons still usable (not redeemed, not expired), newest first, each with its QR."""
    now = timezone.now()
    coupons = (
        Coupon.objects.filter(card=card, redeemed_at__isnull=True)
        .exclude(expires_at__lte=now)
        .select_related("reward")
        .order_by("-id")
    )
    return [{"coupon": c, "qr_svg": qr_svg(c.code)} for c in coupons]


def points_expiring(card: Card):
    from loyalty.services.lots import points_expiring_next

    return points_expiring_next(card.pk)


def _mall_response(request: HttpRequest, card: Card, token: str, *, error: str = "", status: int = 200) -> HttpResponse:
    context = {
        "card": card,
        "token": token,
        "rewards": rewards_for_card(card),
        "coupons": coupons_for_card(card),
        "expiring": points_expiring(card),
        "nonce": secrets.token_urlsafe(18),
        "redeem_url": reverse("loyalty:mall-redeem", args=[token]),
        "card_url": reverse("loyalty:card-page", args=[token]),
        "error": error,
        "done": request.GET.get("done") == "1",
    }
    return render(request, "loyalty/mall/index.html", context, status=status)


@require_GET
@never_cache
@throttle_page("mall")
def mall_page(request: HttpRequest, token: str) -> HttpResponse:
    try:
        card = _card_for_token(token)
    except ApplicationError as exc:
        return render(request, "loyalty/card_error.html", {"message": exc.message}, status=exc.status_code)
    return _mall_response(request, card, token)


@require_POST
@never_cache
@throttle_page("mall")
def mall_redeem(request: HttpRequest, token: str) -> HttpResponse:
    """Redeem one reward for the signed card's points; the page's nonce (with the reward) keys the redemption, so
    a double tap or a resubmitted form redeems once. Refusal: the mall again with the reason, 4xx, nothing written."""
    try:
        card = _card_for_token(token)
    except ApplicationError as exc:
        return render(request, "loyalty/card_error.html", {"message": exc.message}, status=exc.status_code)
    try:
        nonce = request.POST.get("nonce", "")
        if not _NONCE.match(nonce):
            raise ApplicationError(_("This form has expired: please try again."), field="nonce")
        try:
            reward_id = int(request.POST.get("reward", ""))
        except ValueError:
            raise ApplicationError(_("Choose a reward."), field="reward")
        redemption_create(card_id=card.pk, reward_id=reward_id, idempotency_key=f"mall:{card.pk}:{nonce}:{reward_id}")
    except ApplicationError as exc:
        card.refresh_from_db()
        return _mall_response(request, card, token, error=_refusal_text(exc), status=exc.status_code)
    return HttpResponse(
        status=303, headers={"Location": reverse("loyalty:mall-page", args=[token]) + "?done=1#coupons"}
    )


def _refusal_text(exc: ApplicationError) -> str:
    """The customer's words for a refusal (the services' messages are written for staff)."""
    return {
        "insufficient_points": _("You do not have enough points for this reward."),
        "out_of_stock": _("Sorry, this reward is out of stock."),
        "over_customer_limit": _("You have reached the limit for this reward."),
        "tier_not_eligible": _("This reward is not available for your tier."),
        "outside_validity": _("This reward cannot be redeemed at this time."),
        "unknown_reward": _("This reward is no longer on offer."),
    }.get(exc.code, exc.message)


urlpatterns = [
    path("m/card/<str:token>/mall/", mall_page, name="mall-page"),
    path("m/card/<str:token>/mall/redeem", mall_redeem, name="mall-redeem"),
]
