"""A till scan's writes as one statement (PostgreSQL, the hot path of issue 12's `till_scan` bench).

`scan_lookup` reads, before anything is consumed or written, what the scan decides on: this store's purchase for
the receipt (a replay), the card's row and the points it earned in the tier window. `scan_write` then writes the
scan in one statement of data-modifying CTEs, in autocommit (a single statement is its own transaction, so no
BEGIN/COMMIT round trips):

    c0: the card row, locked (FOR UPDATE)
    ok: c0, only when its locked row is still the row the lookup read (balance, lifetime points, tier, grace
        note and updated_at, which every balance change sets): nothing of the card moved in between, so the
        points, the lot's debt and the tier decision made on the lookup's row hold under the lock
    p:  the purchase (ON CONFLICT (store, receipt_id) DO NOTHING: a concurrent retry of the receipt)
    c:  its lines;  e: the ledger row;  l: its lot;  u: the card's new balance
    +   the velocity rule's count of the card's recent scans

Nothing is written unless `ok` and `p` both hold (every insert selects from them). When the row moved (a
concurrent scan, return or redemption of the card), `scan_write` answers MOVED and the scan takes the
transactional path (scans.py), which locks and reads again. A scan that could change the tier, a bonus, a
journey step's first purchase or a day cap (which reads the day's points under the lock) never comes here
(`scan_fast_eligible`), so nothing else has to happen in the scan's transaction.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db import connection
from django.db.backends.postgresql.base import ServerBindingCursor  # psycopg is a requirement
from django.utils import timezone

from loyalty.models import Card, EarningRule, JourneyStep, PointsLedger, PointsLot, Purchase, PurchaseLine, TierPolicy
from loyalty.services._insert import children_cte, prep_values
from loyalty.services.lots import lot_expiry
from loyalty.till_cache import TillConfig

MOVED = object()  # the card's row changed between the lookup and the lock
_CARD_COLUMNS = ("id", "contact_id", "number", "tier_id", "points_balance", "lifetime_points", "tier_below_since",
                 "created_at", "updated_at")  # fmt: skip
_GUARD = ("points_balance", "lifetime_points", "tier_id", "tier_below_since", "updated_at")
_sql: dict[tuple, str] = {}


class _PreparedCursor(ServerBindingCursor):
    """psycopg's server-binding cursor, every statement prepared (Django turns automatic preparing off)."""

    def execute(self, query, params=None, *, prepare=None, binary=None):
        return super().execute(query, params, prepare=True, binary=binary)


def scan_fast_eligible(config: TillConfig) -> bool:
    """The configuration lets a scan skip the transactional path: PostgreSQL, a points-based tier policy (its
    window sum is read with the lookup), and no active rule or step that reads or writes more under the lock."""
    if connection.vendor != "postgresql":
        return False
    cached = config.parts.get("scan_fast")
    if cached is None:
        kinds = {rule.kind for rule in config.earning_rules()}
        cached = config.parts["scan_fast"] = (
            EarningRule.Kind.CAP_DAY not in kinds
            and EarningRule.Kind.BONUS not in kinds
            and JourneyStep.Trigger.FIRST_PURCHASE not in config.journey_triggers()
            and config.tier_policy().basis == TierPolicy.Basis.POINTS
        )
    return cached


@dataclass
class Lookup:
    existing_id: int | None
    card: Card | None
    window_points: int  # points earned (EARNED_KINDS) since `since`, before this scan


