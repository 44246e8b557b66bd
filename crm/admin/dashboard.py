"""The console's dashboard: the CRM's panels (contacts, campaigns, red packets, operations) as unfold chart data.

`dashboard_callback` gives the CRM's panels only. The full dashboard, with loyalty's tiers and points, is
`loyalty.dashboard.dashboard_callback` (crm may not import loyalty, so the callback that shows both lives there).
Both put one `dashboard` dict in the context; templates/admin/index.html renders it with unfold's components."""

from __future__ import annotations

import json
from datetime import date

from django.urls import NoReverseMatch, reverse
from django.utils import timezone
from django.utils.translation import gettext as _

from crm.selectors import dashboard as selectors

# Distinguishable series colours (Chart.js takes any CSS colour; unfold resolves var(--...) itself).
PALETTE = ["#7c3aed", "#2563eb", "#059669", "#ea580c", "#db2777", "#0891b2", "#ca8a04", "#64748b"]
PRIMARY, MUTED, GOOD, BAD = "var(--color-primary-600)", "var(--color-base-300)", "#059669", "#dc2626"
TOP_CHANNELS = 7


def chart(labels: list, datasets: list[dict]) -> str:
    """Chart.js `data` as the JSON unfold's chart components read from data-value."""
    return json.dumps({"labels": labels, "datasets": datasets}, ensure_ascii=False)


def chart_options(*, stacked: bool = False, legend: bool = True, horizontal: bool = False) -> str:
    """Chart.js options (given in full: unfold uses them instead of its defaults, not merged)."""
    axis = {"stacked": stacked, "grid": {"display": False}, "ticks": {"color": "#9ca3af"}}
    value_axis = {"stacked": stacked, "beginAtZero": True, "ticks": {"color": "#9ca3af", "precision": 0}}
    options = {
        "animation": False,
        "responsive": True,
        "maintainAspectRatio": False,
        "indexAxis": "y" if horizontal else "x",
        "plugins": {"legend": {"display": legend, "position": "bottom", "labels": {"boxWidth": 10}}},
        "scales": {"x": value_axis, "y": axis} if horizontal else {"x": axis, "y": value_axis},
    }
    return json.dumps(options)


def admin_url(name: str, pk: int) -> str:
    """The object's console page, or "" where the console does not offer one (the link is then left out)."""
    try:
        return reverse(f"admin:{name}_change", args=[pk])
    except NoReverseMatch:
        return ""


def day_labels(days: list[date]) -> list[str]:
    return [d.strftime("%m-%d") for d in days]


def yuan(fen: int) -> float:
    return round((fen or 0) / 100, 2)


def contacts_panels(growth: dict) -> dict:
    channels = growth["channels"]
    top, rest = channels[:TOP_CHANNELS], channels[TOP_CHANNELS:]
    datasets = [
        {"label": c["name"] or _("No channel"), "data": c["adds"], "backgroundColor": PALETTE[i % len(PALETTE)]}
        for i, c in enumerate(top)
    ]
    if rest:
        other = [sum(values) for values in zip(*(c["adds"] for c in rest), strict=True)]
        datasets.append({"label": _("Other channels"), "data": other, "backgroundColor": MUTED})
    labels = day_labels(growth["days"])
    net = {
        "labels": labels,
        "datasets": [
            {"type": "bar", "label": _("Added"), "data": growth["adds"], "backgroundColor": GOOD},
            {"type": "bar", "label": _("Deleted"), "data": [-d for d in growth["deletes"]], "backgroundColor": BAD},
            {"type": "line", "label": _("Net growth"), "data": growth["net"], "borderColor": PRIMARY,
             "backgroundColor": PRIMARY, "tension": 0.3},
        ],
    }  # fmt: skip
    return {
        "adds_chart": chart(labels, datasets),
        "net_chart": json.dumps(net, ensure_ascii=False),
        "adds_total": sum(growth["adds"]),
        "deletes_total": sum(growth["deletes"]),
        "net_total": sum(growth["net"]),
        "adds_today": growth["adds"][-1],
        "net_today": growth["net"][-1],
    }


