"""Reads for the console's red-packet pool page: the pool, its claims by status, and the claims themselves."""

from __future__ import annotations

from django.db.models import Count, QuerySet, Sum

from crm.models.redpackets import RedPacketClaim, RedPacketPool


def pool_page_pool(pool_id: int) -> RedPacketPool | None:
    return RedPacketPool.objects.select_related("campaign").filter(pk=pool_id).first()


def pool_page_claims_by_status(pool: RedPacketPool) -> list[dict]:
    """Every claim status in lifecycle order, with its count and amount (zeros included): one grouped query."""
    rows = {
        r["status"]: r
        for r in RedPacketClaim.objects.filter(pool=pool).order_by().values("status")
        .annotate(n=Count("id"), fen=Sum("amount_fen"))
    }
    return [
        {"status": status, "label": label, "count": rows.get(status, {}).get("n", 0),
         "amount_fen": rows.get(status, {}).get("fen") or 0}
        for status, label in RedPacketClaim.Status.choices
    ]


def pool_page_claims(pool: RedPacketPool, *, status: str | None = None) -> QuerySet[RedPacketClaim]:
    """Newest claim first, optionally of one status."""
    qs = RedPacketClaim.objects.select_related("contact").filter(pool=pool).order_by("-id")
    if status:
        qs = qs.filter(status=status)
    return qs