def scan_lookup(store_id: int, receipt_id: str, card_number: str, kinds: Sequence[str], since: datetime) -> Lookup:
    """One round trip, before the nonce is consumed: the receipt's purchase id, the card and its window sum."""
    qn = connection.ops.quote_name
    key = ("lookup", len(kinds))
    sql = _sql.get(key)
    if sql is None:
        # Identifiers come from the models, quoted; the values are bound parameters.
        sql = _sql[key] = (
            f"SELECT (SELECT {qn('id')} FROM {qn(Purchase._meta.db_table)} WHERE {qn('store_id')} = %s"  # noqa: S608
            f" AND {qn('receipt_id')} = %s), {', '.join(f'c.{qn(col)}' for col in _CARD_COLUMNS)},"
            f" (SELECT SUM({qn('delta')}) FROM {qn(PointsLedger._meta.db_table)} WHERE {qn('card_id')} = c.{qn('id')}"
            f" AND {qn('kind')} IN ({', '.join(['%s'] * len(kinds))}) AND {qn('created_at')} >= %s)"
            f" FROM (SELECT 1) AS one LEFT JOIN {qn(Card._meta.db_table)} c ON c.{qn('number')} = %s"
        )
    row = _fetchone(sql, [store_id, receipt_id, *kinds, connection.ops.adapt_datetimefield_value(since), card_number])
    card = None
    if row[1] is not None:
        card = Card.from_db(connection.alias, _CARD_COLUMNS, row[1:-1])
    return Lookup(existing_id=row[0], card=card, window_points=row[-1] or 0)


def _fetchone(sql: str, params: list) -> tuple:
    """cursor.execute + fetchone, as a statement prepared once per connection (setting
    LOYALTY_TILL_PREPARED_STATEMENTS; parameters bound by the server). Still a Django cursor: execute wrappers,
    query logging and error wrapping as for any other statement."""
    if not settings.LOYALTY_TILL_PREPARED_STATEMENTS:
        with connection.cursor() as cursor:
            cursor.execute(sql, params)
            return cursor.fetchone()
    connection.ensure_connection()
    if connection.connection.prepare_threshold is None:
        # Django's None turns preparing off altogether, also for prepare=True; a threshold never reached keeps
        # every other statement unprepared (and Django's client-side cursors never prepare anyway).
        connection.connection.prepare_threshold = 2**31 - 1
    with connection.wrap_database_errors:
        raw = _PreparedCursor(connection.connection)
    with connection._prepare_cursor(raw) as cursor:
        cursor.execute(sql, params)
        return cursor.fetchone()


def _fields(model, but: str = "") -> list:
    """The model's columns an insert binds: all but the primary key and `but` (taken from a CTE instead)."""
    return [f for f in model._meta.concrete_fields if not f.primary_key and f.name != but]


def _statement(n_lines: int, credit: bool) -> str:
    key = ("write", n_lines, credit)
    sql = _sql.get(key)
    if sql is not None:
        return sql
    qn = connection.ops.quote_name
    cards, purchases, ledger, lots = Card._meta, Purchase._meta, PointsLedger._meta, PointsLot._meta
    p_fields = _fields(Purchase)
    guard = " AND ".join(f"{qn(c)} IS NOT DISTINCT FROM %s" for c in _GUARD)
    # Identifiers come from the models, quoted; every value is a bound parameter.
    parts = [
        f"WITH c0 AS (SELECT {', '.join(qn(c) for c in _GUARD)}, {qn('id')} FROM {qn(cards.db_table)}"  # noqa: S608
        f" WHERE {qn('id')} = %s FOR UPDATE),"
        f" ok AS (SELECT {qn('id')} FROM c0 WHERE {guard} AND NOT EXISTS (SELECT 1 FROM {qn(ledger.db_table)}"
        f" WHERE {qn('idempotency_key')} = %s)),"
        f" p AS (INSERT INTO {qn(purchases.db_table)} ({', '.join(qn(f.column) for f in p_fields)})"
        f" SELECT {', '.join(['%s'] * len(p_fields))} FROM ok"
        f" ON CONFLICT ({qn('store_id')}, {qn('receipt_id')}) DO NOTHING RETURNING {qn('id')} AS id)"
    ]
    lines_out = "NULL"
    if n_lines:
        parts.append(", " + children_cte(connection, PurchaseLine._meta, "purchase", _fields(PurchaseLine, "purchase"),
                                         n_lines))  # fmt: skip
        lines_out = "(SELECT array_agg(id ORDER BY id) FROM c)"
    entry_out = lot_out = "NULL"
    if credit:
        e_fields, l_fields = _fields(PointsLedger), _fields(PointsLot)
        e_values = ", ".join("p.id" if f.name == "purchase" else "%s" for f in e_fields)
        l_values = ", ".join("e.id" if f.name == "entry" else "%s" for f in l_fields)
        parts.append(
            f", e AS (INSERT INTO {qn(ledger.db_table)} ({', '.join(qn(f.column) for f in e_fields)})"  # noqa: S608
            f" SELECT {e_values} FROM p RETURNING {qn('id')} AS id),"
            f" l AS (INSERT INTO {qn(lots.db_table)} ({', '.join(qn(f.column) for f in l_fields)})"
            f" SELECT {l_values} FROM e RETURNING {qn('id')} AS id),"
            f" u AS (UPDATE {qn(cards.db_table)} SET {qn('points_balance')} = %s, {qn('lifetime_points')} = %s,"
            f" {qn('updated_at')} = %s WHERE {qn('id')} = %s AND EXISTS (SELECT 1 FROM e))"
        )
        entry_out, lot_out = "(SELECT id FROM e)", "(SELECT id FROM l)"
    parts.append(
        f" SELECT (SELECT id FROM ok), (SELECT id FROM p), {lines_out}, {entry_out}, {lot_out},"  # noqa: S608
        f" (SELECT COUNT(*) FROM {qn(purchases.db_table)} WHERE {qn('card_id')} = %s AND {qn('scanned_at')} >= %s)"
    )
    sql = _sql[key] = "".join(parts)
    return sql


