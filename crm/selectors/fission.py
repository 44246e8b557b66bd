"""Reads for a fission pool's leaderboard: who brought the most friends, and who has unlocked their packet."""

from __future__ import annotations

from django.db.models import Count, OuterRef, Subquery

from crm.models.redpackets import FissionInvite, RedPacketClaim, RedPacketPool


def fission_leaderboard(pool: RedPacketPool, *, limit: int = 50) -> list[dict]:
    """Inviters by friends counted, most first (ties: who invited first), with whether each has passed the gate and
    the status of their claim. One query: referrals are counted per invite, the claim joined by subquery."""
    claim_status = RedPacketClaim.objects.filter(pool_id=pool.pk, contact_id=OuterRef("inviter_id")).values("status")
    rows = (
        FissionInvite.objects.filter(pool_id=pool.pk)
        .annotate(friends=Count("referrals"), claim_status=Subquery(claim_status[:1]))
        .order_by("-friends", "created_at", "id")
        .values("inviter_id", "inviter__name", "inviter__external_userid", "friends", "claim_status", "created_at")
    )[:limit]
    needed = pool.gate_friends
    return [
        {"rank": rank, "contact_id": row["inviter_id"],
         "name": row["inviter__name"] or row["inviter__external_userid"],
         "friends": row["friends"], "needed": needed, "unlocked": bool(needed) and row["friends"] >= needed,
         "claim_status": row["claim_status"] or "", "invited_at": row["created_at"]}
        for rank, row in enumerate(rows, start=1)
    ]


def fission_totals(pool: RedPacketPool) -> dict:
    """How many customers took an invite QR, how many friends they brought, how many passed the gate."""
    per_invite = list(FissionInvite.objects.filter(pool_id=pool.pk).annotate(n=Count("referrals"))
                      .values_list("n", flat=True))  # fmt: skip
    needed = pool.gate_friends
    return {"inviters": len(per_invite), "friends": sum(per_invite),
            "unlocked": sum(1 for n in per_invite if needed and n >= needed)}
