"""The console's full dashboard: UNFOLD["DASHBOARD_CALLBACK"] = "loyalty.dashboard.dashboard_callback".

It lives in loyalty because it shows both sides: the CRM's panels (crm.admin.dashboard) and loyalty's tiers and
points, and `crm` may not import `loyalty` (loyalty may use crm)."""

from __future__ import annotations

from django.utils.translation import gettext as _

from crm.admin.dashboard import GOOD, PALETTE, PRIMARY, chart, dashboard_data, day_labels
from crm.selectors.dashboard import SHANGHAI, WINDOW_DAYS, day_range, window
from loyalty import selectors


def loyalty_data() -> dict:
    tiers = selectors.tier_distribution()
    labels = [t["name"] or _("No tier yet") for t in tiers]
    colours = [PALETTE[i % len(PALETTE)] if t["tier_id"] else "var(--color-base-300)" for i, t in enumerate(tiers)]
    cards = sum(t["cards"] for t in tiers)
    days = window(WINDOW_DAYS)
    since, until = day_range(days[0], days[-1])
    points = selectors.points_daily(since, until, SHANGHAI)
    issued = [points.get(d, {}).get("issued", 0) for d in days]
    redeemed = [points.get(d, {}).get("redeemed", 0) for d in days]
    return {
        "cards": cards,
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