@dataclass
class Written:
    purchase_id: int | None  # None: the receipt was recorded meanwhile (answer as the replay)
    recent_scans: int  # the card's committed scans in the velocity window, this one not included


def scan_write(card: Card, purchase: Purchase, lines: list[PurchaseLine], entry: PointsLedger | None,
               velocity_minutes: int):  # fmt: skip
    """The statement above. `card` is the lookup's row (the guard); `entry` the credit (None for a receipt that
    earns nothing): its lot and the card's new balance are made here, as points_credit_locked makes them (a
    negative balance before the credit is paid off first). -> Written (card, purchase, lines, entry updated
    in place), or MOVED (nothing written)."""
    credit = entry is not None
    sql = _statement(len(lines), credit)
    adapt = connection.ops.adapt_datetimefield_value
    params: list = [card.pk]
    params += [card.points_balance, card.lifetime_points, card.tier_id, adapt(card.tier_below_since),
               adapt(card.updated_at)]  # fmt: skip
    params.append(entry.idempotency_key if credit else f"receipt:{purchase.store_id}:{purchase.receipt_id}")
    params += prep_values(purchase, _fields(Purchase), connection)  # sets scanned_at
    line_fields = _fields(PurchaseLine, "purchase")
    for n, line in enumerate(lines):
        params.append(n)
        params += prep_values(line, line_fields, connection)
    lot = None
    if credit:
        params += prep_values(entry, _fields(PointsLedger, "purchase"), connection)  # sets created_at
        expires_on, expires_at = lot_expiry(entry.created_at)
        delta = entry.delta
        lot = PointsLot(card=card, points=delta, remaining=max(delta - max(-card.points_balance, 0), 0),
                        expires_on=expires_on, expires_at=expires_at)  # fmt: skip
        params += prep_values(lot, _fields(PointsLot, "entry"), connection)
        balance = (card.points_balance + delta, card.lifetime_points + delta, timezone.now())
        params += [balance[0], balance[1], adapt(balance[2]), card.pk]
    params += [card.pk, adapt(purchase.scanned_at - timedelta(minutes=velocity_minutes))]
    ok, purchase_id, line_ids, entry_id, lot_id, recent = _fetchone(sql, params)
    if ok is None:
        return MOVED
    alias = connection.alias
    if purchase_id is not None:
        purchase.pk = purchase_id
        purchase._state.adding, purchase._state.db = False, alias
        for line, pk in zip(lines, line_ids or [], strict=True):
            line.purchase, line.pk = purchase, pk
            line._state.adding, line._state.db = False, alias
        if credit:
            entry.pk, entry.purchase = entry_id, purchase
            lot.pk, lot.entry = lot_id, entry
            for obj in (entry, lot):
                obj._state.adding, obj._state.db = False, alias
            card.points_balance, card.lifetime_points, card.updated_at = balance
    return Written(purchase_id=purchase_id, recent_scans=recent)
