"""Earning rules: what a receipt earns (earn_evaluate, a plain function), bonus events once per contact, and the
rules' validation and writes (the API and the console both go through here).

Evaluation, in order:
1. the rate: the active base rule's `fen_per_point` (the lowest id wins), else settings.LOYALTY_FEN_PER_POINT;
2. a receipt under an active minimum spend earns nothing;
3. each line (no lines: the whole amount as one unitemised part) is worth its share of the receipt's amount
   (lines share amount_fen in proportion to their own amounts) / rate points, exactly (a fraction); excluded
   SKUs are worth nothing;
4. multipliers whose conditions all match (tier, store, date range in Asia/Shanghai, and per line category or SKU)
   stack multiplicatively, in rule order; each rule's share is the extra it adds to the running value;
5. rounding: the receipt's exact total is rounded DOWN once (never per step or per line), then capped per receipt
   and by what the card's Asia/Shanghai day has left under the day cap;
6. the integer total is shared out to the rules and to the lines by largest remainder (ties to the earlier one),
   so the breakdown and the per-line points each sum exactly to the receipt's points.
Bonus events (first purchase, profile complete) are separate credits, once per contact (EarningBonusGrant's unique
(contact, event, period) and the ledger key bonus:<event>:<contact>); the birthday bonus once per contact and year,
on a receipt in the birthday week (period and key suffix: the birthday's year); a return of lines does not take
them back. A birthday-week rule is a multiplier that applies when the receipt's Shanghai date is within 3 days of
the contact's birthday (crm's Contact.birthday)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any
from zoneinfo import ZoneInfo

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Sum
from django.utils import timezone
from django.utils.translation import gettext as _

from crm.errors import ApplicationError, NotFound
from loyalty.models import Card, EarningBonusGrant, EarningRule, PointsLedger, Product, Purchase, Store, Tier
from loyalty.till_cache import till_config

CHINA = ZoneInfo("Asia/Shanghai")
MAX_MULTIPLIER_PCT = 10_000  # x100: anything above is a typo
MAX_POINTS = 10**9
Kind = EarningRule.Kind


@dataclass(frozen=True)
class EarnLine:
    sku: str
    amount_fen: int
    category: str = ""


@dataclass
class EarnResult:
    points: int
    breakdown: list[dict[str, Any]]  # [{"rule": id|None, "name": str, "points": int}], sums to `points`
    line_points: list[int]  # one per input line, sums to `points` when lines were given
    bonuses: list[dict[str, Any]] = field(default_factory=list)  # [{"rule", "name", "event", "points"}], apart


def _largest_remainder(total: int, weights: list[Fraction]) -> list[int]:
    """Split the integer `total` in proportion to non-negative `weights`; the parts sum to `total` exactly."""
    whole = sum(weights, Fraction(0))
    if total <= 0 or whole <= 0:
        return [0] * len(weights)
    shares = [w * total / whole for w in weights]
    parts = [int(s) for s in shares]  # floor: shares are >= 0
    left = total - sum(parts)
    order = sorted(range(len(shares)), key=lambda i: (-(shares[i] - parts[i]), i))
    for i in order[:left]:
        parts[i] += 1
    return parts


def _active_rules() -> list[EarningRule]:
    # Cached per process and reloaded after any rule is saved or deleted (loyalty.till_cache): every scan asks.
    return list(till_config().earning_rules())


def _in_dates(rule: EarningRule, day: dt.date) -> bool:
    return (rule.starts_on is None or rule.starts_on <= day) and (rule.ends_on is None or day <= rule.ends_on)


def _day_earned(card_id: int, day: dt.date) -> int:
    start = dt.datetime.combine(day, dt.time.min, tzinfo=CHINA)
    got = Purchase.objects.filter(card_id=card_id, scanned_at__gte=start, scanned_at__lt=start + dt.timedelta(days=1))
    return got.aggregate(s=Sum("points"))["s"] or 0


def _categories(skus: list[str]) -> dict[str, str]:
    return dict(Product.objects.filter(sku__in=set(skus)).values_list("sku", "category")) if skus else {}


def earn_evaluate(
    *,
    card: Card | None,
    store: Store | None,
    amount_fen: int,
    lines: list[Any] | None = None,
    at: dt.datetime | None = None,
    tier: Tier | None = None,
    rules: list[EarningRule] | None = None,
) -> EarnResult:
    """What this receipt earns under the active rules (see the module docstring for the order and rounding).

    `lines` are objects or dicts with sku and amount_fen (PurchaseLine fits); `tier` stands in for the card's
    when previewing without a card; `rules` lets a caller pass them (tests). Reads only, writes nothing."""
    rules = _active_rules() if rules is None else rules
    at = at or timezone.now()
    day = timezone.localtime(at, CHINA).date()
    tier_id = card.tier_id if card is not None else (tier.pk if tier is not None else None)
    parts = [
        EarnLine(sku=(x["sku"] if isinstance(x, dict) else x.sku), amount_fen=int(
            x["amount_fen"] if isinstance(x, dict) else x.amount_fen))
        for x in (lines or [])
    ]  # fmt: skip
    itemised = bool(parts)
    if not itemised:
        parts = [EarnLine(sku="", amount_fen=amount_fen)]
    # Only a category multiplier needs the lines' categories: without one, no product lookup.
    needs_cats = any(r.kind == Kind.MULTIPLIER and r.category for r in rules)
    cats = _categories([p.sku for p in parts if p.sku]) if needs_cats else {}
    bonuses = _bonuses_due(card, rules, day)

    base = next((r for r in rules if r.kind == Kind.BASE and _in_dates(r, day)), None)
    rate = base.fen_per_point if base else settings.LOYALTY_FEN_PER_POINT
    base_entry = {"rule": base.pk if base else None, "name": base.name if base else "LOYALTY_FEN_PER_POINT"}

    def result(points: int, breakdown: list[dict], line_points: list[int]) -> EarnResult:
        return EarnResult(points, breakdown, line_points if itemised else [], bonuses)

    for rule in rules:
        if rule.kind == Kind.MIN_SPEND and _in_dates(rule, day) and amount_fen < (rule.min_spend_fen or 0):
            return result(0, [{"rule": rule.pk, "name": rule.name, "points": 0}], [0] * len(parts))

    excluded = {r.sku for r in rules if r.kind == Kind.EXCLUDE_SKU and _in_dates(r, day)}
    # Read the contact's birthday only when a birthday-week rule exists (a scan's card comes without its contact).
    birthday_week = any(r.kind == Kind.BIRTHDAY_WEEK for r in rules) and _birthday_near(card, day) is not None
    receipt_mults = [
        r for r in rules
        if (r.kind == Kind.MULTIPLIER or (r.kind == Kind.BIRTHDAY_WEEK and birthday_week)) and _in_dates(r, day)
        and (r.tier_id is None or r.tier_id == tier_id) and (r.store_id is None or (store and r.store_id == store.pk))
    ]  # fmt: skip
    shares: dict[int | None, Fraction] = {}  # rule id -> exact points it gave (None: the base)
    names = {None: base_entry["name"]} | {r.pk: r.name for r in receipt_mults}
    line_values: list[Fraction] = []
    # The receipt's amount is what was paid: lines share it in proportion (a receipt-level discount lowers every
    # line; lines summing to more than was paid never earn more than the amount).
    listed = sum(p.amount_fen for p in parts)
    for part in parts:
        paid = Fraction(part.amount_fen * amount_fen, listed) if listed else Fraction(amount_fen, len(parts))
        value = Fraction(0) if part.sku and part.sku in excluded else paid / rate
        shares[None] = shares.get(None, Fraction(0)) + value
        for rule in receipt_mults:
            if rule.sku and rule.sku != part.sku:
                continue
            if rule.category and rule.category != cats.get(part.sku, ""):
                continue
            extra = value * (rule.multiplier_pct - 100) / 100
            shares[rule.pk] = shares.get(rule.pk, Fraction(0)) + extra
            value += extra
        line_values.append(value)

    earned = int(sum(line_values, Fraction(0)))  # rounded down once, over the receipt
    ids = list(shares)
    split = _largest_remainder(earned, [max(shares[i], Fraction(0)) for i in ids])
    breakdown = [
        {"rule": base_entry["rule"] if i is None else i, "name": names[i], "points": p}
        for i, p in zip(ids, split, strict=True)
    ]
    points = earned
    for rule in rules:
        if rule.kind not in (Kind.CAP_RECEIPT, Kind.CAP_DAY) or not _in_dates(rule, day):
            continue
        room = rule.cap_points or 0
        if rule.kind == Kind.CAP_DAY:
            room = max(0, room - (_day_earned(card.pk, day) if card is not None else 0))
        if points > room:
            breakdown.append({"rule": rule.pk, "name": rule.name, "points": room - points})
            points = room
    return result(points, breakdown, _largest_remainder(points, line_values))


def _profile_complete(card: Card) -> bool:
    contact = card.contact
    return bool(contact.name and contact.phone_hash and contact.gender)


BIRTHDAY_WEEK_DAYS = 3  # the birthday week: the birthday and 3 days either side (Asia/Shanghai dates)


def _birthday_near(card: Card | None, day: dt.date) -> dt.date | None:
    """The occurrence of the card's contact's birthday within BIRTHDAY_WEEK_DAYS of `day` (its year keys the yearly
    bonus: a 30 December birthday is still last year's in the first days of January), else None. 29 February is
    the 28th in other years."""
    birthday = card.contact.birthday if card is not None else None
    if birthday is None:
        return None
    for year in (day.year - 1, day.year, day.year + 1):
        try:
            when = birthday.replace(year=year)
        except ValueError:
            when = dt.date(year, 2, 28)
        if abs((when - day).days) <= BIRTHDAY_WEEK_DAYS:
            return when
    return None


def _bonuses_due(card: Card | None, rules: list[EarningRule], day: dt.date | None = None) -> list[dict[str, Any]]:
    """Bonus rules this card's contact has not had yet (for the birthday: this birthday's year) and whose event
    holds (first purchase: no receipt yet; birthday: the receipt is in the birthday week)."""
    due, seen = [], set()
    bonus_rules = [r for r in rules if r.kind == Kind.BONUS and r.bonus_points]
    if not bonus_rules:
        return due
    had = set()
    if card is not None:
        had = set(EarningBonusGrant.objects.filter(contact_id=card.contact_id).values_list("event", "period"))
    for rule in bonus_rules:
        period = ""
        if rule.event == EarningRule.Event.BIRTHDAY:
            near = _birthday_near(card, day or timezone.localdate(timezone.now(), CHINA))
            if card is not None and near is None:
                continue
            period = str(near.year) if near else ""
        if (rule.event, period) in had or rule.event in seen:
            continue
        if rule.event == EarningRule.Event.FIRST_PURCHASE:
            holds = card is None or not Purchase.objects.filter(card_id=card.pk).exists()
        elif rule.event == EarningRule.Event.BIRTHDAY:
            holds = True  # in the birthday week (above); a preview without a card shows what it would give
        else:
            holds = card is None or _profile_complete(card)
        if holds:
            seen.add(rule.event)
            bonus = {"rule": rule.pk, "name": rule.name, "event": rule.event, "points": rule.bonus_points}
            due.append(bonus | ({"period": period} if period else {}))
    return due


def earn_bonuses_grant(*, card: Card, purchase: Purchase, bonuses: list[dict[str, Any]], user=None) -> int:
    """Credit the due bonuses of a receipt, each once per contact; returns the points credited. Call inside the
    scan's transaction, with the card locked (a rare concurrent grant for the same contact loses on the unique
    constraint and is skipped)."""
    from loyalty.services.points import points_credit  # points imports tiers; keep this module light to import

    total = 0
    for bonus in bonuses:
        try:
            with transaction.atomic():
                period = bonus.get("period") or ""
                EarningBonusGrant.objects.create(
                    contact_id=card.contact_id, event=bonus["event"], period=period, rule_id=bonus["rule"],
                    points=bonus["points"], purchase=purchase,
                )  # fmt: skip
                points_credit(
                    card_id=card.pk, delta=bonus["points"], kind=PointsLedger.Kind.EARN,
                    # The birthday's: bonus:birthday:<contact>:<year>, once a year; the others once ever.
                    idempotency_key=f"bonus:{bonus['event']}:{card.contact_id}" + (f":{period}" if period else ""),
                    reason=f"Bonus: {bonus['name']}"[:255], purchase=purchase, user=user,
                )  # fmt: skip
        except IntegrityError:
            continue
        total += bonus["points"]
    return total


# ---- rules: validation and writes -------------------------------------------------------------------------------

RULE_FIELDS = [
    "name", "kind", "is_active", "fen_per_point", "multiplier_pct", "tier", "store", "starts_on", "ends_on",
    "category", "sku", "min_spend_fen", "cap_points", "event", "bonus_points",
]  # fmt: skip
# What each kind needs (required) and may use besides name/kind/is_active/dates.
KIND_FIELDS = {
    Kind.BASE: ({"fen_per_point"}, set()),
    Kind.MULTIPLIER: ({"multiplier_pct"}, {"tier", "store", "category", "sku"}),
    Kind.MIN_SPEND: ({"min_spend_fen"}, set()),
    Kind.EXCLUDE_SKU: ({"sku"}, set()),
    Kind.CAP_RECEIPT: ({"cap_points"}, set()),
    Kind.CAP_DAY: ({"cap_points"}, set()),
    Kind.BONUS: ({"event", "bonus_points"}, set()),
    Kind.BIRTHDAY_WEEK: ({"multiplier_pct"}, {"tier", "store"}),
}
_OPTIONAL = {"fen_per_point", "multiplier_pct", "tier", "store", "category", "sku", "min_spend_fen", "cap_points",
             "event", "bonus_points"}  # fmt: skip


def _int(data: dict, name: str, low: int, high: int) -> int | None:
    value = data.get(name)
    if value in (None, ""):
        return None
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise ApplicationError(
            _("Must be a whole number from %(low)s to %(high)s.") % {"low": low, "high": high},
            code="out_of_range",
            field=name,
        )
    return value


def earning_rule_validate(data: dict[str, Any]) -> dict[str, Any]:
    """Check a rule's fields for its kind; returns the cleaned values. A refusal is a 400 naming the field."""
    clean: dict[str, Any] = {}
    name = data.get("name")
    if not isinstance(name, str) or not name.strip() or len(name) > 128:
        raise ApplicationError(_("Required, at most 128 characters."), code="required", field="name")
    clean["name"] = name.strip()
    kind = data.get("kind")
    if kind not in Kind.values:
        raise ApplicationError(_("Choose one of the rule kinds."), code="invalid_choice", field="kind")
    clean["kind"] = kind
    clean["is_active"] = bool(data.get("is_active", True))
    clean["fen_per_point"] = _int(data, "fen_per_point", 1, 10**8)
    clean["multiplier_pct"] = _int(data, "multiplier_pct", 1, MAX_MULTIPLIER_PCT)
    clean["min_spend_fen"] = _int(data, "min_spend_fen", 1, 10**10)
    clean["cap_points"] = _int(data, "cap_points", 0, MAX_POINTS)
    clean["bonus_points"] = _int(data, "bonus_points", 1, MAX_POINTS)
    for name in ("category", "sku"):
        value = data.get(name) or ""
        if not isinstance(value, str) or len(value) > 64:
            raise ApplicationError(_("At most 64 characters."), code="invalid", field=name)
        clean[name] = value.strip()
    event = data.get("event") or ""
    if event and event not in EarningRule.Event.values:
        raise ApplicationError(_("Choose one of the events."), code="invalid_choice", field="event")
    clean["event"] = event
    for name, model in (("tier", Tier), ("store", Store)):
        value = data.get(name)
        if isinstance(value, model):
            value = value.pk
        if value in (None, ""):
            clean[name] = None
        elif not isinstance(value, int) or isinstance(value, bool) or not model.objects.filter(pk=value).exists():
            raise ApplicationError(
                _("No such tier.") if name == "tier" else _("No such store."), code="not_found", field=name
            )
        else:
            clean[name] = value
    for name in ("starts_on", "ends_on"):
        value = data.get(name)
        if isinstance(value, str) and value:
            try:
                value = dt.date.fromisoformat(value)
            except ValueError:
                raise ApplicationError(_("Enter a date (YYYY-MM-DD)."), code="invalid", field=name) from None
        if value not in (None, "") and not isinstance(value, dt.date):
            raise ApplicationError(_("Enter a date (YYYY-MM-DD)."), code="invalid", field=name)
        clean[name] = value or None
    if clean["starts_on"] and clean["ends_on"] and clean["ends_on"] < clean["starts_on"]:
        raise ApplicationError(_("The end is before the start."), code="invalid_range", field="ends_on")
    required, allowed = KIND_FIELDS[kind]
    for name in sorted(required):
        if clean[name] in (None, ""):
            raise ApplicationError(_("This kind of rule needs this field."), code="required", field=name)
    for name in sorted(_OPTIONAL - required - allowed):
        if clean[name] not in (None, ""):
            raise ApplicationError(_("This kind of rule does not use this field."), code="not_applicable", field=name)
    if kind == Kind.MULTIPLIER and clean["category"] and clean["sku"]:
        raise ApplicationError(_("Give a category or a SKU, not both."), code="invalid", field="sku")
    return clean


