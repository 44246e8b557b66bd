"""The console's full dashboard: UNFOLD["DASHBOARD_CALLBACK"] = "loyalty.dashboard.dashboard_callback".

It lives in loyalty because it shows both sides: the CRM's panels (crm.admin.dashboard) and loyalty's tiers and
points, and `crm` may not import `loyalty` (loyalty may use crm)."""

from __future__ import annotations

from datetime import date, datetime

from django.utils import timezone
from django.utils.translation import gettext as _

from crm.admin.dashboard import GOOD, PALETTE, PRIMARY, chart, dashboard_data, day_labels
from crm.selectors.dashboard import SHANGHAI, WINDOW_DAYS, day_range, snapshot_get, window
from loyalty import selectors
from loyalty.services.dashboard import POINTS_KEY, TIERS_KEY


def tiers_now() -> tuple[list[dict], datetime | None]:
    """Beat's snapshot of the tier distribution (and its time), or a live count before beat's first run."""
    data, at = snapshot_get(TIERS_KEY)
    return (data["tiers"], at) if data else (selectors.tier_distribution(), None)


def points_window(days: list[date]) -> dict[date, dict[str, int]]:
    """Closed days from beat's snapshot; today, and any day the snapshot does not cover, counted live."""
    data, _at = snapshot_get(POINTS_KEY)
    covered: set[date] = set()
    out: dict[date, dict[str, int]] = {}
    if data:
        first, last = date.fromisoformat(data["from"]), date.fromisoformat(data["to"])
        covered = {d for d in days if first <= d <= last}
        for day, (issued, redeemed) in data["days"].items():
            if date.fromisoformat(day) in covered:
                out[date.fromisoformat(day)] = {"issued": issued, "redeemed": redeemed}
    missing = [d for d in days if d not in covered]
    if missing:
        since, until = day_range(missing[0], missing[-1])
        live = selectors.points_daily(since, until, SHANGHAI)
        out.update({d: v for d, v in live.items() if d not in covered})
    return out


def loyalty_data() -> dict:
    tiers, tiers_at = tiers_now()
    labels = [t["name"] or _("No tier yet") for t in tiers]
    colours = [PALETTE[i % len(PALETTE)] if t["tier_id"] else "var(--color-base-300)" for i, t in enumerate(tiers)]
    cards = sum(t["cards"] for t in tiers)
    days = window(WINDOW_DAYS)
    points = points_window(days)
    issued = [points.get(d, {}).get("issued", 0) for d in days]
    redeemed = [points.get(d, {}).get("redeemed", 0) for d in days]
    return {
        "cards": cards,
        "tiers_counted_at": timezone.localtime(tiers_at, SHANGHAI) if tiers_at else None,
        "vip_cards": sum(t["cards"] for t in tiers if t["is_vip"]),
        "tiers": [
            {**t, "label": label, "pct": round(100 * t["cards"] / cards) if cards else 0}
            for t, label in zip(tiers, labels, strict=True)
        ],
        "tier_chart": chart(labels, [{"label": _("Cards"), "data": [t["cards"] for t in tiers],
                                      "backgroundColor": colours}]),
        "points_chart": chart(day_labels(days), [
            {"label": _("Points issued"), "data": issued, "borderColor": GOOD, "backgroundColor": GOOD},
            {"label": _("Points redeemed"), "data": redeemed, "borderColor": PRIMARY, "backgroundColor": PRIMARY},
        ]),
        "issued_total": sum(issued),
        "redeemed_total": sum(redeemed),
    }  # fmt: skip


def dashboard_callback(request, context):
    context["dashboard"] = {**dashboard_data(request), "loyalty": loyalty_data()}
    return context
