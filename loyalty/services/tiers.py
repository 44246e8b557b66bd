"""Tiers: the ladder, the tier rules (basis, rolling window, grace) and moving cards between tiers.

An upgrade happens at once (`tier_evaluate` after each credit); a downgrade only at a scheduled evaluation
(`tiers_evaluate_all`, beat), and only once the card has been below its tier's threshold for the grace period.
Every move is a TierChange row and a `tier_changed` row on the contact's timeline; entering a VIP tier invites to
the VIP group, leaving one untags VIP and notifies the customer's staff (each once, after commit, in a worker)."""

from __future__ import annotations

import functools
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.apps import apps
from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.db.models import Q, Sum
from django.utils import timezone
from django.utils.translation import gettext as _

from crm.errors import ApplicationError, NotFound
from loyalty.models import Card, PointsLedger, Purchase, Tier, TierChange, TierEffect, TierPolicy
from loyalty.till_cache import till_config

logger = logging.getLogger(__name__)

# (name, min points, min spend in fen, is VIP). Gold and above are invited to the VIP customer group.
DEFAULT_TIERS: tuple[tuple[str, int, int, bool], ...] = (
    ("Member", 0, 0, False),
    ("Silver", 1000, 100_000, False),
    ("Gold", 5000, 500_000, True),
    ("Platinum", 20000, 2_000_000, True),
)
TIMELINE_KIND = "tier_changed"
MAX_WINDOW_DAYS = 3660
MAX_GRACE_DAYS = 366
# Ledger kinds whose movements count as points earned (a return's reversal, whatever its kind, is one of these or
# a kind listed here when it exists); redeeming or expiring points never counts against the tier.
EARNED_KINDS = ("earn", "adjust", "return", "reverse")
# Where the returns area keeps returned amounts (a model with `purchase` and `amount_fen`), when it exists.
RETURN_MODELS = ("PurchaseReturn", "Return", "ReturnLine")


@transaction.atomic
def tiers_ensure_defaults() -> list[Tier]:
    """Create the default ladder when no tier exists yet; a ladder edited in the admin is left alone."""
    if not Tier.objects.exists():
        for rank, (name, min_points, min_spend, is_vip) in enumerate(DEFAULT_TIERS, start=1):
            Tier.objects.get_or_create(
                name=name,
                defaults={"min_points": min_points, "min_spend_fen": min_spend, "is_vip": is_vip, "rank": rank},
            )
    return list(Tier.objects.order_by("rank"))


def tier_for_points(points: int) -> Tier | None:
    """The highest tier whose points threshold `points` reaches (None when no tier is defined)."""
    reached = [t for t in till_config().tiers() if t.min_points <= max(points, 0)]
    return max(reached, key=lambda t: t.min_points, default=None)


def _top_reached(tiers: list[Tier], value: int, threshold: str) -> Tier | None:
    """The highest-ranked tier whose `threshold` field `value` reaches."""
    return max((t for t in tiers if getattr(t, threshold) <= value), key=lambda t: t.rank, default=None)


# --- The rules --------------------------------------------------------------------------------------------------


def tier_policy_get() -> TierPolicy:
    """The tier rules (one row, made with the defaults on first read)."""
    policy, _created = TierPolicy.objects.get_or_create(pk=1)
    return policy


def _int_field(value, field: str, high: int) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= high:
        raise ApplicationError(
            _("Must be a whole number from 0 to %(high)d.") % {"high": high}, code="out_of_range", field=field
        )
    return value


def _spend_ladder_problem(overrides: dict[int, int] | None = None) -> str | None:
    """Why the spend thresholds cannot be the basis (None when they can): they must rise strictly with rank."""
    overrides = overrides or {}
    previous = None
    for tier in Tier.objects.order_by("rank"):
        spend = overrides.get(tier.pk, tier.min_spend_fen)
        if previous is not None and spend <= previous[1]:
            return _("%(tier)s needs more spend than %(lower)s.") % {"tier": tier.name, "lower": previous[0]}
        previous = (tier.name, spend)
    return None


