"""The filter language's loyalty fields (crm.services.segments): tier, points, spend, last_purchase, bought.

Registered from LoyaltyConfig.ready(): crm never imports loyalty, so loyalty brings its own conditions.

Spend, last purchase and bought read till purchases (Purchase, PurchaseLine) and, when
settings.LOYALTY_SPEND_INCLUDES_ORDERS (default True), the Tmall/JD order lines crm imported (SourceOrderLine) too.
Each is one EXISTS over a derived table (rows of the window only, grouped per contact where a sum is asked): it
becomes a single hash semi-join (or, under NOT, anti-join) against the contacts, never a subquery per contact.
"""

# The SQL here is built from table names and fixed fragments only; every value goes in as a parameter (%s).
# ruff: noqa: S608
from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.db import connection
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from crm.models import SourceOrderLine
from crm.services import segments as seg
from crm.services.segments import NOTHING, AllOf, AnyOf, ContactSql, Ctx, FieldSpec, Members, bad, placeholders
from loyalty.models import Card, Product, Purchase, PurchaseLine, Tier

CARD, PURCHASE, LINE, PRODUCT = (m._meta.db_table for m in (Card, Purchase, PurchaseLine, Product))
ORDERS = SourceOrderLine._meta.db_table
TIER_COLUMN = "loyalty_tier_id"  # on crm_contact, PostgreSQL only (migration 0011)
SPEND_WINDOWS = (30, 90, 180, 365)  # the windows loyalty_segment_spend keeps (migration 0011)


def includes_orders() -> bool:
    return bool(getattr(settings, "LOYALTY_SPEND_INCLUDES_ORDERS", True))


# --- tier, points: the card ---------------------------------------------------------------------------------


def _v_tier(cond: dict, path: str) -> dict:
    return {"value": seg.known_ids(Tier, seg.int_list(cond.get("value"), f"{path}.value"), f"{path}.value")}


def _b_tier(cond: dict, ctx: Ctx) -> Q:
    """in: a card in one of the tiers; not_in: a card in none of them (a card without a tier counts). On PostgreSQL
    "in" can also be tested on the contact's row (crm_contact.loyalty_tier_id, kept by loyalty 0011's triggers),
    which an OR takes."""
    if cond["op"] == "in":
        row = None
        if ctx.use_tag_array:
            row = ContactSql("COALESCE({col} = ANY(%s::bigint[]), false)", [cond["value"]], column=TIER_COLUMN)
        return Members(Card.objects.filter(tier_id__in=cond["value"]), row=row)
    return Members(Card.objects.exclude(tier_id__in=cond["value"]))  # exclude() keeps a NULL tier


def _v_amount(cond: dict, path: str) -> dict:
    return {"value": seg.amount(cond.get("value"), cond["op"], f"{path}.value")}


def _bounds(cond: dict) -> tuple[int | None, int | None]:
    op, value = cond["op"], cond["value"]
    if op == "between":
        return value[0], value[1]
    return (value, None) if op == "gte" else (None, value)


def _b_points(cond: dict, ctx: Ctx) -> Q:
    """The card's points balance (card holders only)."""
    lo, hi = _bounds(cond)
    cards = Card.objects.all()
    if lo is not None:
        cards = cards.filter(points_balance__gte=lo)
    if hi is not None:
        cards = cards.filter(points_balance__lte=hi)
    return Members(cards)


# --- spend, last purchase, bought: purchases (and order lines) ---------------------------------------------


def _rows(pg: bool, with_amount: bool, since) -> tuple[str, list]:
    """UNION ALL of till receipts and, per setting, order lines since `since` (None: all): (contact_id[, amount]).
    On PostgreSQL a receipt carries its contact (migration 0004's trigger): an index-only window, no card join."""
    till_amount, order_amount = (", p.amount_fen AS amount", ", o.amount_fen") if with_amount else ("", "")
    window = " AND p.scanned_at >= %s" if since else ""
    if pg:
        sql = f"SELECT p.contact_id AS contact_id{till_amount} FROM {PURCHASE} p WHERE p.contact_id IS NOT NULL"
    else:
        sql = f"SELECT c.contact_id AS contact_id{till_amount} FROM {PURCHASE} p JOIN {CARD} c ON c.id = p.card_id"
        window = window.replace(" AND", " WHERE", 1)
    sql += window
    params = [since] if since else []
    if includes_orders():
        sql += f" UNION ALL SELECT o.contact_id{order_amount} FROM {ORDERS} o WHERE o.contact_id IS NOT NULL" + (
            " AND o.ordered_at >= %s" if since else ""
        )
        params += [since] if since else []
    return sql, params


