"""Keeps loyalty's dashboard figures (loyalty.dashboard) in the CRM's snapshot store, so the page reads one row
instead of grouping every card and a month of ledger on each load. Recomputed whole on each run: idempotent."""

from __future__ import annotations

from datetime import timedelta

from crm.selectors.dashboard import SHANGHAI, WINDOW_DAYS, day_range, shanghai_today
from crm.services.rollups import snapshot_put
from loyalty import selectors

TIERS_KEY = "loyalty.tiers"
POINTS_KEY = "loyalty.points_daily"


def loyalty_dashboard_refresh() -> dict:
    """Cards per tier now, and points issued / redeemed per closed Shanghai day of the window (the ledger is
    append-only: a closed day's figures no longer move; today is counted live by the page)."""
    tiers = selectors.tier_distribution()
    snapshot_put(TIERS_KEY, {"tiers": tiers})
    today = shanghai_today()
    start, end = today - timedelta(days=WINDOW_DAYS), today - timedelta(days=1)
    since, until = day_range(start, end)
    points = selectors.points_daily(since, until, SHANGHAI)
    snapshot_put(POINTS_KEY, {
        "from": start.isoformat(), "to": end.isoformat(),
        "days": {day.isoformat(): [v["issued"], v["redeemed"]] for day, v in points.items()},
    })  # fmt: skip
    return {"tiers": len(tiers), "point_days": len(points)}
