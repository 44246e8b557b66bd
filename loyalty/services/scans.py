"""Till scans: record the purchase and its lines, credit points once per receipt, re-evaluate the tier."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.db import connection, transaction
from django.utils import timezone

from crm.errors import ApplicationError, Conflict
from loyalty.models import Card, PointsLedger, Purchase, PurchaseLine, Store, TierChange
from loyalty.qr import QrToken, qr_token_check_fresh, qr_token_consume, qr_token_parse
from loyalty.scoping import store_check_user
from loyalty.services._insert import insert_rows, insert_unless_conflict, insert_with_children
from loyalty.services._scan_statement import MOVED, scan_fast_eligible, scan_lookup, scan_write
from loyalty.services.earning import earn_bonuses_grant, earn_evaluate
from loyalty.services.journeys import journey_first_purchase
from loyalty.services.points import points_credit_locked
from loyalty.services.tiers import earned_kinds, tier_evaluate_locked, tier_unchanged_by_credit
from loyalty.services.velocity import velocity_count_params, velocity_count_sql
from loyalty.till_cache import till_config, till_config_pinned

MAX_AMOUNT_FEN = 10**10  # 100 million yuan: anything above is a till bug, not a purchase
MAX_ITEMS = 500


@dataclass(frozen=True)
class ScanResult:
    purchase: Purchase
    duplicate: bool
    tier_change: TierChange | None = None
    # The card's scans within the velocity window, this one included, counted under the card lock (PostgreSQL;
    # None: velocity_check counts them itself).
    recent_scans: int | None = None


def points_for_amount(amount_fen: int) -> int:
    """The default rate alone (LOYALTY_FEN_PER_POINT); scans use the earning rules (earn_evaluate)."""
    return amount_fen // settings.LOYALTY_FEN_PER_POINT


def _clean_items(items: list[dict[str, Any]] | None) -> list[PurchaseLine]:
    if items is None:
        return []
    if not isinstance(items, list) or len(items) > MAX_ITEMS:
        raise ApplicationError(f"items must be a list of at most {MAX_ITEMS} lines.", field="items")
    lines = []
    for index, item in enumerate(items):
        where = f"items[{index}]"
        if not isinstance(item, dict):
            raise ApplicationError("Each item must be an object.", field=where)
        sku = item.get("sku")
        if not isinstance(sku, str) or not sku.strip() or len(sku) > 64:
            raise ApplicationError("sku is required (at most 64 chars).", field=f"{where}.sku")
        name = item.get("name") or ""
        if not isinstance(name, str) or len(name) > 128:
            raise ApplicationError("name must be text of at most 128 chars.", field=f"{where}.name")
        qty, amount = item.get("qty", 1), item.get("amount_fen")
        if not isinstance(qty, int) or isinstance(qty, bool) or not 1 <= qty <= 100_000:
            raise ApplicationError("qty must be a positive integer.", field=f"{where}.qty")
        if not isinstance(amount, int) or isinstance(amount, bool) or not 0 <= amount <= MAX_AMOUNT_FEN:
            raise ApplicationError("amount_fen must be a non-negative integer (fen).", field=f"{where}.amount_fen")
        lines.append(PurchaseLine(sku=sku.strip(), name=name, qty=qty, amount_fen=amount))
    return lines


def _replay(existing: Purchase, parsed: QrToken, amount_fen: int) -> ScanResult:
    """The receipt was recorded before: the same scan again is a harmless retry; a different one is a conflict."""
    if existing.amount_fen != amount_fen:
        raise Conflict(
            f"Receipt already recorded with amount_fen={existing.amount_fen}.",
            code="receipt_amount_mismatch",
            field="amount_fen",
            details={"purchase_id": existing.pk, "amount_fen": existing.amount_fen},
        )
    if existing.card.number != parsed.card_number:
        raise Conflict(
            "Receipt already recorded for another card.", field="receipt_id", details={"purchase_id": existing.pk}
        )
    return ScanResult(purchase=existing, duplicate=True)


def _existing(store: Store, receipt_id: str) -> Purchase | None:
    return (
        Purchase.objects.select_related("card", "store", "tier_after")
        .filter(store=store, receipt_id=receipt_id)
        .first()
    )


_LOOKUP_SQL: dict[str, str] = {}


def _lookup(store: Store, receipt_id: str, card_number: str) -> tuple[int | None, int | None]:
    """(id of this store's purchase for the receipt or None, id of the card with this number or None): one
    round trip for the two reads every scan starts with (both on unique indexes)."""
    sql = _LOOKUP_SQL.get(connection.vendor)
    if sql is None:
        qn = connection.ops.quote_name
        # Identifiers come from the models, quoted; the values are bound parameters.
        sql = _LOOKUP_SQL[connection.vendor] = (
            f"SELECT (SELECT {qn('id')} FROM {qn(Purchase._meta.db_table)} WHERE {qn('store_id')} = %s"  # noqa: S608
            f" AND {qn('receipt_id')} = %s), (SELECT {qn('id')} FROM {qn(Card._meta.db_table)}"
            f" WHERE {qn('number')} = %s)"
        )
    with connection.cursor() as cursor:
        cursor.execute(sql, [store.pk, receipt_id, card_number])
        existing_id, card_id = cursor.fetchone()
    return existing_id, card_id


def _lock_card(card_id: int) -> Card:
    """The card, locked (SELECT .. FOR UPDATE, a statement compiled once), its tier from the cached ladder."""
    sql = _LOOKUP_SQL.get(f"lock-{connection.vendor}")
    if sql is None:
        qn = connection.ops.quote_name
        columns = ", ".join(qn(f.column) for f in Card._meta.concrete_fields)
        lock = " FOR UPDATE" if connection.features.has_select_for_update else ""
        sql = _LOOKUP_SQL[f"lock-{connection.vendor}"] = (
            f"SELECT {columns} FROM {qn(Card._meta.db_table)} WHERE {qn('id')} = %s{lock}"  # noqa: S608
        )
    card = next(iter(Card.objects.raw(sql, [card_id])))
    card.tier = till_config().tier(card.tier_id) if card.tier_id is not None else None
    return card


def _new_purchase(store, receipt_id, card, amount_fen, earned, lines, user, parsed) -> Purchase:
    """The receipt's purchase as the rules priced it (its lines' points set), not yet written."""
    for line, line_points in zip(lines, earned.line_points or [0] * len(lines), strict=True):
        line.points = line_points
    return Purchase(
        store=store,
        receipt_id=receipt_id,
        card=card,
        amount_fen=amount_fen,
        points=earned.points,
        balance_after=card.points_balance + earned.points,
        cashier=user,
        qr_issued_at=datetime.fromtimestamp(parsed.issued_at, tz=UTC),
        tier_before=card.tier,
        tier_after=card.tier,
        earn_breakdown=earned.breakdown + [dict(b, bonus=True) for b in earned.bonuses],
    )


def _scan_one_statement(store, receipt_id, amount_fen, lines, user, parsed, looked) -> ScanResult | None:
    """The scan written in one statement (loyalty.services._scan_statement), or None when it must take the
    transactional path: its credit could move the tier, or the card's row moved since the lookup."""
    card = looked.card
    card.tier = till_config().tier(card.tier_id) if card.tier_id is not None else None
    earned = earn_evaluate(card=card, store=store, amount_fen=amount_fen, lines=lines, at=timezone.now())
    points = earned.points
    if earned.bonuses or (points and not tier_unchanged_by_credit(card, points, looked.window_points)):
        return None
    purchase = _new_purchase(store, receipt_id, card, amount_fen, earned, lines, user, parsed)
    entry = None
    if points:
        entry = PointsLedger(
            card=card,
            delta=points,
            kind=PointsLedger.Kind.EARN,
            reason=f"Receipt {receipt_id} at {store.code}"[:255],
            idempotency_key=f"receipt:{store.pk}:{receipt_id}",
            balance_after=card.points_balance + points,
            created_by=user,
        )
    written = scan_write(card, purchase, lines, entry, settings.LOYALTY_VELOCITY_WINDOW_MINUTES)
    if written is MOVED:
        return None
    if written.purchase_id is None:  # the receipt recorded meanwhile (a concurrent retry)
        return _replay(_existing(store, receipt_id), parsed, amount_fen)
    return ScanResult(purchase=purchase, duplicate=False, recent_scans=written.recent_scans + 1)


