"""Celery tasks for red packets (queue `redpackets`): thin wrappers that take ids and call a service."""

from __future__ import annotations

from celery import shared_task

from crm.services.claim_expiry import expire_unpaid_claims
from crm.services.payouts import PayoutRetry, claim_payout, claim_payout_give_up, stuck_payout_claim_ids
from crm.services.redpackets import redpacket_reconcile_watched, redpacket_refund_all_expired


@shared_task(bind=True, acks_late=True, max_retries=12)
def pay_claim(self, claim_id: int) -> str:
    """Pay one claim; SYSTEMERROR/PROCESSING/transport are retried later with the same billno."""
    try:
        return claim_payout(claim_id)
    except PayoutRetry as exc:
        if self.request.retries >= self.max_retries:
            # Out of retries: failed, with the reason, not "paying" forever; the console retries it (same billno).
            return claim_payout_give_up(claim_id, f"gave up after {self.request.retries + 1} tries: {exc}")
        raise self.retry(exc=exc, countdown=min(300, 2 ** min(self.request.retries, 8)))


@shared_task(acks_late=True)
def pay_claims(claim_ids: list[int]) -> int:
    """A group of claims written together by the claim server (one message for the group): one pay task each, so
    each retries on its own. A lost message is caught by the stuck-payout sweep below."""
    for claim_id in claim_ids:
        pay_claim.delay(claim_id)
    return len(claim_ids)


@shared_task(acks_late=True)
def refund_expired_pools() -> dict:
    """Beat: refund expired pools, and queue again payouts that look stuck (a lost task message)."""
    refunded = redpacket_refund_all_expired()
    expired = expire_unpaid_claims()  # before the sweep: a claim refunded now is not queued again
    stuck = stuck_payout_claim_ids()
    for claim_id in stuck:
        pay_claim.delay(claim_id)
    return {"refunded": refunded, "requeued": len(stuck), "claims_expired": len(expired)}


@shared_task(acks_late=True)
def reconcile_pools() -> dict:
    """Beat (every 2 min): budget = paid + paying + failed + refunded + reserved + claimable for each live pool
    (and for a day after its refund); a difference is logged at ERROR and shows on /healthz/money and the console."""
    return redpacket_reconcile_watched()
