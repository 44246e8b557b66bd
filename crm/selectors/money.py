"""Reads for the money watch: red-packet pools whose last reconciliation did not balance, or that went unchecked."""

from __future__ import annotations

from datetime import timedelta

from django.db.models import Q
from django.utils import timezone

from crm.models import RedPacketPool


def pools_out_of_balance(limit: int = 20) -> list[dict]:
    """[{pool_id, difference_fen, reconciled_at}] of the pools whose latest reconciliation did not balance."""
    return list(
        RedPacketPool.objects.filter(reconcile_balanced=False)
        .order_by("id")
        .values("id", "reconcile_difference_fen", "reconciled_at")[:limit]
    )


def pools_unwatched(stale_seconds: int, limit: int = 20) -> list[int]:
    """Active pools not reconciled in `stale_seconds` (the scheduled check is not running). A pool activated
    within that time counts only once it is that old."""
    cutoff = timezone.now() - timedelta(seconds=stale_seconds)
    return list(
        RedPacketPool.objects.filter(status=RedPacketPool.Status.ACTIVE, activated_at__lt=cutoff)
        .filter(Q(reconciled_at__isnull=True) | Q(reconciled_at__lt=cutoff))
        .order_by("id")
        .values_list("id", flat=True)[:limit]
    )