def earning_rule_save(data: dict[str, Any], *, rule_id: int | None = None) -> EarningRule:
    clean = earning_rule_validate(data)
    with transaction.atomic():
        if rule_id is None:
            rule = EarningRule()
        else:
            rule = EarningRule.objects.select_for_update().filter(pk=rule_id).first()
            if rule is None:
                raise NotFound(_("No such earning rule."), field="id")
        for name, value in clean.items():
            setattr(rule, f"{name}_id" if name in ("tier", "store") else name, value)
        rule.save()
    return rule


def earning_rule_delete(rule_id: int) -> None:
    """Delete a rule; the receipts it applied to keep their breakdown (ids and names are copied there)."""
    deleted, _kinds = EarningRule.objects.filter(pk=rule_id).delete()
    if not deleted:
        raise NotFound(_("No such earning rule."), field="id")


def earn_preview(
    *, store_code: str | None, amount_fen: Any, lines: Any = None, card_number: str | None = None,
    tier_id: int | None = None, at: dt.datetime | None = None,
) -> EarnResult:  # fmt: skip
    """What would this receipt earn? Validates like a scan (400 naming the field) and writes nothing."""
    from loyalty.services.scans import MAX_AMOUNT_FEN, _clean_items

    if not isinstance(amount_fen, int) or isinstance(amount_fen, bool) or not 0 < amount_fen <= MAX_AMOUNT_FEN:
        raise ApplicationError("amount_fen must be a positive integer (fen).", code="invalid", field="amount_fen")
    parsed = _clean_items(lines)
    store = None
    if store_code:
        store = Store.objects.filter(code=store_code).first()
        if store is None:
            raise ApplicationError(f"Unknown store {store_code!r}.", code="store_unknown", field="store")
    card = tier = None
    if card_number:
        card = Card.objects.select_related("contact").filter(number=card_number).first()
        if card is None:
            raise ApplicationError("No card has this number.", code="unknown_card", field="card")
    elif tier_id is not None:
        tier = Tier.objects.filter(pk=tier_id).first()
        if tier is None:
            raise ApplicationError("No such tier.", code="not_found", field="tier")
    return earn_evaluate(card=card, store=store, amount_fen=amount_fen, lines=parsed, at=at, tier=tier)


