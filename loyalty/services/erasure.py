"""Loyalty's part of a person's export and erasure (registered into crm.services.erasure from ready()).

Kept for money and the brand's accounting, anonymised by the contact row they point at: the card row, the points
ledger (append-only: every row's points stay), lots, purchases with their lines and totals, returns, redemptions,
coupons, tier changes and bonus grants. On erase the card gets a new random number (a printed card, a screenshot
of its QR or a throttle key no longer leads to the row), the remaining balance is forfeited by one ledger row
(balance == sum(ledger) holds), and coupons not redeemed yet are voided (they expire now)."""

from __future__ import annotations

from django.core.cache import cache
from django.db import IntegrityError, transaction

from crm.models import Contact
from crm.services.erasure import ErasureContext, ErasurePart, register_erasure_part
from loyalty.models import (
    CampaignCouponGrant,
    Card,
    Coupon,
    EarningBonusGrant,
    JourneyGrant,
    PointsLedger,
    PointsLot,
    Purchase,
    PurchaseReturn,
    Redemption,
    TierChange,
)
from loyalty.services.cards import card_number_generate
from loyalty.services.points import points_credit

FORFEIT_REASON = "forfeited at erasure"


def _iso(value):
    return value.isoformat() if hasattr(value, "isoformat") else value


def _rows(qs, *fields) -> list[dict]:
    return [{k: _iso(v) for k, v in row.items()} for row in qs.values(*fields)]


def loyalty_export(contact: Contact) -> dict:
    card = Card.objects.select_related("tier").filter(contact=contact).first()
    grants = {
        "bonus_grants": _rows(EarningBonusGrant.objects.filter(contact=contact).order_by("id"), "event", "period",
                              "points", "created_at"),
        "campaign_coupon_grants": _rows(CampaignCouponGrant.objects.filter(contact=contact).order_by("id"),
                                        "run_id", "status", "reason", "created_at"),
        "journey_grants": _rows(JourneyGrant.objects.filter(contact=contact).order_by("id"), "step__name", "status",
                                "reason", "created_at"),
    }
    if card is None:
        return {"card": None, **grants}
    purchases = []
    for purchase in Purchase.objects.filter(card=card).select_related("store").prefetch_related("lines").order_by(
            "id"):
        purchases.append({
            "store": purchase.store.code, "receipt_id": purchase.receipt_id, "amount_fen": purchase.amount_fen,
            "points": purchase.points, "scanned_at": _iso(purchase.scanned_at),
            "lines": [{"sku": line.sku, "name": line.name, "qty": line.qty, "amount_fen": line.amount_fen,
                       "points": line.points} for line in purchase.lines.all()],
        })
    return {
        "card": {"number": card.number, "tier": card.tier.name if card.tier else None,
                 "points_balance": card.points_balance, "lifetime_points": card.lifetime_points,
                 "created_at": _iso(card.created_at)},
        "points_ledger": _rows(PointsLedger.objects.filter(card=card).order_by("id"), "delta", "kind", "reason",
                               "balance_after", "created_at"),
        "points_lots": _rows(PointsLot.objects.filter(card=card).order_by("id"), "points", "remaining",
                             "expires_at"),
        "purchases": purchases,
        "returns": _rows(PurchaseReturn.objects.filter(purchase__card=card).order_by("id"), "store__code",
                         "return_id", "purchase__receipt_id", "amount_fen", "points_reversed", "created_at"),
        "redemptions": _rows(Redemption.objects.filter(card=card).order_by("id"), "reward__name", "points",
                             "created_at"),
        "coupons": _rows(Coupon.objects.filter(card=card).order_by("id"), "reward__name", "source", "issued_at",
                         "expires_at", "redeemed_at"),
        "tier_changes": _rows(TierChange.objects.filter(card=card).order_by("id"), "from_tier__name", "to_tier__name",
                              "reason", "created_at"),
        **grants,
    }


def loyalty_erase(ctx: ErasureContext) -> dict:
    card = Card.objects.select_for_update().filter(contact=ctx.contact).first()
    if card is None:
        return {"card": False}
    out = {"card": True, "points_forfeited": 0}
    if card.points_balance > 0:
        # One ledger row, not an edit: the ledger keeps every row it had; no tier evaluation (it would message
        # the person about leaving a tier).
        points_credit(card_id=card.pk, delta=-card.points_balance, kind=PointsLedger.Kind.ADJUST,
                      idempotency_key=f"erase:{card.pk}", reason=FORFEIT_REASON)
        out["points_forfeited"] = card.points_balance
    out["coupons_voided"] = Coupon.objects.filter(card=card, redeemed_at__isnull=True).update(expires_at=ctx.now)
    for _attempt in range(5):
        try:
            with transaction.atomic():
                Card.objects.filter(pk=card.pk).update(number=card_number_generate(), tier_below_since=None)
            break
        except IntegrityError:  # the new random number was taken: draw again
            continue
    out["ledger_rows_kept"] = PointsLedger.objects.filter(card=card).count()
    out["purchases_kept"] = Purchase.objects.filter(card=card).count()
    return out


def loyalty_redis_keys(contact: Contact) -> tuple[list[str], list[str]]:
    number = Card.objects.filter(contact=contact).values_list("number", flat=True).first()
    if not number:
        return [], []
    # The till's per-card throttle (loyalty.api.CardThrottle) and the card's used QR nonces (loyalty.qr).
    return ([cache.make_key(f"throttle_loyalty_card_{number}:window")],
            [cache.make_key(f"loyalty:qr-nonce:{number}:*")])


def register() -> None:
    register_erasure_part(ErasurePart(key="loyalty", export=loyalty_export, erase=loyalty_erase,
                                      redis_keys=loyalty_redis_keys))
