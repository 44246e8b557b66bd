"""Rolling-window tiers: up at once, down only at the scheduled evaluation after the grace period; events once."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from crm.errors import ApplicationError
from crm.models import ContactEvent, DataSource, SourceOrderLine
from loyalty.models import Card, Purchase, TierChange, TierPolicy
from loyalty.qr import qr_token_mint
from loyalty.services import points_adjust, points_credit, scan_record
from loyalty.services.tiers import (
    TIMELINE_KIND,
    tier_evaluate,
    tier_policy_get,
    tier_policy_save,
    tier_save,
    tiers_evaluate_all,
)

pytestmark = pytest.mark.django_db


@pytest.fixture
def leave_tasks(monkeypatch):
    """The leave-VIP tasks the services enqueue after commit (change ids), instead of a broker message."""
    from loyalty import tasks_tiers

    sent: list[int] = []
    monkeypatch.setattr(tasks_tiers.vip_leave, "delay", lambda change_id: sent.append(change_id))
    return sent


def _scan(card, store, receipt, amount_fen):
    return scan_record(
        qr_token=qr_token_mint(card.number).token, store_code=store.code, receipt_id=receipt, amount_fen=amount_fen
    )


def _timeline(card):
    return list(ContactEvent.objects.filter(contact_id=card.contact_id, kind=TIMELINE_KIND).order_by("id"))


def _tier(card):
    return Card.objects.select_related("tier").get(pk=card.pk).tier


def test_upgrade_is_immediate_and_one_event_on_the_timeline(card, store, tiers, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        result = _scan(card, store, "R-1", 100_000)  # 1000 points -> Silver
        _scan(card, store, "R-1", 100_000)  # the till retries: nothing more
    assert result.tier_change.to_tier == tiers["Silver"] and _tier(card) == tiers["Silver"]
    change = TierChange.objects.get(card=card)
    assert (change.reason, change.basis, change.value, change.window_days) == ("upgrade", "points", 1000, 365)
    [event] = _timeline(card)
    assert event.data == {"from": "Member", "to": "Silver", "reason": "upgrade", "tier_change": change.pk}
    assert event.occurred_at == change.created_at


def test_no_downgrade_on_credits_redemptions_or_reversals(card, store, tiers, leave_tasks):
    points_adjust(card_id=card.pk, delta=5000, reason="launch", idempotency_key="up")
    assert _tier(card) == tiers["Gold"]
    points_adjust(card_id=card.pk, delta=-4500, reason="reversal of a returned receipt", idempotency_key="down")
    points_credit(card_id=card.pk, delta=-400, kind="redeem", idempotency_key="redeem-1")
    _scan(card, store, "R-small", 100)
    assert _tier(card) == tiers["Gold"]
    assert list(TierChange.objects.filter(card=card).values_list("reason", flat=True)) == ["upgrade"]
    assert Card.objects.get(pk=card.pk).tier_below_since is None  # only the scheduled evaluation notes it
    assert leave_tasks == []


def test_downgrade_only_at_evaluation_after_grace(card, tiers, leave_tasks, django_capture_on_commit_callbacks):
    tier_policy_save(basis="points", window_days=365, grace_days=30)
    points_adjust(card_id=card.pk, delta=5000, reason="launch", idempotency_key="up")
    now = timezone.now()
    # Within the window: the evaluation changes nothing and notes nothing.
    quiet = {"cards": 1, "upgraded": 0, "downgraded": 0, "in_grace": 0}
    assert tiers_evaluate_all(at=now + timedelta(days=10)) == quiet
    # The credit left the window at day 365: from the first evaluation after it (day 400) the card is in grace.
    d = now + timedelta(days=400)
    assert tiers_evaluate_all(at=d)["in_grace"] == 1
    assert Card.objects.get(pk=card.pk).tier_below_since == d and _tier(card) == tiers["Gold"]
    assert tier_evaluate(card.pk, scheduled=True, at=d + timedelta(days=29, hours=23)) is None
    assert _tier(card) == tiers["Gold"]
    with django_capture_on_commit_callbacks(execute=True):
        result = tiers_evaluate_all(at=d + timedelta(days=30))
    assert result == {"cards": 1, "upgraded": 0, "downgraded": 1, "in_grace": 0}
    card_now = Card.objects.get(pk=card.pk)
    assert card_now.tier == tiers["Member"] and card_now.tier_below_since is None
    down = TierChange.objects.filter(card=card).first()
    assert (down.reason, down.from_tier, down.to_tier, down.value) == ("downgrade", tiers["Gold"], tiers["Member"], 0)
    assert leave_tasks == [down.pk]  # left VIP: untag and notify queued once
    # Evaluating again moves nothing and records nothing.
    assert tiers_evaluate_all(at=d + timedelta(days=31))["downgraded"] == 0
    assert [e.data["reason"] for e in _timeline(card)] == ["upgrade", "downgrade"]
    assert TierChange.objects.filter(card=card).count() == 2


def test_back_above_threshold_during_grace_keeps_the_tier(card, tiers):
    tier_policy_save(basis="points", window_days=365, grace_days=30)
    points_adjust(card_id=card.pk, delta=5000, reason="launch", idempotency_key="up")
    now = timezone.now()
    tier_evaluate(card.pk, scheduled=True, at=now + timedelta(days=400))
    assert Card.objects.get(pk=card.pk).tier_below_since is not None
    # Evaluated at a time the points count again (here: now): the note is cleared, the grace starts over later.
    tier_evaluate(card.pk, scheduled=True, at=now)
    assert Card.objects.get(pk=card.pk).tier_below_since is None and _tier(card) == tiers["Gold"]


def test_spend_window_rolls_and_counts_orders_per_setting(card, store, tiers, settings):
    tier_policy_save(basis="spend", window_days=365, grace_days=0)
    old = _scan(card, store, "R-old", 400_000).purchase  # 4,000 yuan
    Purchase.objects.filter(pk=old.pk).update(scanned_at=timezone.now() - timedelta(days=366))
    source = DataSource.objects.get_or_create(code="tmall", defaults={"name": "Tmall", "openness": "semi_open"})[0]
    SourceOrderLine.objects.create(
        source=source, order_id="T1", phone_hash="h", contact_id=card.contact_id, sku="X",
        amount_fen=100_000, ordered_at=timezone.now() - timedelta(days=3),
    )  # fmt: skip
    Card.objects.filter(pk=card.pk).update(tier=tiers["Member"])
    # The old receipt is out of the window; the Tmall order (1,000 yuan) is in: Silver.
    settings.LOYALTY_SPEND_INCLUDES_ORDERS = False
    assert tier_evaluate(card.pk) is None
    settings.LOYALTY_SPEND_INCLUDES_ORDERS = True
    change = tier_evaluate(card.pk)
    assert change.to_tier == tiers["Silver"] and (change.basis, change.value) == ("spend", 100_000)
    # A new receipt of 4,000 yuan: 5,000 in the window -> Gold at once.
    assert _scan(card, store, "R-new", 400_000).tier_change.to_tier == tiers["Gold"]
    # A year on, all of it has rolled out; grace 0 -> the first evaluation moves it down to the bottom.
    change = tier_evaluate(card.pk, scheduled=True, at=timezone.now() + timedelta(days=400))
    assert change.reason == "downgrade" and change.to_tier == tiers["Member"] and change.value == 0


def test_policy_validation_names_the_field(tiers):
    assert tier_policy_get().basis == "points"
    for kwargs, field in (
        ({"basis": "visits", "window_days": 365, "grace_days": 30}, "basis"),
        ({"basis": "points", "window_days": -1, "grace_days": 30}, "window_days"),
        ({"basis": "points", "window_days": 365, "grace_days": 9999}, "grace_days"),
        ({"basis": "points", "window_days": "365", "grace_days": 30}, "window_days"),
    ):
        with pytest.raises(ApplicationError) as err:
            tier_policy_save(**kwargs)
        assert err.value.field == field
    # Spend as the basis needs spend thresholds that rise with rank.
    silver = tiers["Silver"]
    tier_save(name="Silver", min_points=1000, rank=silver.rank, tier_id=silver.pk, min_spend_fen=0)
    with pytest.raises(ApplicationError) as err:
        tier_policy_save(basis="spend", window_days=365, grace_days=30)
    assert (err.value.field, err.value.code) == ("basis", "ladder_order")
    assert TierPolicy.objects.get(pk=1).basis == "points"  # nothing written