def tier_policy_validate(*, basis: str, window_days: int, grace_days: int) -> None:
    """Refuse rules that cannot work, naming the field; writes nothing."""
    if basis not in TierPolicy.Basis.values:
        raise ApplicationError(
            _("The basis must be one of: %(values)s.") % {"values": ", ".join(TierPolicy.Basis.values)},
            code="invalid_choice",
            field="basis",
        )
    _int_field(window_days, "window_days", MAX_WINDOW_DAYS)
    _int_field(grace_days, "grace_days", MAX_GRACE_DAYS)
    if basis == TierPolicy.Basis.SPEND:
        problem = _spend_ladder_problem()
        if problem:
            raise ApplicationError(
                _("Set rising spend thresholds on the tiers first: %(problem)s") % {"problem": problem},
                code="ladder_order",
                field="basis",
            )


@transaction.atomic
def tier_policy_save(*, basis: str, window_days: int, grace_days: int) -> TierPolicy:
    """Change the tier rules. Not retroactive: cards move up at their next credit, down at the next scheduled
    evaluation (after the grace period)."""
    tier_policy_validate(basis=basis, window_days=window_days, grace_days=grace_days)
    policy = TierPolicy.objects.select_for_update().filter(pk=1).first() or TierPolicy(pk=1)
    policy.basis, policy.window_days, policy.grace_days = basis, window_days, grace_days
    policy.save()
    return policy


# --- What a card counts -----------------------------------------------------------------------------------------


def _returned_fen(card: Card, since: datetime | None) -> int | None:
    """Amounts returned on the card's purchases in the window, from the returns area's model (None if absent)."""
    for name in RETURN_MODELS:
        try:
            model = apps.get_model("loyalty", name)
        except LookupError:
            continue
        fields = {f.name for f in model._meta.get_fields()}
        if {"purchase", "amount_fen"} <= fields:
            rows = model.objects.filter(purchase__card=card)
            if since is not None:
                rows = rows.filter(purchase__scanned_at__gte=since)
            return rows.aggregate(total=Sum("amount_fen"))["total"] or 0
    return None


def card_spend_fen(card: Card, since: datetime | None) -> int:
    """Till spend since `since` (None: all) net of returns, plus imported Tmall/JD orders of the card's contact when
    settings.LOYALTY_SPEND_INCLUDES_ORDERS (the same rule as the segments' spend)."""
    purchases = Purchase.objects.filter(card=card)
    if since is not None:
        purchases = purchases.filter(scanned_at__gte=since)
    total = purchases.aggregate(total=Sum("amount_fen"))["total"] or 0
    total -= _returned_fen(card, since) or 0
    if getattr(settings, "LOYALTY_SPEND_INCLUDES_ORDERS", True):
        from crm.models import SourceOrderLine

        orders = SourceOrderLine.objects.filter(contact_id=card.contact_id)
        if since is not None:
            orders = orders.filter(ordered_at__gte=since)
        total += orders.aggregate(total=Sum("amount_fen"))["total"] or 0
    return max(total, 0)


@functools.cache
def earned_kinds() -> tuple[str, ...]:
    """The ledger kinds that count as points earned for a tier (EARNED_KINDS the ledger has). Fixed by the code,
    so computed once: every scan asks, and `Kind.values` builds its list anew on each access."""
    known = set(PointsLedger.Kind.values)
    return tuple(k for k in EARNED_KINDS if k in known)


def card_points_earned(card: Card, since: datetime | None) -> int:
    """Points earned (earn, adjust and their reversals) since `since`; the lifetime total when None."""
    if since is None:
        return card.lifetime_points
    kinds = earned_kinds()
    # The ORM's aggregate(Sum("delta")) over filter(card, kind__in, created_at__gte), compiled once: every
    # credited scan asks.
    key = (connection.vendor, len(kinds))
    sql = _EARNED_SQL.get(key)
    if sql is None:
        qn, meta = connection.ops.quote_name, PointsLedger._meta
        sql = _EARNED_SQL[key] = (
            f"SELECT SUM({qn('delta')}) FROM {qn(meta.db_table)} WHERE {qn('card_id')} = %s"  # noqa: S608
            f" AND {qn('kind')} IN ({', '.join(['%s'] * len(kinds))}) AND {qn('created_at')} >= %s"
        )
    with connection.cursor() as cursor:
        cursor.execute(sql, [card.pk, *kinds, connection.ops.adapt_datetimefield_value(since)])
        total = cursor.fetchone()[0]
    return max(total or 0, 0)


