"""Journey steps: at a moment of the customer's journey (the card is made, the first purchase, entering a tier),
grant a coupon without points, once per customer and step.

Marketing chooses the steps in the console (Loyalty > Journey steps) or the API. The moments are fired by the
services where they happen (cards, scans, tiers) with `journey_fire`: one cheap lookup, and only after commit a task
does the granting, so a till scan never waits on it and a rolled-back scan grants nothing. The grant's coupon key is
`journey:<step>:<contact>` (unique), and JourneyGrant is unique per (step, contact): a step gives a customer one
coupon however often the moment recurs (a card leaving and re-entering a tier). Out of stock is recorded on the
grant row, never raised."""

from __future__ import annotations

from django.db import transaction
from django.utils.translation import gettext as _

from crm.errors import ApplicationError, NotFound
from loyalty.models import Coupon, JourneyGrant, JourneyStep, Purchase, Reward, Tier
from loyalty.services.coupons import coupon_grant_recorded

TRIGGERS = [choice.value for choice in JourneyStep.Trigger]


def journey_step_validate(*, name: str, trigger: str, reward_id: int | None, tier_id: int | None = None,
                          action: str = JourneyStep.Action.GRANT_COUPON) -> None:  # fmt: skip
    if not (name or "").strip():
        raise ApplicationError(_("Give the step a name."), field="name")
    if len(name) > 128:
        raise ApplicationError(_("At most 128 characters."), field="name")
    if trigger not in TRIGGERS:
        raise ApplicationError(_("Unknown trigger."), field="trigger")
    if action != JourneyStep.Action.GRANT_COUPON:
        raise ApplicationError(_("Unknown action."), field="action")
    if trigger == JourneyStep.Trigger.TIER_ENTERED:
        if tier_id is None:
            raise ApplicationError(_("Choose the tier entered."), field="tier")
        if not Tier.objects.filter(pk=tier_id).exists():
            raise ApplicationError(_("No such tier."), field="tier")
    elif tier_id is not None:
        raise ApplicationError(_("A tier is chosen only for 'Enters a tier'."), field="tier")
    reward = Reward.objects.filter(pk=reward_id).first() if reward_id is not None else None
    if reward is None:
        raise ApplicationError(_("Choose a coupon."), code="unknown_reward", field="reward")
    if reward.kind != Reward.Kind.COUPON:
        raise ApplicationError(_("A journey step can grant only a reward of kind coupon."), code="not_a_coupon",
                               field="reward")  # fmt: skip


@transaction.atomic
def journey_step_save(*, name: str, trigger: str, reward_id: int | None, tier_id: int | None = None,
                      is_active: bool = True, step_id: int | None = None,
                      action: str = JourneyStep.Action.GRANT_COUPON) -> JourneyStep:  # fmt: skip
    journey_step_validate(name=name, trigger=trigger, reward_id=reward_id, tier_id=tier_id, action=action)
    if step_id is None:
        step = JourneyStep()
    else:
        step = JourneyStep.objects.select_for_update().filter(pk=step_id).first()
        if step is None:
            raise NotFound(_("No such journey step."), field="step")
    step.name, step.trigger, step.action = name.strip(), trigger, action
    step.reward_id, step.tier_id, step.is_active = reward_id, tier_id, bool(is_active)
    step.save()
    return step


def _steps(trigger: str, tier_id: int | None):
    steps = JourneyStep.objects.filter(is_active=True, trigger=trigger)
    if trigger == JourneyStep.Trigger.TIER_ENTERED:
        steps = steps.filter(tier_id=tier_id)
    return steps


def journey_fire(trigger: str, *, contact_id: int, tier_id: int | None = None) -> bool:
    """A moment happened to this customer: after commit, a task grants what the active steps for it give.
    False (and nothing queued) when no step is listening, the common case."""
    if not _steps(trigger, tier_id).exists():
        return False
    from loyalty.tasks_coupons import run_journey

    transaction.on_commit(lambda: run_journey.delay(trigger, contact_id, tier_id))
    return True


def journey_first_purchase(*, card, purchase) -> bool:
    """Inside the scan, with the card locked: fire 'first_purchase' when this receipt is the card's first. Whether
    such a step is active comes from the till's cache (loyalty.till_cache), so a scan pays no query without one."""
    from loyalty.till_cache import till_config

    if JourneyStep.Trigger.FIRST_PURCHASE not in till_config().journey_triggers():
        return False
    if Purchase.objects.filter(card_id=card.pk).exclude(pk=purchase.pk).exists():
        return False
    return journey_fire(JourneyStep.Trigger.FIRST_PURCHASE, contact_id=card.contact_id)


def journey_run(trigger: str, contact_id: int, tier_id: int | None = None) -> dict[str, int]:
    """Grant each active step's coupon for this moment to the customer (once per step): counts per outcome."""
    counts: dict[str, int] = {}
    for step in _steps(trigger, tier_id):
        outcome = coupon_grant_recorded(
            JourneyGrant, contact_id=contact_id, reward_id=step.reward_id,
            idempotency_key=f"journey:{step.pk}:{contact_id}", source=Coupon.Source.JOURNEY, step=step,
        )  # fmt: skip
        counts[outcome] = counts.get(outcome, 0) + 1
    return counts
