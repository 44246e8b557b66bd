"""Loyalty selectors: reads for the staff API, the admin and the card page."""

from __future__ import annotations

from datetime import date, datetime, tzinfo

from django.db.models import Count, Q, QuerySet, Sum
from django.db.models.functions import TruncDate

from crm.errors import NotFound
from loyalty.models import Card, PointsLedger, Purchase, Reward, Store, Tier


def card_list(*, search: str | None = None, tier_id: int | None = None) -> QuerySet[Card]:
    qs = Card.objects.select_related("tier", "contact").order_by("-id")
    if search:
        qs = qs.filter(
            Q(number__icontains=search) | Q(contact__name__icontains=search) | Q(contact__external_userid=search)
        )
    if tier_id:
        qs = qs.filter(tier_id=tier_id)
    return qs


def card_get(card_id: int) -> Card:
    card = Card.objects.select_related("tier", "contact").filter(pk=card_id).first()
    if card is None:
        raise NotFound("No such card.", field="card")
    return card


def card_ledger(card_id: int, limit: int = 100) -> QuerySet[PointsLedger]:
    return PointsLedger.objects.filter(card_id=card_id).select_related("purchase__store").order_by("-id")[:limit]


def card_purchases(card_id: int, limit: int = 50) -> QuerySet[Purchase]:
    return (
        Purchase.objects.filter(card_id=card_id)
        .select_related("store", "tier_after")
        .prefetch_related("lines")
        .order_by("-id")[:limit]
    )


def card_ledger_sum(card_id: int) -> int:
    """The balance as the ledger tells it (equals Card.points_balance: the invariant the tests hold)."""
    return PointsLedger.objects.filter(card_id=card_id).aggregate(total=Sum("delta"))["total"] or 0


def tier_next(card: Card) -> Tier | None:
    return Tier.objects.filter(min_points__gt=card.lifetime_points).order_by("min_points").first()


def tier_list() -> QuerySet[Tier]:
    return Tier.objects.order_by("rank")


def store_list(*, active_only: bool = False) -> QuerySet[Store]:
    qs = Store.objects.order_by("code")
    return qs.filter(is_active=True) if active_only else qs


def reward_list(*, active_only: bool = True) -> QuerySet[Reward]:
    qs = Reward.objects.order_by("points_cost", "id")
    return qs.filter(is_active=True) if active_only else qs


# --- the console dashboard (loyalty.dashboard) -----------------------------------------------------------------


def tier_distribution() -> list[dict]:
    """Cards per tier, lowest tier first, then cards with no tier yet: one GROUP BY over the card.tier index."""
    counts = dict(Card.objects.values("tier_id").annotate(n=Count("id")).order_by().values_list("tier_id", "n"))
    rows = [{"tier_id": t.id, "name": t.name, "is_vip": t.is_vip, "cards": counts.get(t.id, 0)} for t in tier_list()]
    if counts.get(None):
        rows.append({"tier_id": None, "name": "", "is_vip": False, "cards": counts[None]})
    return rows


def points_daily(since: datetime, until: datetime, tz: tzinfo) -> dict[date, dict[str, int]]:
    """{day: {"issued", "redeemed"}} for ledger rows in [since, until), days in `tz`: points credited (every
    positive movement) and points spent on rewards. A range scan on the ledger's created_at index."""
    rows = (
        PointsLedger.objects.filter(created_at__gte=since, created_at__lt=until)
        .annotate(day=TruncDate("created_at", tzinfo=tz))
        .values("day")
        .annotate(
            issued=Sum("delta", filter=Q(delta__gt=0), default=0),
            redeemed=Sum("delta", filter=Q(kind=PointsLedger.Kind.REDEEM), default=0),
        )
        .order_by()
    )
    return {row["day"]: {"issued": row["issued"], "redeemed": -row["redeemed"]} for row in rows}