_EARNED_SQL: dict[tuple[str, int], str] = {}


@dataclass(frozen=True)
class TierStanding:
    basis: str
    value: int
    window_days: int
    tier: Tier | None  # the tier the value reaches


def card_standing(card: Card, policy: TierPolicy, at: datetime) -> TierStanding:
    since = at - timedelta(days=policy.window_days) if policy.window_days else None
    tiers = till_config().tiers()  # the ladder, cached per process (loyalty.till_cache)
    if policy.basis == TierPolicy.Basis.SPEND:
        value = card_spend_fen(card, since)
        tier = _top_reached(tiers, value, "min_spend_fen")
    else:
        value = card_points_earned(card, since)
        tier = _top_reached(tiers, value, "min_points")
    return TierStanding(policy.basis, value, policy.window_days, tier)


# --- Moving cards -----------------------------------------------------------------------------------------------


def _move(card: Card, target: Tier | None, reason: str, standing: TierStanding, at: datetime | None) -> TierChange:
    """Record the move (event + timeline row), move the card, and queue its VIP effects after commit."""
    change = TierChange.objects.create(
        card=card,
        from_tier=card.tier,
        to_tier=target,
        reason=reason,
        basis=standing.basis,
        value=standing.value,
        window_days=standing.window_days,
        lifetime_points=card.lifetime_points,
    )
    if at is not None:  # an evaluation "as of" a given time (the beat's run, tests): the event carries that time
        TierChange.objects.filter(pk=change.pk).update(created_at=at)
        change.created_at = at
    card.tier = target
    card.tier_below_since = None
    card.save(update_fields=["tier", "tier_below_since", "updated_at"])
    from crm.models import Contact
    from crm.services.timeline import timeline_add

    timeline_add(
        Contact(pk=card.contact_id),
        TIMELINE_KIND,
        data={
            "from": change.from_tier.name if change.from_tier else "",
            "to": target.name if target else "",
            "reason": reason,
            "tier_change": change.pk,
        },
        occurred_at=change.created_at,
    )
    logger.info("card tier changed", extra={"card": card.pk, "from": change.from_tier_id, "to": card.tier_id})
    if target is not None and _rank(target) > _rank(change.from_tier):
        from loyalty.services.journeys import journey_fire  # journeys import coupons, which import cards

        journey_fire("tier_entered", contact_id=card.contact_id, tier_id=target.pk)  # a step's coupon, after commit
    # Only after commit, and in a worker: a WeCom outage must never fail or slow a till scan.
    if change.entered_vip:
        from loyalty.tasks import vip_invite

        transaction.on_commit(lambda: vip_invite.delay(change.pk))
    elif change.left_vip:
        from loyalty.tasks_tiers import vip_leave

        transaction.on_commit(lambda: vip_leave.delay(change.pk))
    return change


def _rank(tier: Tier | None) -> int:
    return tier.rank if tier else 0


UPGRADE, CLEAR_GRACE = "upgrade", "clear_grace"


def _beyond_thresholds(card: Card, tiers: list[Tier]) -> bool:
    """In the top tier with no grace note to clear: no credit can change anything, so no sum is needed."""
    return card.tier_below_since is None and _rank(card.tier) >= tiers[-1].rank


def _unscheduled_change(card: Card, target: Tier | None) -> str | None:
    """What any evaluation does for a card whose standing reaches `target`, before the scheduled-only downgrade:
    UPGRADE (a higher tier), CLEAR_GRACE (back at its own tier with a grace note), or None."""
    if target is None:
        return None
    if _rank(target) > _rank(card.tier):
        return UPGRADE
    if _rank(target) == _rank(card.tier) and card.tier_below_since is not None:
        return CLEAR_GRACE
    return None


@transaction.atomic
def tier_evaluate(card_id: int, *, scheduled: bool = False, at: datetime | None = None) -> TierChange | None:
    """Move the card to the tier the rules give it, under its row lock.

    Up at once, from any caller (a credit, a scan, the admin). Down only when `scheduled` (the beat's evaluation):
    the first evaluation that finds the card below its tier notes the time; it keeps the tier until that time +
    grace_days, and the first evaluation after that moves it down. Back at or above its threshold clears the note."""
    card = Card.objects.select_for_update(of=("self",)).select_related("tier").get(pk=card_id)
    return tier_evaluate_locked(card, scheduled=scheduled, at=at)


