"""Velocity rules for till scans, and the review queue they feed (loyalty.models.ScanReview).

A credited scan is checked after it is recorded; a flag never refuses the scan (the customer is at the till), it
puts the scan in the review queue, where a reviewer approves it or reverses its points. Rules (settings):
- card_burst: LOYALTY_VELOCITY_CARD_SCANS or more scans of one card (any store) within
  LOYALTY_VELOCITY_WINDOW_MINUTES;
- amount_over_max: the receipt above LOYALTY_VELOCITY_MAX_AMOUNT_FEN (an absolute ceiling, any store);
- amount_over_store_p99: the receipt above the store's own p99 of its last LOYALTY_VELOCITY_SAMPLE receipts, once
  it has at least LOYALTY_VELOCITY_MIN_SAMPLE (a new store has no "usual range" yet). The percentile is cached
  in Redis for LOYALTY_VELOCITY_P99_CACHE_SECONDS, so a scan costs one cache read, not a scan of the store.
"""

from __future__ import annotations

import math
from datetime import timedelta

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.core.cache import cache
from django.db import connection, transaction
from django.utils import timezone

from crm.errors import ApplicationError, NotFound
from loyalty.models import Card, PointsLedger, Purchase, ScanReview
from loyalty.services.points import points_credit
from loyalty.services.returns import points_left_to_reverse

MISSING = object()


def store_p99_key(store_id: int) -> str:
    return f"loyalty:store-p99:{store_id}"


def store_amount_p99(store_id: int, cached=MISSING) -> int | None:
    """The store's p99 receipt amount (fen) over its recent receipts, or None with too few of them. `cached`:
    what cache.get(store_p99_key) answered, when the caller already read it (the till, in its throttle call)."""
    key = store_p99_key(store_id)
    if cached is MISSING:
        cached = cache.get(key)
    if cached is not None:
        return cached or None  # 0 caches "too few receipts"
    amounts = sorted(
        Purchase.objects.filter(store_id=store_id)
        .order_by("-id")
        .values_list("amount_fen", flat=True)[: settings.LOYALTY_VELOCITY_SAMPLE]
    )
    value = 0
    if len(amounts) >= settings.LOYALTY_VELOCITY_MIN_SAMPLE:
        value = amounts[math.ceil(0.99 * len(amounts)) - 1]
    cache.set(key, value, timeout=settings.LOYALTY_VELOCITY_P99_CACHE_SECONDS)
    return value or None


_COUNT_SQL: dict[str, str] = {}


def velocity_count_sql() -> str:
    """Purchase.objects.filter(card_id=, scanned_at__gte=).count(), compiled once: every scan asks."""
    sql = _COUNT_SQL.get(connection.vendor)
    if sql is None:
        qn = connection.ops.quote_name
        sql = _COUNT_SQL[connection.vendor] = (
            f"SELECT COUNT(*) FROM {qn(Purchase._meta.db_table)} WHERE {qn('card_id')} = %s"  # noqa: S608
            f" AND {qn('scanned_at')} >= %s"
        )
    return sql


def velocity_count_params(purchase: Purchase) -> list:
    since = purchase.scanned_at - timedelta(minutes=settings.LOYALTY_VELOCITY_WINDOW_MINUTES)
    return [purchase.card_id, connection.ops.adapt_datetimefield_value(since)]


def _recent_scans(purchase: Purchase) -> int:
    with connection.cursor() as cursor:
        cursor.execute(velocity_count_sql(), velocity_count_params(purchase))
        return cursor.fetchone()[0]


def velocity_reasons(purchase: Purchase, recent: int | None = None, p99_cached=MISSING) -> list[dict]:
    """`recent`: the card's scans in the window (scan_record counts them in its insert), else counted here;
    `p99_cached`: the store's p99 cache entry as already read (the till's throttle call fetches it)."""
    reasons: list[dict] = []
    minutes = settings.LOYALTY_VELOCITY_WINDOW_MINUTES
    if recent is None:
        recent = _recent_scans(purchase)
    if recent >= settings.LOYALTY_VELOCITY_CARD_SCANS:
        reasons.append({"rule": "card_burst", "scans": recent, "minutes": minutes})
    if purchase.amount_fen > settings.LOYALTY_VELOCITY_MAX_AMOUNT_FEN:
        reasons.append(
            {
                "rule": "amount_over_max",
                "amount_fen": purchase.amount_fen,
                "max_fen": settings.LOYALTY_VELOCITY_MAX_AMOUNT_FEN,
            }
        )
    else:
        p99 = store_amount_p99(purchase.store_id, p99_cached)
        if p99 is not None and purchase.amount_fen > p99:
            reasons.append({"rule": "amount_over_store_p99", "amount_fen": purchase.amount_fen, "p99_fen": p99})
    return reasons


def velocity_check(purchase: Purchase, recent: int | None = None, p99_cached=MISSING) -> ScanReview | None:
    """Flag a newly credited scan for review when a rule fires; at most one review per purchase."""
    reasons = velocity_reasons(purchase, recent, p99_cached)
    if not reasons:
        return None
    review, _ = ScanReview.objects.get_or_create(purchase=purchase, defaults={"reasons": reasons})
    return review


def _pending(review_id: int) -> ScanReview:
    review = ScanReview.objects.select_for_update(of=("self",)).select_related("purchase").filter(pk=review_id).first()
    if review is None:
        raise NotFound("No such scan review.", field="review")
    if review.status != ScanReview.Status.PENDING:
        raise ApplicationError(f"This review is already {review.status}.", code="review_decided", field="review")
    return review


@transaction.atomic
def scan_review_approve(*, review_id: int, user: AbstractBaseUser | None) -> ScanReview:
    review = _pending(review_id)
    review.status, review.decided_at, review.decided_by = ScanReview.Status.APPROVED, timezone.now(), user
    review.save(update_fields=["status", "decided_at", "decided_by"])
    return review


@transaction.atomic
def scan_review_reverse(*, review_id: int, user: AbstractBaseUser | None) -> ScanReview:
    """Take back the points the flagged scan credited (one ledger row, keyed by the review), and close it."""
    review = _pending(review_id)
    purchase = review.purchase
    # The card's lock first (as a return takes it): what returns already took back is not taken again.
    Card.objects.select_for_update().filter(pk=purchase.card_id).first()
    left = points_left_to_reverse(purchase)
    if left:
        review.reversal = points_credit(
            card_id=purchase.card_id,
            delta=-left,
            kind=PointsLedger.Kind.ADJUST,
            idempotency_key=f"scan-review:{review.pk}:reverse",
            reason=f"Reversed after review: receipt {purchase.receipt_id}",
            purchase=purchase,
            user=user,
        )
    review.status, review.decided_at, review.decided_by = ScanReview.Status.REVERSED, timezone.now(), user
    review.save(update_fields=["status", "decided_at", "decided_by", "reversal"])
    return review