def orders_earn(*, limit: int = 500) -> int:
    """Tmall/JD orders earn points, when settings.LOYALTY_ORDERS_EARN_POINTS (default False): each order (source,
    order_id) matched to a contact with a card is credited once (ledger key order:<source>:<order_id>) under the
    same rules as a receipt, at its order time; no store (store multipliers do not apply) and no bonus events.
    Returns how many orders were credited. crm imports no loyalty: this reads crm's order lines from here."""
    if not getattr(settings, "LOYALTY_ORDERS_EARN_POINTS", False):
        return 0
    from django.db.models import CharField, Exists, F, OuterRef, Value
    from django.db.models.functions import Cast, Concat

    from crm.models import SourceOrderLine
    from loyalty.services.points import points_credit

    key = Concat(Value("order:"), Cast("source_id", CharField()), Value(":"), F("order_id"))
    credited = PointsLedger.objects.filter(idempotency_key=OuterRef("key"))
    orders = (
        SourceOrderLine.objects.filter(contact__loyalty_card__isnull=False, amount_fen__gt=0)
        .annotate(key=key)
        .filter(~Exists(credited))
        .values_list("source_id", "order_id", "contact_id", "key")
        .distinct()[:limit]
    )
    done = 0
    for source_id, order_id, contact_id, idempotency_key in list(orders):
        lines = SourceOrderLine.objects.filter(source_id=source_id, order_id=order_id, amount_fen__gt=0)
        items = [{"sku": x.sku, "amount_fen": x.amount_fen} for x in lines]
        at = min(x.ordered_at for x in lines)
        with transaction.atomic():
            card = Card.objects.select_for_update().get(contact_id=contact_id)
            result = earn_evaluate(
                card=card, store=None, amount_fen=sum(x["amount_fen"] for x in items), lines=items, at=at
            )
            if result.points:
                points_credit(
                    card_id=card.pk, delta=result.points, kind=PointsLedger.Kind.EARN,
                    idempotency_key=idempotency_key, reason=f"Order {order_id}"[:255],
                )  # fmt: skip
                done += 1
    return done