def tier_evaluate_locked(card: Card, *, scheduled: bool = False, at: datetime | None = None) -> TierChange | None:
    """tier_evaluate for a card the caller locked (select_for_update, with its tier) in the transaction it is in
    (a till scan): no second lock, no savepoint."""
    as_of, at = at, at or timezone.now()
    config = till_config()
    tiers = config.tiers()
    if not tiers or (not scheduled and _beyond_thresholds(card, tiers)):
        return None
    policy = config.tier_policy()
    standing = card_standing(card, policy, at)
    target = standing.tier
    change = _unscheduled_change(card, target)
    if change == UPGRADE:
        return _move(card, target, TierChange.Reason.UPGRADE, standing, as_of)
    if change == CLEAR_GRACE:
        card.tier_below_since = None
        card.save(update_fields=["tier_below_since", "updated_at"])
        return None
    if target is None or _rank(target) == _rank(card.tier) or not scheduled:
        return None  # a credit, a return or a redemption never moves a card down
    if card.tier_below_since is None:
        card.tier_below_since = at
        card.save(update_fields=["tier_below_since", "updated_at"])
    if at < card.tier_below_since + timedelta(days=policy.grace_days):
        return None
    return _move(card, target, TierChange.Reason.DOWNGRADE, standing, as_of)


def tier_unchanged_by_credit(card: Card, points: int, window_points: int) -> bool:
    """Whether tier_evaluate_locked(card), run (not scheduled) right after a credit of `points`, would write
    nothing, on a points-based policy: `window_points` is what the card earned in the policy's window before the
    credit. The till's one-statement path (loyalty.services._scan_statement) takes only such scans; the others
    go through tier_evaluate_locked itself. The same decisions (_beyond_thresholds, _unscheduled_change), on the
    standing the credit will give instead of a read of it."""
    config = till_config()
    tiers = config.tiers()
    if not tiers or _beyond_thresholds(card, tiers):
        return True
    policy = config.tier_policy()
    if policy.basis != TierPolicy.Basis.POINTS:
        return False
    value = max(window_points + points, 0) if policy.window_days else card.lifetime_points + points
    return _unscheduled_change(card, _top_reached(tiers, value, "min_points")) is None


def tiers_evaluate_all(*, at: datetime | None = None, batch: int = 500) -> dict:
    """The scheduled evaluation: every card holding a tier, one short transaction each (a till scan of the same
    card waits for one card's row lock only). -> {"cards", "upgraded", "downgraded", "in_grace"}."""
    at = at or timezone.now()
    counts = {"cards": 0, "upgraded": 0, "downgraded": 0}
    last = 0
    while True:
        # Erased people's cards keep their tier as it was: no move, no VIP message (crm.services.erasure).
        ids = list(Card.objects.filter(pk__gt=last, contact__erased_at__isnull=True).order_by("pk")
                   .values_list("pk", flat=True)[:batch])
        if not ids:
            break
        for card_id in ids:
            change = tier_evaluate(card_id, scheduled=True, at=at)
            counts["cards"] += 1
            if change is not None:
                counts["upgraded" if change.reason == TierChange.Reason.UPGRADE else "downgraded"] += 1
        last = ids[-1]
    counts["in_grace"] = Card.objects.filter(tier_below_since__isnull=False).count()
    return counts


@transaction.atomic
def tier_set_manual(*, card_id: int, tier_id: int) -> TierChange | None:
    """An admin puts a card in a tier (reason manual). The rules still apply afterwards: a card set above what it
    earns is moved down by a later scheduled evaluation, after the grace period."""
    card = Card.objects.select_for_update(of=("self",)).select_related("tier").filter(pk=card_id).first()
    if card is None:
        raise NotFound(_("No such card."), field="card")
    tier = Tier.objects.filter(pk=tier_id).first()
    if tier is None:
        raise NotFound(_("No such tier."), field="tier")
    if tier.pk == card.tier_id:
        return None
    standing = card_standing(card, tier_policy_get(), timezone.now())
    return _move(card, tier, TierChange.Reason.MANUAL, standing, None)


# --- The VIP effects (run in workers) ---------------------------------------------------------------------------


