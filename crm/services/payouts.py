"""Payouts: pay a red-packet claim through the WeCom pay API, exactly once in effect.

The claim row moves received -> paying -> paid under select_for_update. The billno is derived from the claim
and is re-entrant at the pay API, so a retry (SYSTEMERROR/PROCESSING) or a worker that died after the call and
is redelivered (acks_late) repeats the same billno and the pay API pays it at most once.
"""

from __future__ import annotations

from datetime import timedelta

from django.db import transaction
from django.utils import timezone

from crm.models import RedPacketClaim
from crm.wecom.client import get_client
from crm.wecom.errors import WeComError
from crm.wecom.pay import PayError, send_workwx_redpack


class PayoutRetry(Exception):
    """The payout can succeed later with the same billno (the task retries it)."""


def _fail(claim_id: int, message: str) -> str:
    with transaction.atomic():
        claim = RedPacketClaim.objects.select_for_update().get(id=claim_id)
        # An expired claim was refunded (crm.services.claim_expiry): it stays so, nothing is owed.
        if claim.status not in (RedPacketClaim.Status.PAID, RedPacketClaim.Status.EXPIRED):
            claim.status = RedPacketClaim.Status.FAILED
            claim.last_error = message[:512]
            claim.save(update_fields=["status", "last_error"])
        return claim.status


def _note_error(claim_id: int, message: str) -> None:
    # Not over a settled claim: a concurrent attempt may have given up meanwhile, and its reason must stay.
    RedPacketClaim.objects.filter(id=claim_id).exclude(
        status__in=[RedPacketClaim.Status.FAILED, RedPacketClaim.Status.PAID]
    ).update(last_error=message[:512])


def claim_payout(claim_id: int) -> str:
    """Pay one claim; the resulting status. Raises PayoutRetry when trying again (same billno) can help."""
    with transaction.atomic():
        # of=self: the claim's row only. Locking the joined pool and contact rows FOR UPDATE too (Django's default)
        # blocked every claim of the pool meanwhile (they hold it FOR KEY SHARE) and deadlocked with them.
        claim = (RedPacketClaim.objects.select_for_update(of=("self",)).select_related("contact", "pool")
                 .filter(id=claim_id).first())
        settled = (RedPacketClaim.Status.PAID, RedPacketClaim.Status.FAILED, RedPacketClaim.Status.EXPIRED)
        if claim is None or claim.status in settled:
            return claim.status if claim else "missing"
        # Marked before the call: a crash from here on leaves "paying", and the redelivered task repeats the billno.
        claim.status = RedPacketClaim.Status.PAYING
        claim.attempts += 1
        claim.save(update_fields=["status", "attempts"])
    try:
        if not claim.openid:
            openid = str(get_client().convert_to_openid(claim.contact.external_userid).get("openid") or "")
            if not openid:
                return _fail(claim_id, "convert_to_openid returned no openid")
            RedPacketClaim.objects.filter(id=claim_id).update(openid=openid)
            claim.openid = openid
        result = send_workwx_redpack(
            mch_billno=claim.billno,
            re_openid=claim.openid,
            total_amount=claim.amount_fen,
            act_name=claim.pool.act_name,
            wishing=claim.pool.wishing,
            remark=f"pool {claim.pool_id}",
            sender_name=claim.pool.sender_name,
        )
    except (PayError, WeComError) as exc:
        if exc.retryable:
            _note_error(claim_id, str(exc))
            raise PayoutRetry(str(exc)) from exc
        return _fail(claim_id, str(exc))
    with transaction.atomic():
        claim = RedPacketClaim.objects.select_for_update().get(id=claim_id)
        if claim.status != RedPacketClaim.Status.PAID:
            claim.status = RedPacketClaim.Status.PAID
            claim.send_listid = result.send_listid
            claim.paid_at = timezone.now()
            claim.last_error = ""
            claim.save(update_fields=["status", "send_listid", "paid_at", "last_error"])
    return RedPacketClaim.Status.PAID


def claim_payout_give_up(claim_id: int, reason: str) -> str:
    """A payout out of retries: `failed` with the reason (unless it was paid meanwhile); the status."""
    return _fail(claim_id, reason)


def claim_payout_retry(claim_id: int) -> bool:
    """Give a failed payout another go (e.g. after the merchant account was topped up): same billno, queued."""
    from crm.tasks.redpackets import pay_claim

    with transaction.atomic():
        updated = RedPacketClaim.objects.filter(id=claim_id, status=RedPacketClaim.Status.FAILED).update(
            status=RedPacketClaim.Status.RECEIVED
        )
        if updated or RedPacketClaim.objects.filter(
            id=claim_id, status__in=[RedPacketClaim.Status.RECEIVED, RedPacketClaim.Status.PAYING]
        ).exists():
            transaction.on_commit(lambda: pay_claim.delay(claim_id), robust=True)
            return True
    return False


def stuck_payout_claim_ids(older_than: timedelta = timedelta(minutes=5)) -> list[int]:
    """Claims not yet paid whose task may have been lost (broker trouble): the sweeper queues them again."""
    cutoff = timezone.now() - older_than
    return list(
        RedPacketClaim.objects.filter(
            status__in=[RedPacketClaim.Status.RECEIVED, RedPacketClaim.Status.PAYING], claimed_at__lt=cutoff
        ).values_list("id", flat=True)[:1000]
    )