def _v_spend(cond: dict, path: str) -> dict:
    return {
        "value": seg.amount(cond.get("value"), cond["op"], f"{path}.value"),
        "days": seg.days_extra(cond, path, default=90),
    }


def _rollup_ready() -> bool:
    """Whether loyalty_segment_spend holds today's windows (beat advances it after each Shanghai midnight)."""
    with connection.cursor() as cur:
        cur.execute("SELECT day FROM loyalty_segment_spend_state")
        row = cur.fetchone()
    return bool(row) and row[0] == timezone.now().astimezone(seg.SHANGHAI).date()


def _spending(pg: bool, days: int, having: str, params: list) -> Members:
    """The contacts whose SUM of the window's amounts (`having`, with {total}) holds.

    On PostgreSQL, for a window loyalty_segment_spend keeps and while it holds today's sums, read off it (one row
    per buyer of the last year, no sum per count). Otherwise summed from the rows, as float8: sum(bigint) is
    numeric, about a fifth slower to hash-aggregate over the 300k rows of a 90-day window at 1M contacts
    (measured), and a float8 sum of whole numbers is exact below 2^53 fen."""
    if pg and days in SPEND_WINDOWS and _rollup_ready():
        total = f"s.till_{days}" + (f" + s.order_{days}" if includes_orders() else "")
        return Members(
            sql=f"SELECT s.contact_id FROM loyalty_segment_spend s WHERE {having.format(total=total)}",
            params=list(params),
        )
    rows, row_params = _rows(pg, True, seg.window_start(days))
    total = "SUM(t.amount::float8)" if pg else "SUM(t.amount)"
    return Members(
        sql=f"SELECT t.contact_id FROM ({rows}) t GROUP BY t.contact_id HAVING {having.format(total=total)}",
        params=[*row_params, *params],
    )


def _b_spend(cond: dict, ctx: Ctx) -> Q:
    """Fen spent in the last `days` days (Asia/Shanghai, today included). A contact who bought nothing spent 0,
    so "at most" is "not more than" (an anti-join), and it keeps them."""
    lo, hi = _bounds(cond)
    days, pg = cond.get("days") or 90, ctx.use_tag_array
    if lo:  # > 0: only buyers can reach it
        if hi is None:
            return _spending(pg, days, "{total} >= %s", [lo])
        return _spending(pg, days, "{total} BETWEEN %s AND %s", [lo, hi])
    if hi is None:
        return Q()  # >= 0: everyone
    return ~_spending(pg, days, "{total} > %s", [hi])


def _v_last_purchase(cond: dict, path: str) -> dict:
    value = cond.get("value")
    seg.parse_day(value, f"{path}.value")
    return {"value": value}


def _bought_since(pg: bool, since) -> Members:
    rows, params = _rows(pg, False, since)
    return Members(sql=rows, params=params)


def _b_last_purchase(cond: dict, ctx: Ctx) -> Q:
    """after D: a purchase later than day D; before D: purchases, none on day D or later (never bought: neither).
    On PostgreSQL each contact's latest receipt and order line are kept (loyalty_segment_last_purchase)."""
    day = seg.parse_day(cond["value"], "")
    moment = seg.day_start(day + timedelta(days=1)) if cond["op"] == "after" else seg.day_start(day)
    if ctx.use_tag_array:
        latest = "GREATEST(r.till_at, r.order_at)" if includes_orders() else "r.till_at"  # GREATEST skips NULLs
        test = ">=" if cond["op"] == "after" else "<"
        return Members(
            sql=f"SELECT r.contact_id FROM loyalty_segment_last_purchase r WHERE {latest} {test} %s", params=[moment]
        )
    if cond["op"] == "after":
        return _bought_since(False, moment)
    return AllOf([_bought_since(False, None), ~_bought_since(False, moment)])


def _v_bought(cond: dict, path: str) -> dict:
    value = cond.get("value")
    if (
        not isinstance(value, dict)
        or not set(value) <= {"skus", "categories"}
        or not (value.get("skus") or value.get("categories"))
    ):
        raise bad(str(_('Must be {"skus": [...], "categories": [...]}, at least one of them.')), f"{path}.value")
    out = {}
    if value.get("skus"):
        out["skus"] = seg.str_list(value["skus"], f"{path}.value.skus")
    if value.get("categories"):
        categories = seg.str_list(value["categories"], f"{path}.value.categories")
        known = set(Product.objects.filter(category__in=categories).values_list("category", flat=True))
        missing = [c for c in categories if c not in known]
        if missing:
            raise bad(str(_("Unknown category: %(c)s.") % {"c": missing[0]}), f"{path}.value.categories")
        out["categories"] = categories
    return {"value": out, "days": seg.days_extra(cond, path, default=None)}


