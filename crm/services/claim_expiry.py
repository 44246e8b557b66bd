"""A claimed packet not paid within its pool's claim_expiry_hours (24 h by default) is refunded.

Only claims whose payout is not in flight expire: `received` (queued, never sent) and `failed` (given up). A
`paying` claim may still be paid by the pay API under its billno, so it waits until it settles as paid or failed.
The claim becomes `expired` under the same row lock the payout takes (crm.services.payouts), so it is never both
paid and refunded; reconciliation counts it as refunded (budget = paid + pending + refunded + claimable stays
exact: the amount moves from pending to refunded in one row update).
"""

from __future__ import annotations

import logging
from datetime import timedelta

from django.db import transaction
from django.db.models import DurationField, ExpressionWrapper, F, IntegerField
from django.db.models.functions import Cast
from django.utils import timezone

from crm.models import RedPacketClaim

logger = logging.getLogger(__name__)
EXPIRABLE = (RedPacketClaim.Status.RECEIVED, RedPacketClaim.Status.FAILED)


def expire_unpaid_claims(limit: int = 1000) -> list[int]:
    """Refund the claims past their pool's claim expiry that were not paid; the ids expired."""
    now = timezone.now()
    # Cast: SQLite multiplies a duration only by a plain integer field (not a PositiveSmallIntegerField).
    hours = Cast("pool__claim_expiry_hours", IntegerField())
    deadline = ExpressionWrapper(hours * timedelta(hours=1), output_field=DurationField())
    due = list(
        RedPacketClaim.objects.filter(status__in=EXPIRABLE)
        .annotate(deadline=F("claimed_at") + deadline)
        .filter(deadline__lte=now)
        .order_by("id")
        .values_list("id", flat=True)[:limit]
    )
    done = []
    for claim_id in due:
        with transaction.atomic():
            claim = RedPacketClaim.objects.select_for_update(of=("self",)).select_related("pool").get(id=claim_id)
            # Re-checked under the lock: a retry may have queued or paid it meanwhile.
            if claim.status not in EXPIRABLE:
                continue
            claim.status = RedPacketClaim.Status.EXPIRED
            claim.last_error = f"not paid within {claim.pool.claim_expiry_hours} h: refunded"
            claim.save(update_fields=["status", "last_error"])
            done.append(claim_id)
    if done:
        logger.info("red-packet claims expired unpaid", extra={"claims": len(done)})
    return done


MAX_CLAIM_EXPIRY_HOURS = 24 * 7


def clean_claim_expiry(hours) -> int:
    from crm.errors import ApplicationError

    if not isinstance(hours, int) or isinstance(hours, bool) or not 1 <= hours <= MAX_CLAIM_EXPIRY_HOURS:
        raise ApplicationError(f"claim_expiry_hours must be 1 to {MAX_CLAIM_EXPIRY_HOURS}.", field="claim_expiry_hours")
    return hours
