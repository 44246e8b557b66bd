"""The points ledger: every movement is a new row with an idempotency key; the card's balance follows it."""

from __future__ import annotations

from django.contrib.auth.models import AbstractBaseUser
from django.db import connections, router, transaction
from django.utils import timezone

from crm.errors import ApplicationError, Conflict, NotFound
from loyalty.models import Card, PointsLedger, PointsLot, Purchase, Redemption
from loyalty.services._insert import insert_unless_conflict, prep_values
from loyalty.services.lots import lot_expiry, lot_open, lots_consume
from loyalty.services.tiers import tier_evaluate

# Kinds that count toward the tier (what the customer earned); redeeming or expiring points never demotes.
# A return's reversal takes back what was earned, so it counts too.
TIER_KINDS = frozenset({PointsLedger.Kind.EARN, PointsLedger.Kind.ADJUST, PointsLedger.Kind.RETURN})
MAX_KEY_LENGTH = 200


def _same_entry(entry: PointsLedger, card_id: int, delta: int, kind: str) -> PointsLedger:
    if (entry.card_id, entry.delta, entry.kind) != (card_id, delta, kind):
        raise Conflict(
            "This idempotency key was already used for a different points movement.", field="idempotency_key"
        )
    return entry


def _check(kind: str, delta: int, idempotency_key: str) -> None:
    if kind not in PointsLedger.Kind.values:
        raise ApplicationError(f"Unknown ledger kind {kind!r}.", field="kind")
    if not isinstance(delta, int) or isinstance(delta, bool) or delta == 0:
        raise ApplicationError("delta must be a non-zero integer.", field="delta")
    if not idempotency_key or len(idempotency_key) > MAX_KEY_LENGTH:
        raise ApplicationError(
            f"idempotency_key is required (at most {MAX_KEY_LENGTH} chars).", field="idempotency_key"
        )


@transaction.atomic
def points_credit(
    *,
    card_id: int,
    delta: int,
    kind: str,
    idempotency_key: str,
    reason: str = "",
    purchase: Purchase | None = None,
    redemption: Redemption | None = None,
    user: AbstractBaseUser | None = None,
    allow_negative: bool = False,
    expire_lot_id: int | None = None,
) -> PointsLedger:
    """Append one ledger row and move the card's balance with it, exactly once per idempotency key.

    The card row is locked first, so concurrent credits to one card serialise and balance == sum(ledger).
    A positive delta opens a lot with an expiry (paying off a negative balance first); a negative one drains the
    open lots oldest first (`expire_lot_id`: only that lot, for the expiry job), so sum(open lots) ==
    max(balance, 0). `allow_negative` (returns, per LOYALTY_RETURN_NEGATIVE_BALANCE) lets the balance go below 0.
    A repeated key with the same movement returns the first row; with a different one -> 409."""
    _check(kind, delta, idempotency_key)
    card = Card.objects.select_for_update().filter(pk=card_id).first()
    if card is None:
        raise NotFound("No such card.", field="card")
    return points_credit_locked(
        card,
        delta=delta,
        kind=kind,
        idempotency_key=idempotency_key,
        reason=reason,
        purchase=purchase,
        redemption=redemption,
        user=user,
        allow_negative=allow_negative,
        expire_lot_id=expire_lot_id,
    )


def points_credit_locked(
    card: Card,
    *,
    delta: int,
    kind: str,
    idempotency_key: str,
    reason: str = "",
    purchase: Purchase | None = None,
    redemption: Redemption | None = None,
    user: AbstractBaseUser | None = None,
    allow_negative: bool = False,
    expire_lot_id: int | None = None,
) -> PointsLedger:
    """points_credit for a card the caller locked (select_for_update) in the transaction it is in (a till scan):
    no second lock, no savepoint. `card` is that locked row; its balance fields are updated in place."""
    _check(kind, delta, idempotency_key)
    card_id = card.pk
    new_balance = card.points_balance + delta
    if new_balance < 0 and not (allow_negative and delta < 0):
        # A repeated key answers with its first row before any balance check (as it always has).
        existing = PointsLedger.objects.filter(idempotency_key=idempotency_key).first()
        if existing:
            return _same_entry(existing, card_id, delta, kind)
        raise ApplicationError(
            f"Not enough points: the balance is {card.points_balance}.", code="insufficient_points", field="delta"
        )
    entry = PointsLedger(
        card=card,
        delta=delta,
        kind=kind,
        reason=reason[:255],
        idempotency_key=idempotency_key,
        purchase=purchase,
        redemption=redemption,
        balance_after=new_balance,
        created_by=user if user is not None and user.is_authenticated else None,
    )
    if delta > 0 and _credit_in_one_statement(card, entry, kind):
        return entry
    # Under the card lock a repeated key has committed or not started; the unique key also catches one used
    # concurrently for another card (whose lock we do not hold): either way the first row answers.
    if not insert_unless_conflict(entry, ("idempotency_key",)):
        existing = PointsLedger.objects.filter(idempotency_key=idempotency_key).first()
        if existing is None:
            raise Conflict("This idempotency key is being used concurrently; retry.", field="idempotency_key")
        return _same_entry(existing, card_id, delta, kind)
    if delta > 0:
        lot_open(card, entry, delta, debt=max(-card.points_balance, 0))
    else:
        taken = lots_consume(card, -delta, lot_id=expire_lot_id)
        # Lots hold exactly the positive balance: whatever they could not give is the debt a return left.
        if taken != min(-delta, max(card.points_balance, 0)):
            raise ApplicationError("The card's points lots do not match its balance.", code="lots_mismatch")
    card.points_balance = new_balance
    if kind in TIER_KINDS:
        card.lifetime_points += delta
    _save_balance(card)
    return entry


