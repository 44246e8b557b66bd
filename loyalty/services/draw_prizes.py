"""Lucky-draw prizes loyalty fulfils for crm (crm cannot import loyalty, so these are registered as crm's draw
prize hooks from LoyaltyConfig.ready()). The winner's key, unique in crm, is also the coupon's / ledger row's
idempotency key here, so a re-run returns the first grant."""

from __future__ import annotations

from loyalty.models import Coupon, PointsLedger
from loyalty.services.cards import card_get_or_create
from loyalty.services.coupons import coupon_grant
from loyalty.services.points import points_credit


def draw_coupon_prize(prize, contact_id: int, idempotency_key: str) -> str:
    # A draw is marketing's, like a campaign: the campaign grant source (no loyalty migration for a new source).
    coupon, _created = coupon_grant(reward_id=prize.reward_id, idempotency_key=idempotency_key,
                                    source=Coupon.Source.CAMPAIGN, contact_id=contact_id)
    return coupon.code


def draw_points_prize(prize, contact_id: int, idempotency_key: str) -> str:
    card = card_get_or_create(contact_id)
    entry = points_credit(card_id=card.pk, delta=prize.points, kind=PointsLedger.Kind.ADJUST,
                          idempotency_key=idempotency_key, reason=f"lucky draw {prize.draw_id}")
    return str(entry.pk)


def register() -> None:
    from crm.services.draws import register_prize_hook

    register_prize_hook("coupon", draw_coupon_prize)
    register_prize_hook("points", draw_points_prize)