def tier_change_send_vip_invite(tier_change_id: int) -> bool:
    """Invite the card's contact to the VIP group for this tier change, once. False when nothing was sent."""
    change = TierChange.objects.select_related("card__tier", "to_tier").get(pk=tier_change_id)
    if change.vip_invite_sent_at is not None:
        return False
    if not (change.card.tier and change.card.tier.is_vip):
        return False  # demoted again before the worker got to it
    from crm.services.vip import invite_to_vip_group

    invite_to_vip_group(change.card.contact_id)
    TierChange.objects.filter(pk=change.pk, vip_invite_sent_at__isnull=True).update(vip_invite_sent_at=timezone.now())
    return True


def _claim(change: TierChange, kind: str) -> TierEffect | None:
    """The effect's row, created once (the unique (change, kind) is the idempotency key); None if already there."""
    try:
        with transaction.atomic():
            return TierEffect.objects.create(change=change, kind=kind)
    except IntegrityError:
        return None


def tier_change_untag_vip(tier_change_id: int) -> bool:
    """Leaving VIP: remove the VIP tag through crm's tag service (which pushes it to WeCom after commit), once."""
    from crm.models import Contact
    from crm.services.tags import contact_tag_remove, tag_ensure
    from crm.services.vip import VIP_TAG, VIP_TAG_GROUP

    with transaction.atomic():
        change = TierChange.objects.select_related("card__tier").get(pk=tier_change_id)
        effect = _claim(change, TierEffect.Kind.UNTAG)
        if effect is None:
            return False
        if change.card.tier and change.card.tier.is_vip:
            effect.status, effect.detail = TierEffect.Status.SKIPPED, "back in a VIP tier"
        else:
            contact = Contact.objects.get(pk=change.card.contact_id)
            removed = contact_tag_remove(contact, tag_ensure(VIP_TAG_GROUP, VIP_TAG), source="tier")
            effect.status = TierEffect.Status.DONE
            effect.detail = "" if removed else "no VIP tag"
        effect.save(update_fields=["status", "detail"])
        return effect.status == TierEffect.Status.DONE


def _notice_text(change: TierChange, contact_name: str) -> str:
    return _("%(customer)s left VIP tier %(from)s for %(to)s (tier change %(id)d).") % {
        "customer": contact_name or "-",
        "from": change.from_tier.name if change.from_tier else "-",
        "to": change.to_tier.name if change.to_tier else "-",
        "id": change.pk,
    }


def tier_change_notify_vip_left(tier_change_id: int) -> str:
    """Leaving VIP: tell the staff member who owns the customer (a WeCom app message), at most once.

    The effect row is claimed and committed before WeCom is called; a crash after the call leaves it `sending`,
    which is reported rather than re-sent (a second notice is worse than none)."""
    from crm.services.contacts import follow_active_for
    from crm.wecom.client import get_client

    change = TierChange.objects.select_related("card__tier", "card__contact", "from_tier", "to_tier").get(
        pk=tier_change_id
    )
    effect = _claim(change, TierEffect.Kind.NOTIFY)
    if effect is None:
        return "already"
    contact = change.card.contact
    follow = follow_active_for(contact)
    if change.card.tier and change.card.tier.is_vip:
        status, detail = TierEffect.Status.SKIPPED, "back in a VIP tier"
    elif follow is None:
        status, detail = TierEffect.Status.SKIPPED, "no active follow relation"
    else:
        try:
            get_client().message_send(
                "text", touser=follow.staff.userid, text={"content": _notice_text(change, contact.name)}
            )
            status, detail = TierEffect.Status.DONE, follow.staff.userid
        except Exception as exc:  # recorded on the row; never retried (it may have been sent)
            status, detail = TierEffect.Status.FAILED, str(exc)[:255]
    TierEffect.objects.filter(pk=effect.pk).update(status=status, detail=detail)
    return status


# --- The ladder -------------------------------------------------------------------------------------------------