_UPDATE_SQL: dict[str, str] = {}


def _credit_in_one_statement(card: Card, entry: PointsLedger, kind: str) -> bool:
    """A positive credit on PostgreSQL: the ledger row (INSERT .. ON CONFLICT (idempotency_key) DO NOTHING), its
    lot and the card's balance as one statement (data-modifying CTEs), one round trip instead of three. The
    lot and the balance are written only when the ledger row was: False (nothing written) when the key exists,
    and the caller takes its usual path, which answers with the first row. True: entry.pk set, card updated."""
    connection = connections[router.db_for_write(PointsLedger, instance=entry)]
    if connection.vendor != "postgresql":
        return False
    delta = entry.delta
    ledger_fields = [f for f in PointsLedger._meta.concrete_fields if not f.primary_key]
    lot_fields = [f for f in PointsLot._meta.concrete_fields if not f.primary_key]
    sql = _UPDATE_SQL.get("credit-postgresql")
    if sql is None:
        qn = connection.ops.quote_name
        ledger, lot, cards = PointsLedger._meta, PointsLot._meta, Card._meta
        lot_values = ", ".join("e.id" if f.name == "entry" else "%s" for f in lot_fields)
        # Identifiers come from the models, quoted; every value is a bound parameter.
        sql = _UPDATE_SQL["credit-postgresql"] = (
            f"WITH e AS (INSERT INTO {qn(ledger.db_table)} ({', '.join(qn(f.column) for f in ledger_fields)}) "  # noqa: S608
            f"VALUES ({', '.join(['%s'] * len(ledger_fields))}) ON CONFLICT ({qn('idempotency_key')}) DO NOTHING "
            f"RETURNING {qn('id')}), "
            f"l AS (INSERT INTO {qn(lot.db_table)} ({', '.join(qn(f.column) for f in lot_fields)}) "
            f"SELECT {lot_values} FROM e RETURNING {qn('id')}), "
            f"c AS (UPDATE {qn(cards.db_table)} SET {qn('points_balance')} = %s, {qn('lifetime_points')} = %s, "
            f"{qn('updated_at')} = %s WHERE {qn('id')} = %s AND EXISTS (SELECT 1 FROM e)) "
            f"SELECT e.id, l.id FROM e CROSS JOIN l"
        )
    params = prep_values(entry, ledger_fields, connection)
    # lot_open's lot (debt: a negative balance before the credit is paid off first), entry_id from the CTE.
    expires_on, expires_at = lot_expiry(entry.created_at)
    lot = PointsLot(
        card=card,
        points=delta,
        remaining=max(delta - max(-card.points_balance, 0), 0),
        expires_on=expires_on,
        expires_at=expires_at,
    )
    params += prep_values(lot, [f for f in lot_fields if f.name != "entry"], connection)
    points_balance = card.points_balance + delta
    lifetime_points = card.lifetime_points + delta if kind in TIER_KINDS else card.lifetime_points
    updated_at = timezone.now()
    params += [
        points_balance,
        lifetime_points,
        Card._meta.get_field("updated_at").get_db_prep_save(updated_at, connection),
        card.pk,
    ]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        row = cursor.fetchone()
    if row is None:
        return False
    entry.pk, lot.pk, lot.entry = row[0], row[1], entry
    for obj in (entry, lot):
        obj._state.adding, obj._state.db = False, connection.alias
    card.points_balance, card.lifetime_points, card.updated_at = points_balance, lifetime_points, updated_at
    return True


def _save_balance(card: Card) -> None:
    """card.save(update_fields=["points_balance", "lifetime_points", "updated_at"]) as one statement compiled
    once: every credit runs it, under the card lock (so writing an unchanged lifetime_points is harmless)."""
    connection = connections[router.db_for_write(Card, instance=card)]
    sql = _UPDATE_SQL.get(connection.vendor)
    if sql is None:
        qn, meta = connection.ops.quote_name, Card._meta
        columns = ("points_balance", "lifetime_points", "updated_at")
        sql = _UPDATE_SQL[connection.vendor] = (
            f"UPDATE {qn(meta.db_table)} SET {', '.join(f'{qn(c)} = %s' for c in columns)} "  # noqa: S608
            f"WHERE {qn(meta.pk.column)} = %s"
        )
    card.updated_at = timezone.now()
    updated_at = Card._meta.get_field("updated_at").get_db_prep_save(card.updated_at, connection)
    with connection.cursor() as cursor:
        cursor.execute(sql, [card.points_balance, card.lifetime_points, updated_at, card.pk])


@transaction.atomic
def points_adjust(
    *, card_id: int, delta: int, reason: str, idempotency_key: str, user: AbstractBaseUser | None = None
) -> PointsLedger:
    """A manual correction or goodwill credit by an admin (counts toward the tier), then re-evaluate the tier."""
    if not reason or not reason.strip():
        raise ApplicationError("A reason is required for a manual adjustment.", field="reason")
    entry = points_credit(
        card_id=card_id,
        delta=delta,
        kind=PointsLedger.Kind.ADJUST,
        idempotency_key=f"adjust:{idempotency_key}",
        reason=reason.strip(),
        user=user,
    )
    tier_evaluate(card_id)
    return entry