def _b_bought(cond: dict, ctx: Ctx) -> Q:
    """Any of the SKUs, or any SKU of the categories (loyalty.Product), on a receipt or an order line; within the
    last `days` days when given."""
    skus, categories = cond["value"].get("skus") or [], cond["value"].get("categories") or []
    parts, part_params = [], []
    if skus:
        parts.append(f"{{alias}}.sku IN ({placeholders(skus)})")
        part_params += skus
    if categories:
        parts.append(
            f"{{alias}}.sku IN (SELECT pr.sku FROM {PRODUCT} pr WHERE pr.category IN ({placeholders(categories)}))"
        )
        part_params += categories
    if not parts:
        return NOTHING
    match = "(" + " OR ".join(parts) + ")"
    since = seg.window_start(cond["days"]) if cond.get("days") else None
    if ctx.use_tag_array:  # a line carries its receipt's contact and time (migration 0004's trigger)
        sql = f"SELECT l.contact_id AS contact_id FROM {LINE} l WHERE {match.format(alias='l')}"
        sql += " AND l.scanned_at >= %s" if since else ""
    else:
        sql = (
            f"SELECT c.contact_id AS contact_id FROM {LINE} l JOIN {PURCHASE} p ON p.id = l.purchase_id "
            f"JOIN {CARD} c ON c.id = p.card_id WHERE {match.format(alias='l')}"
        )
        sql += " AND p.scanned_at >= %s" if since else ""
    params = [*part_params, *([since] if since else [])]
    till = Members(sql=sql, params=params)
    if not includes_orders():
        return till
    # Two sets, not one UNION ALL: PostgreSQL cannot estimate the distinct contacts of a union (it guesses 200) and
    # would probe the contacts' primary key once per buyer; each set alone is estimated, and hashed.
    order = f"{match.format(alias='o')}" + (" AND o.ordered_at >= %s" if since else "")
    orders = Members(
        sql=f"SELECT o.contact_id FROM {ORDERS} o WHERE o.contact_id IS NOT NULL AND {order}", params=list(params)
    )
    return AnyOf([till, orders])


def _categories() -> list[dict]:
    cats = Product.objects.exclude(category="").order_by("category").values_list("category", flat=True).distinct()
    return [{"value": c, "label": c} for c in cats[:1000]]


def purchase_total(contact_id: int, since) -> int:
    """Fen the contact spent since `since`: the rows spend counts (receipts and, per setting, order lines). The red
    packets' purchase gate asks it (crm.services.gates.register_purchase_total)."""
    sql, params = _rows(connection.vendor == "postgresql", True, since)
    with connection.cursor() as cur:
        cur.execute(f"SELECT COALESCE(SUM(t.amount), 0) FROM ({sql}) t WHERE t.contact_id = %s", [*params, contact_id])
        return int(cur.fetchone()[0])


def register() -> None:
    seg.register_row_column(TIER_COLUMN)
    seg.register_field(
        "tier",
        FieldSpec(
            _("Tier"),
            ("in", "not_in"),
            "ids",
            _v_tier,
            _b_tier,
            lambda: [{"value": t.id, "label": t.name} for t in Tier.objects.order_by("rank")],
            help=_("Card holders only."),
            group="loyalty",
            order=20,
        ),
    )
    seg.register_field(
        "points",
        FieldSpec(
            _("Points balance"),
            ("gte", "lte", "between"),
            "amount",
            _v_amount,
            _b_points,
            help=_("Card holders only."),
            group="loyalty",
            order=30,
        ),
    )
    seg.register_field(
        "spend",
        FieldSpec(
            _("Spend (fen)"),
            ("gte", "lte", "between"),
            "amount",
            _v_spend,
            _b_spend,
            extra=("days",),
            help=_("Within the last N days (default 90): till receipts, and Tmall/JD orders when included."),
            group="loyalty",
            order=40,
        ),
    )
    seg.register_field(
        "last_purchase",
        FieldSpec(
            _("Last purchase"),
            ("before", "after"),
            "date",
            _v_last_purchase,
            _b_last_purchase,
            help=_("Days in Asia/Shanghai time; contacts who never bought match neither."),
            group="loyalty",
            order=45,
        ),
    )
    seg.register_field(
        "bought",
        FieldSpec(
            _("Bought"),
            ("any",),
            "bought",
            _v_bought,
            _b_bought,
            _categories,
            extra=("days",),
            help=_("Any of these SKUs or categories; within the last N days when given."),
            group="loyalty",
            order=50,
        ),
    )