def tier_validate(
    *, name: str, min_points: int, rank: int, tier_id: int | None = None, min_spend_fen: int | None = None
) -> str:
    """Refuse a tier that would break the ladder, naming the field: names, thresholds and ranks are unique, and a
    higher rank needs more lifetime points than every lower one (and more spend, when spend is the basis).
    Returns the cleaned name; writes nothing."""
    name = (name or "").strip()
    if not name:
        raise ApplicationError(_("A tier needs a name."), field="name")
    if len(name) > 64:
        raise ApplicationError(_("At most 64 characters."), field="name")
    if min_points is None or min_points < 0:
        raise ApplicationError(_("Lifetime points must be 0 or more."), field="min_points")
    if rank is None or rank < 1:
        raise ApplicationError(_("The rank must be 1 or more."), field="rank")
    if min_spend_fen is not None and (
        not isinstance(min_spend_fen, int) or isinstance(min_spend_fen, bool) or not 0 <= min_spend_fen <= 10**12
    ):
        raise ApplicationError(_("Spend must be 0 or more (fen)."), code="out_of_range", field="min_spend_fen")
    others = Tier.objects.exclude(pk=tier_id) if tier_id else Tier.objects.all()
    if others.filter(name__iexact=name).exists():
        raise ApplicationError(
            _("A tier named %(name)s already exists.") % {"name": name}, code="duplicate", field="name"
        )
    if others.filter(rank=rank).exists():
        raise ApplicationError(
            _("Another tier already has rank %(rank)d.") % {"rank": rank}, code="duplicate", field="rank"
        )
    if others.filter(min_points=min_points).exists():
        raise ApplicationError(
            _("Another tier already starts at %(n)d points.") % {"n": min_points}, code="duplicate", field="min_points"
        )
    below = others.filter(rank__lt=rank, min_points__gt=min_points).order_by("-min_points").first()
    above = others.filter(rank__gt=rank, min_points__lt=min_points).order_by("min_points").first()
    clash = below or above
    if clash:
        raise ApplicationError(
            _("A higher rank needs more points: %(other)s (rank %(rank)d) starts at %(n)d points.")
            % {"other": clash.name, "rank": clash.rank, "n": clash.min_points},
            code="ladder_order",
            field="min_points",
        )
    if min_spend_fen is not None:
        below = others.filter(rank__lt=rank, min_spend_fen__gt=min_spend_fen).first()
        above = others.filter(rank__gt=rank, min_spend_fen__lt=min_spend_fen).first()
        strict = tier_policy_get().basis == TierPolicy.Basis.SPEND
        same = strict and others.filter(min_spend_fen=min_spend_fen).exists()
        if below or above or same:
            raise ApplicationError(
                _("A higher rank needs more spend than a lower one."), code="ladder_order", field="min_spend_fen"
            )
    return name


@transaction.atomic
def tier_save(
    *,
    name: str,
    min_points: int,
    rank: int,
    is_vip: bool = False,
    tier_id: int | None = None,
    min_spend_fen: int | None = None,
) -> Tier:
    """Create (no tier_id) or change a tier of the ladder, validated by `tier_validate`. Cards move to a changed
    ladder when next evaluated (a credit moves up; the scheduled evaluation moves down): not retroactive."""
    tier = None
    if tier_id is not None:
        tier = Tier.objects.select_for_update().filter(pk=tier_id).first()
        if tier is None:
            raise NotFound(_("No such tier."), field="tier")
    name = tier_validate(name=name, min_points=min_points, rank=rank, tier_id=tier_id, min_spend_fen=min_spend_fen)
    values = {"name": name, "min_points": min_points, "rank": rank, "is_vip": bool(is_vip)}
    if min_spend_fen is not None:
        values["min_spend_fen"] = min_spend_fen
    if tier is None:
        return Tier.objects.create(**values)
    for field, value in values.items():
        setattr(tier, field, value)
    tier.save()
    return tier


@transaction.atomic
def tier_delete(tier_id: int) -> None:
    """Delete a tier no card holds and no tier change names (a card's history keeps its tiers)."""
    tier = Tier.objects.select_for_update().filter(pk=tier_id).first()
    if tier is None:
        return
    if Card.objects.filter(tier=tier).exists():
        raise ApplicationError(
            _("Cards are in tier %(name)s: move them first (change the ladder and re-evaluate).") % {"name": tier.name},
            code="in_use",
            field="tier",
        )
    if TierChange.objects.filter(Q(from_tier=tier) | Q(to_tier=tier)).exists():
        raise ApplicationError(
            _("Tier %(name)s is in cards' history and is kept.") % {"name": tier.name}, code="in_use", field="tier"
        )
    tier.delete()
