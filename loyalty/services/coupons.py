"""Coupons: issuing the single-use code a redemption or a grant gives, granting without points, and the till's
one-time redeem of the code scanned from the card page's QR.

Refusals carry reason codes (the API's `error.code`); every check runs before anything is written, and each
operation is one transaction, so a refusal leaves nothing behind."""

from __future__ import annotations

import secrets
from datetime import datetime, timedelta

from django.contrib.auth.models import AbstractBaseUser
from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone
from django.utils.translation import gettext as _

from crm.errors import ApplicationError, Conflict, NotFound
from loyalty.models import Card, Coupon, Redemption, Reward, Store
from loyalty.scoping import store_check_user

# No 0/O/1/I/L: a cashier may have to type it. 16 of 31 symbols is ~79 bits: not guessable, never enumerable.
CODE_ALPHABET = "23456789ABCDEFGHJKMNPQRSTUVWXYZ"
CODE_LENGTH = 16
GRANT_SOURCES = (Coupon.Source.CAMPAIGN, Coupon.Source.JOURNEY, Coupon.Source.CONSOLE)


def coupon_code_new() -> str:
    return "".join(secrets.choice(CODE_ALPHABET) for _ in range(CODE_LENGTH))


def reward_refusal(reward: Reward, card: Card, *, now: datetime, check_tier_and_limit: bool = True):
    """Why `card` may not have `reward` now: (reason code, message), or None. Stock is checked by the conditional
    UPDATE that takes it (reward_stock_take), so two redemptions of the last one cannot both pass."""
    if not reward.is_active:
        return "unknown_reward", _("This reward is not on offer.")
    if (reward.valid_from and now < reward.valid_from) or (reward.valid_until and now >= reward.valid_until):
        return "outside_validity", _("This reward cannot be redeemed at this time.")
    if reward.stock is not None and reward.stock < 1:
        return "out_of_stock", _("This reward is out of stock.")
    if not check_tier_and_limit:
        return None
    tier_ids = {t.pk for t in reward.eligible_tiers.all()}
    if tier_ids and card.tier_id not in tier_ids:
        return "tier_not_eligible", _("This reward is for other tiers.")
    if reward.per_customer_limit is not None:
        # The card row is locked by the caller, so this count cannot race another redemption by the same card.
        taken = Coupon.objects.filter(card=card, reward=reward).count()
        if taken >= reward.per_customer_limit:
            return "over_customer_limit", _(
                "You have already redeemed this reward %(n)d time(s), the most allowed."
            ) % {"n": reward.per_customer_limit}
    return None


def refuse(reason) -> None:
    if reason is None:
        return
    code, message = reason
    if code in ("out_of_stock", "over_customer_limit"):
        raise Conflict(message, code=code, field="reward")
    status = 404 if code == "unknown_reward" else 400
    raise ApplicationError(message, code=code, field="reward", status_code=status)


def reward_stock_take(reward: Reward) -> None:
    """Take one from stock with a conditional UPDATE (stock >= 1): the row lock it takes serialises the last unit."""
    if reward.stock is None:
        return
    if not Reward.objects.filter(pk=reward.pk, stock__gte=1).update(stock=F("stock") - 1):
        raise Conflict(_("This reward is out of stock."), code="out_of_stock", field="reward")


def coupon_expiry(reward: Reward, issued_at: datetime) -> datetime | None:
    ends = [
        d
        for d in (reward.valid_until, issued_at + timedelta(days=reward.valid_days) if reward.valid_days else None)
        if d
    ]
    return min(ends) if ends else None


def coupon_issue(
    *, card: Card, reward: Reward, source: str, idempotency_key: str, redemption: Redemption | None = None
) -> Coupon:
    """Write the coupon with a fresh code (inside the caller's transaction). A code collision (vanishingly rare)
    draws again; the idempotency key's constraint is the caller's to handle."""
    now = timezone.now()
    for _attempt in range(3):
        try:
            with transaction.atomic():
                return Coupon.objects.create(
                    reward=reward,
                    card=card,
                    redemption=redemption,
                    code=coupon_code_new(),
                    source=source,
                    idempotency_key=idempotency_key,
                    expires_at=coupon_expiry(reward, now),
                )
        except IntegrityError:
            if Coupon.objects.filter(idempotency_key=idempotency_key).exists():
                raise
    raise RuntimeError("could not draw a unique coupon code")