def scan_record(
    *,
    qr_token: str,
    store_code: str,
    receipt_id: str,
    amount_fen: int,
    items: list[dict[str, Any]] | None = None,
    cashier: AbstractBaseUser | None = None,
    now: float | None = None,
) -> ScanResult:
    """A till scanned a card's QR for a receipt: record it and credit points exactly once per (store, receipt).

    Forged token -> 403, malformed/expired -> 400 (field qr_token); unknown store -> 400 (store); the same
    receipt again -> the original result with duplicate=True (even after the token expired: till retries);
    the same receipt with another amount or card -> 409; a cashier not bound to the store -> 403 (store).

    The hot path (docs/loyalty-till.md): stores, bindings, rules and tiers come from loyalty.till_cache; the
    writes are one INSERT each (purchase, lines, ledger row, lot) and one UPDATE of the card."""
    with till_config_pinned():  # one version check for the whole scan
        return _scan_record(qr_token, store_code, receipt_id, amount_fen, items, cashier, now)


def _scan_record(qr_token, store_code, receipt_id, amount_fen, items, cashier, now) -> ScanResult:
    parsed = qr_token_parse(qr_token)
    receipt_id = receipt_id.strip() if isinstance(receipt_id, str) else ""
    if not receipt_id or len(receipt_id) > 64:
        raise ApplicationError("receipt_id is required (at most 64 chars).", field="receipt_id")
    if not isinstance(amount_fen, int) or isinstance(amount_fen, bool) or not 0 < amount_fen <= MAX_AMOUNT_FEN:
        raise ApplicationError("amount_fen must be a positive integer (fen).", field="amount_fen")
    lines = _clean_items(items)
    store = till_config().store(store_code) if isinstance(store_code, str) else None
    if store is None:
        raise ApplicationError(f"Unknown store {store_code!r}.", code="store_unknown", field="store")
    user = cashier if cashier is not None and cashier.is_authenticated else None
    # Before the replay too: a till of another store may not read this store's receipts either.
    store_check_user(store, user)

    config, looked = till_config(), None
    if scan_fast_eligible(config):
        # The card's row and its tier-window points come with the replay check (same round trip), for the
        # one-statement write below.
        window = config.tier_policy().window_days
        since = timezone.now() - timedelta(days=window) if window else timezone.now()
        looked = scan_lookup(store.pk, receipt_id, parsed.card_number, earned_kinds(), since)
        existing_id, card_id = looked.existing_id, looked.card.pk if looked.card is not None else None
    else:
        existing_id, card_id = _lookup(store, receipt_id, parsed.card_number)
    if existing_id is not None:
        return _replay(_existing(store, receipt_id), parsed, amount_fen)
    if not store.is_active:
        raise ApplicationError(f"Store {store.code} is closed.", code="store_inactive", field="store")
    qr_token_check_fresh(parsed, now)
    if card_id is None:
        raise ApplicationError("No card has this number.", code="unknown_card", field="qr_token")
    # Single use: the token's nonce is bound to this (store, receipt) before anything is written. A replay of
    # this receipt was answered above (even with the token used or expired); a concurrent retry passes here.
    qr_token_consume(parsed, f"{store.pk}:{receipt_id}")
    if looked is not None:
        fast = _scan_one_statement(store, receipt_id, amount_fen, lines, user, parsed, looked)
        if fast is not None:
            return fast

    with transaction.atomic():
        # Lock the card first: scans of one card serialise, and a concurrent retry of this receipt
        # finds the first one's purchase (the insert below) instead of racing it.
        card = _lock_card(card_id)
        # The earning rules (loyalty.services.earning), evaluated under the card lock so the day cap holds.
        earned = earn_evaluate(card=card, store=store, amount_fen=amount_fen, lines=lines, at=timezone.now())
        points = earned.points
        # Its balance_after is what it will be after this receipt's credit; corrected below when a bonus or the
        # tier moves it.
        purchase = _new_purchase(store, receipt_id, card, amount_fen, earned, lines, user, parsed)
        # The receipt recorded meanwhile (a retry that held the lock before us, or the same receipt scanned at
        # the same moment against another card, whose lock we do not hold): answer as the replay.
        recent = None
        if connection.vendor == "postgresql":
            # The purchase, its lines and the velocity rule's count of this card's recent scans: one statement.
            # The count runs under the card lock, so it sees every committed scan of the card (+1: this one).
            stored, recent = insert_with_children(
                purchase, ("store", "receipt_id"), lines, "purchase", velocity_count_sql(), velocity_count_params
            )
            recent = recent + 1 if stored else None
        else:
            stored = insert_unless_conflict(purchase, ("store", "receipt_id"))
            if stored:
                for line in lines:
                    line.purchase = purchase
                insert_rows(lines)
        if not stored:
            return _replay(_existing(store, receipt_id), parsed, amount_fen)
        change = None
        if points:
            points_credit_locked(
                card,
                delta=points,
                kind=PointsLedger.Kind.EARN,
                idempotency_key=f"receipt:{store.pk}:{receipt_id}",
                reason=f"Receipt {receipt_id} at {store.code}",
                purchase=purchase,
                user=cashier,
            )
        journey_first_purchase(card=card, purchase=purchase)  # a journey step's coupon, after commit
        # Bonus events (first purchase, profile complete): their own credits, once per contact.
        bonus = earn_bonuses_grant(card=card, purchase=purchase, bonuses=earned.bonuses, user=cashier)
        if bonus:  # credited through points_credit on its own copy of the locked row
            card.refresh_from_db(fields=["points_balance", "lifetime_points", "tier", "tier_below_since"])
        if bonus or points:
            change = tier_evaluate_locked(card)
            tier_after = change.to_tier if change else purchase.tier_before
            if card.points_balance != purchase.balance_after or tier_after != purchase.tier_after:
                purchase.balance_after, purchase.tier_after = card.points_balance, tier_after
                purchase.save(update_fields=["balance_after", "tier_after"])
    return ScanResult(purchase=purchase, duplicate=False, tier_change=change, recent_scans=recent)