def funnel_panel(funnels: list[dict]) -> dict:
    steps = [(_("Planned"), "planned"), (_("Sent"), "sent"), (_("Delivered"), "delivered"), (_("Claimed"), "claimed")]
    colours = ["var(--color-primary-300)", "var(--color-primary-500)", "var(--color-primary-700)", GOOD]
    ordered = list(reversed(funnels))  # oldest first, left to right
    datasets = [
        {"label": label, "data": [f[key] for f in ordered], "backgroundColor": colours[i]}
        for i, (label, key) in enumerate(steps)
    ]
    rows = []
    for f in funnels:
        def pct(n: int, planned: int = f["planned"]) -> str:
            return f"{100 * n / planned:.0f}%" if planned else "–"

        rows.append({
            **f, "url": admin_url("crm_campaign", f["id"]),
            "sent_pct": pct(f["sent"]), "delivered_pct": pct(f["delivered"]), "claimed_pct": pct(f["claimed"]),
        })  # fmt: skip
    return {
        "chart": chart([f["name"] for f in ordered], datasets) if funnels else "",
        "steps": [label for label, _key in steps],
        "rows": rows,
    }


def spend_panel(pools: list[dict]) -> dict:
    ordered = list(reversed(pools))
    datasets = [
        {"label": _("Budget"), "data": [yuan(p["budget_fen"]) for p in ordered], "backgroundColor": MUTED},
        {"label": _("Paid"), "data": [yuan(p["paid_fen"]) for p in ordered], "backgroundColor": PRIMARY},
        {"label": _("Pending payout"), "data": [yuan(p["pending_fen"]) for p in ordered],
         "backgroundColor": "var(--color-primary-300)"},
        {"label": _("Refunded"), "data": [yuan(p["refunded_fen"]) for p in ordered], "backgroundColor": "#ca8a04"},
    ]  # fmt: skip
    rows = [
        {
            **p,
            "budget": yuan(p["budget_fen"]), "paid": yuan(p["paid_fen"]), "pending": yuan(p["pending_fen"]),
            "refunded": yuan(p["refunded_fen"]),
            "spent_pct": round(100 * p["paid_fen"] / p["budget_fen"]) if p["budget_fen"] else 0,
            "url": admin_url("crm_redpacketpool", p["id"]),
        }
        for p in pools
    ]  # fmt: skip
    totals = {k: sum(p[k] for p in pools) for k in ("budget_fen", "paid_fen", "pending_fen", "refunded_fen")}
    return {
        "chart": chart([p["name"] for p in ordered], datasets) if pools else "",
        "rows": rows,
        "budget": yuan(totals["budget_fen"]),
        "paid": yuan(totals["paid_fen"]),
        "spent_pct": round(100 * totals["paid_fen"] / totals["budget_fen"]) if totals["budget_fen"] else 0,
    }


def operations_panel(backlog: dict, health: dict) -> dict:
    names = {"database": _("Database"), "redis": _("Redis"), "worker": _("Celery workers")}
    checks = []
    for key, check in health["checks"].items():
        detail = check.get("error", "")
        if key == "worker" and check["ok"]:
            detail = _("%(n)d alive") % {"n": check.get("alive", 0)}
        checks.append({"name": names.get(key, key), "ok": check["ok"], "detail": detail})
    oldest = backlog["oldest_received_at"]
    return {
        **backlog,
        "oldest_local": timezone.localtime(oldest, selectors.SHANGHAI) if oldest else None,
        "healthy": health["ok"],
        "checks": checks,
        "workers_alive": health["checks"]["worker"].get("alive", 0),
    }


def dashboard_data(request) -> dict:
    """The CRM's panels for the dashboard template."""
    today = selectors.shanghai_today()
    growth = selectors.contacts_growth(selectors.WINDOW_DAYS, today)
    return {
        "today": today,
        "window_days": selectors.WINDOW_DAYS,
        "contacts": contacts_panels(growth),
        "funnel": funnel_panel(selectors.campaign_funnels()),
        "spend": spend_panel(selectors.redpacket_spend()),
        "operations": operations_panel(selectors.callback_backlog(), selectors.system_health()),
        "stacked_options": chart_options(stacked=True),
        "grouped_options": chart_options(),
        "net_options": chart_options(stacked=True),
    }


def dashboard_callback(request, context):
    """UNFOLD["DASHBOARD_CALLBACK"] for the CRM's panels alone (see loyalty.dashboard for the full one)."""
    context["dashboard"] = dashboard_data(request)
    return context