@transaction.atomic
def coupon_grant(
    *,
    reward_id: int,
    idempotency_key: str,
    source: str,
    card_id: int | None = None,
    contact_id: int | None = None,
) -> tuple[Coupon, bool]:
    """Grant a coupon without points (a campaign or a journey): (coupon, created). The key, one per (source,
    contact) e.g. f"campaign:{run_id}:{contact_id}", makes a repeat return the first coupon. Validity and stock
    apply; eligible tiers and the per-customer limit do not (the campaign chose its audience)."""
    from loyalty.services.cards import card_get_or_create

    if source not in GRANT_SOURCES:
        raise ApplicationError(_("Unknown grant source."), field="source")
    if not idempotency_key or len(idempotency_key) > 160:
        raise ApplicationError(_("idempotency_key is required (at most 160 characters)."), field="idempotency_key")
    if card_id is None and contact_id is None:
        raise ApplicationError(_("Give card_id or contact_id."), field="card")
    if card_id is None:
        card_id = card_get_or_create(contact_id).pk
    card = Card.objects.select_for_update().filter(pk=card_id).first()
    if card is None:
        raise NotFound(_("No such card."), field="card")
    existing = Coupon.objects.filter(idempotency_key=idempotency_key).first()
    if existing:
        if (existing.card_id, existing.reward_id) != (card.pk, reward_id):
            raise Conflict(_("This idempotency key was already used for another grant."), field="idempotency_key")
        return existing, False
    reward = Reward.objects.filter(pk=reward_id).first()
    if reward is None:
        raise NotFound(_("No such reward."), code="unknown_reward", field="reward")
    refuse(reward_refusal(reward, card, now=timezone.now(), check_tier_and_limit=False))
    reward_stock_take(reward)
    return coupon_issue(card=card, reward=reward, source=source, idempotency_key=idempotency_key), True


def coupon_grant_recorded(
    record_model, *, contact_id: int, reward_id: int, idempotency_key: str, source: str, **record
) -> str:
    """Grant one coupon and write its record row (a campaign's or a journey step's grant, unique per recipient) in
    one transaction; a refusal (out of stock, outside validity) is written on the record row instead of raised.
    Returns 'granted', the refusal's reason code, or 'taken' when a parallel grant got there first."""
    try:
        with transaction.atomic():
            coupon, _created = coupon_grant(
                contact_id=contact_id, reward_id=reward_id, idempotency_key=idempotency_key, source=source
            )
            record_model.objects.create(contact_id=contact_id, coupon=coupon, status="granted", **record)
        return "granted"
    except IntegrityError:
        return "taken"  # the coupon key or the record row is unique: another grant did this recipient
    except ApplicationError as exc:
        reason = exc.code if exc.code != "invalid" else "refused"
    try:
        with transaction.atomic():
            record_model.objects.create(contact_id=contact_id, status="refused", reason=reason[:32], **record)
    except IntegrityError:
        return "taken"
    return reason


@transaction.atomic
def coupon_redeem(*, code: str, store_code: str, user: AbstractBaseUser | None = None) -> Coupon:
    """The till scans the coupon's QR: mark it used, once. Used -> 409 coupon_redeemed; expired -> 410."""
    store = Store.objects.filter(code=store_code).first() if isinstance(store_code, str) and store_code else None
    if store is None:
        raise ApplicationError(_("Unknown store."), code="store_unknown", field="store")
    store_check_user(store, user if user is not None and user.is_authenticated else None)
    code = (code or "").strip().upper()
    coupon = Coupon.objects.select_for_update(of=("self",)).filter(code=code).select_related("reward", "card").first()
    if coupon is None:
        raise NotFound(_("No such coupon."), code="coupon_unknown", field="code")
    if coupon.redeemed_at is not None:
        raise Conflict(_("This coupon has already been used."), code="coupon_redeemed", field="code")
    now = timezone.now()
    if coupon.expires_at is not None and now >= coupon.expires_at:
        raise ApplicationError(_("This coupon has expired."), code="coupon_expired", field="code", status_code=410)
    coupon.redeemed_at = now
    coupon.redeemed_store = store
    coupon.redeemed_by = user if user is not None and user.is_authenticated else None
    coupon.save(update_fields=["redeemed_at", "redeemed_store", "redeemed_by"])
    return coupon
