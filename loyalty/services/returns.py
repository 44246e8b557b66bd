"""Till returns (issue 12, item 3): reverse the points some lines of a receipt earned, once, proportionally.

A return names its receipt (store, receipt_id), the lines (sku, qty) and the till's return_id (its idempotency
key, unique per store). Per purchase line, what a return takes back is the line's points (PurchaseLine.points,
written by earning; a proportional share of Purchase.points by amount on rows from before per-line points) times
the returned share of its qty, counted cumulatively so returning every unit takes back exactly what it earned.

Points already spent: LOYALTY_RETURN_NEGATIVE_BALANCE True -> the balance goes negative (a debt the next credits
pay off first); False (default) -> take what the balance holds and record the rest as the return's shortfall."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.db import IntegrityError, transaction
from django.db.models import Sum

from crm.errors import ApplicationError, Conflict, NotFound
from loyalty.models import (
    Card,
    PointsLedger,
    Purchase,
    PurchaseLine,
    PurchaseReturn,
    ReturnLine,
    ScanReview,
    Store,
)
from loyalty.scoping import store_check_user
from loyalty.services.points import points_credit

MAX_LINES = 200


@dataclass(frozen=True)
class ReturnResult:
    purchase_return: PurchaseReturn
    duplicate: bool


def _clean_lines(lines: Any) -> list[tuple[str, int]]:
    if not isinstance(lines, list) or not lines or len(lines) > MAX_LINES:
        raise ApplicationError(f"lines must be a list of 1 to {MAX_LINES} {{sku, qty}}.", field="lines")
    clean: list[tuple[str, int]] = []
    for i, line in enumerate(lines):
        sku = line.get("sku") if isinstance(line, dict) else None
        qty = line.get("qty") if isinstance(line, dict) else None
        if not isinstance(sku, str) or not sku.strip() or len(sku.strip()) > 64:
            raise ApplicationError("sku is required (at most 64 chars).", field=f"lines[{i}].sku")
        if not isinstance(qty, int) or isinstance(qty, bool) or not 0 < qty <= 100_000:
            raise ApplicationError("qty must be a positive integer.", field=f"lines[{i}].qty")
        clean.append((sku.strip(), qty))
    return clean


def _line_points(purchase: Purchase, lines: list[PurchaseLine]) -> dict[int, int]:
    """Points each line earned: its own, or (rows from before per-line points) a share of the receipt's by amount."""
    if any(line.points for line in lines) or not purchase.points:
        return {line.pk: max(line.points, 0) for line in lines}
    total = sum(line.amount_fen for line in lines) or 1
    shares = {line.pk: purchase.points * line.amount_fen // total for line in lines}
    # The rounding remainder goes to the largest line, so the shares add up to the receipt's points.
    if lines:
        biggest = max(lines, key=lambda line: (line.amount_fen, -line.pk))
        shares[biggest.pk] += purchase.points - sum(shares.values())
    return shares


def _share(value: int, qty_done: int, qty: int) -> int:
    return value * qty_done // qty if qty else 0


def _same_return(existing: PurchaseReturn, purchase: Purchase | None, wanted: list[tuple[str, int]]) -> ReturnResult:
    got: dict[str, int] = defaultdict(int)
    for line in existing.lines.all():
        got[line.sku] += line.qty
    want: dict[str, int] = defaultdict(int)
    for sku, qty in wanted:
        want[sku] += qty
    if (purchase is not None and existing.purchase_id != purchase.pk) or dict(got) != dict(want):
        raise Conflict(
            "This return_id was already used for another return.", code="return_id_reused", field="return_id"
        )
    return ReturnResult(purchase_return=existing, duplicate=True)


def return_record(
    *,
    store_code: str,
    receipt_id: str,
    return_id: str,
    lines: Any,
    cashier: AbstractBaseUser | None = None,
) -> ReturnResult:
    """Record a till's return of some lines of a receipt and reverse their points, once per (store, return_id).

    Refusals (nothing written): unknown store 400 store_unknown; a till not bound to it 403 store_forbidden;
    unknown receipt 404 receipt_unknown; a sku not on the receipt 400 sku_not_bought; more than was bought, all
    returns counted, 409 return_exceeds_purchase; the same return_id with other lines 409 return_id_reused."""
    if not isinstance(return_id, str) or not return_id.strip() or len(return_id.strip()) > 64:
        raise ApplicationError("return_id is required (at most 64 chars).", field="return_id")
    return_id = return_id.strip()
    receipt_id = receipt_id.strip() if isinstance(receipt_id, str) else ""
    if not receipt_id or len(receipt_id) > 64:
        raise ApplicationError("receipt_id is required (at most 64 chars).", field="receipt_id")
    wanted = _clean_lines(lines)
    store = Store.objects.filter(code=store_code).first() if isinstance(store_code, str) else None
    if store is None:
        raise ApplicationError(f"Unknown store {store_code!r}.", code="store_unknown", field="store")
    store_check_user(store, cashier if cashier is not None and cashier.is_authenticated else None)
    purchase = Purchase.objects.filter(store=store, receipt_id=receipt_id).first()
    existing = PurchaseReturn.objects.filter(store=store, return_id=return_id).first()
    if existing:
        return _same_return(existing, purchase, wanted)
    if purchase is None:
        raise NotFound(f"No receipt {receipt_id!r} at store {store.code}.", code="receipt_unknown", field="receipt_id")
    try:
        return _record(store, purchase, return_id, wanted, cashier)
    except IntegrityError:
        # The same return_id posted concurrently (for the same card we would have waited on its lock).
        existing = PurchaseReturn.objects.filter(store=store, return_id=return_id).first()
        if existing is None:
            raise
        return _same_return(existing, purchase, wanted)


def points_left_to_reverse(purchase: Purchase) -> int:
    """What a receipt's credit still holds to take back: its points less what earlier returns reversed or recorded
    as shortfall, and less a review's reversal of the whole scan. Read under the card's lock (every caller holds
    it), so a return and a review reversal of one receipt never take the same points twice."""
    done = PurchaseReturn.objects.filter(purchase=purchase).aggregate(
        n=Sum("points_reversed") + Sum("shortfall")
    )["n"] or 0
    review = ScanReview.objects.filter(purchase=purchase, status=ScanReview.Status.REVERSED).first()
    if review is not None and review.reversal_id:
        done += -review.reversal.delta
    return max(purchase.points - done, 0)


@transaction.atomic
def _record(store: Store, purchase: Purchase, return_id: str, wanted: list[tuple[str, int]], cashier) -> ReturnResult:
    # The card lock first, as every points movement takes it: returns of one receipt (and of one card) serialise,
    # so the cumulative qty check below sees every committed return.
    card = Card.objects.select_for_update().get(pk=purchase.card_id)
    existing = PurchaseReturn.objects.filter(store=store, return_id=return_id).first()
    if existing:
        return _same_return(existing, purchase, wanted)
    lines = list(purchase.lines.order_by("id"))
    returned = dict(
        ReturnLine.objects.filter(line__purchase=purchase)
        .values("line_id")
        .annotate(qty=Sum("qty"))
        .values_list("line_id", "qty")
    )
    by_sku: dict[str, list[PurchaseLine]] = defaultdict(list)
    for line in lines:
        by_sku[line.sku].append(line)
    points_of = _line_points(purchase, lines)

    take: dict[int, int] = defaultdict(int)  # purchase line id -> qty this return takes
    for i, (sku, qty) in enumerate(wanted):
        if sku not in by_sku:
            raise ApplicationError(
                f"{sku} is not on receipt {purchase.receipt_id}.", code="sku_not_bought", field=f"lines[{i}].sku"
            )
        left = qty
        for line in by_sku[sku]:
            free = line.qty - returned.get(line.pk, 0) - take[line.pk]
            step = min(free, left)
            if step > 0:
                take[line.pk] += step
                left -= step
        if left:
            bought = sum(line.qty for line in by_sku[sku])
            raise Conflict(
                f"{sku}: {bought} bought, {bought - sum(returned.get(x.pk, 0) for x in by_sku[sku])} left to "
                f"return; {qty} asked.",
                code="return_exceeds_purchase",
                field=f"lines[{i}].qty",
            )

    ret = PurchaseReturn.objects.create(
        store=store,
        return_id=return_id,
        purchase=purchase,
        cashier=cashier if cashier is not None and cashier.is_authenticated else None,
    )
    rows = []
    for line in lines:
        qty = take.get(line.pk, 0)
        if not qty:
            continue
        before, after = returned.get(line.pk, 0), returned.get(line.pk, 0) + qty
        rows.append(
            ReturnLine(
                purchase_return=ret,
                line=line,
                sku=line.sku,
                qty=qty,
                amount_fen=_share(line.amount_fen, after, line.qty) - _share(line.amount_fen, before, line.qty),
                points=_share(points_of[line.pk], after, line.qty) - _share(points_of[line.pk], before, line.qty),
            )
        )
    left = points_left_to_reverse(purchase)  # before this return's own row counts
    ReturnLine.objects.bulk_create(rows)
    owed = min(sum(row.points for row in rows), left)
    ret.amount_fen = sum(row.amount_fen for row in rows)
    negative_ok = bool(getattr(settings, "LOYALTY_RETURN_NEGATIVE_BALANCE", False))
    reversed_ = owed if negative_ok else min(owed, max(card.points_balance, 0))
    if reversed_:
        ret.entry = points_credit(
            card_id=card.pk,
            delta=-reversed_,
            kind=PointsLedger.Kind.RETURN,
            idempotency_key=f"return:{store.pk}:{return_id}",
            reason=f"Return {return_id} of receipt {purchase.receipt_id}",
            purchase=purchase,
            user=cashier,
            allow_negative=negative_ok,
        )
    ret.points_reversed, ret.shortfall = reversed_, owed - reversed_
    ret.save(update_fields=["amount_fen", "points_reversed", "shortfall", "entry"])
    return ReturnResult(purchase_return=ret, duplicate=False)
