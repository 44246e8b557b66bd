"""Tier evaluation and the VIP hook (fires once, on commit, only when a card enters a VIP tier)."""

from __future__ import annotations

import sys
import types

import pytest

from loyalty.models import Tier, TierChange
from loyalty.qr import qr_token_mint
from loyalty.services import (
    points_adjust,
    scan_record,
    tier_change_send_vip_invite,
    tier_evaluate,
    tier_for_points,
    tiers_ensure_defaults,
)
from loyalty.services.tiers import tier_set_manual

pytestmark = pytest.mark.django_db


def _scan(card, store, receipt, amount_fen):
    return scan_record(
        qr_token=qr_token_mint(card.number).token, store_code=store.code, receipt_id=receipt, amount_fen=amount_fen
    )


def test_default_ladder_is_seeded_once_and_edits_are_kept():
    tiers = tiers_ensure_defaults()
    assert [(t.name, t.min_points, t.is_vip) for t in tiers] == [
        ("Member", 0, False),
        ("Silver", 1000, False),
        ("Gold", 5000, True),
        ("Platinum", 20000, True),
    ]
    Tier.objects.filter(name="Silver").update(min_points=800)
    tiers_ensure_defaults()
    assert Tier.objects.count() == 4 and Tier.objects.get(name="Silver").min_points == 800


def test_tier_for_points(tiers):
    assert tier_for_points(0) == tiers["Member"]
    assert tier_for_points(999) == tiers["Member"]
    assert tier_for_points(1000) == tiers["Silver"]
    assert tier_for_points(19_999) == tiers["Gold"]
    assert tier_for_points(50_000) == tiers["Platinum"]


def test_reaching_vip_invites_once_on_commit(card, store, tiers, vip_invites, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        silver = _scan(card, store, "R-1", 100_000)  # 1000 points
    assert silver.purchase.tier_after == tiers["Silver"] and vip_invites == []

    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        gold = _scan(card, store, "R-2", 400_000)  # 5000 lifetime
    assert gold.tier_change.to_tier == tiers["Gold"] and len(callbacks) == 1
    assert vip_invites == [gold.tier_change.pk]

    with django_capture_on_commit_callbacks(execute=True):
        platinum = _scan(card, store, "R-3", 1_500_000)  # 20000: VIP to VIP, no second invitation
        _scan(card, store, "R-3", 1_500_000)  # duplicate receipt: nothing
    assert platinum.tier_change.to_tier == tiers["Platinum"]
    assert vip_invites == [gold.tier_change.pk]
    card.refresh_from_db()
    assert card.tier == tiers["Platinum"] and card.lifetime_points == 20_000
    assert list(TierChange.objects.filter(card=card).order_by("id").values_list("to_tier__name", flat=True)) == [
        "Silver",
        "Gold",
        "Platinum",
    ]


def test_one_receipt_jumping_two_tiers_records_one_change(
    card, store, tiers, vip_invites, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        result = _scan(card, store, "R-BIG", 600_000)
    assert (result.tier_change.from_tier, result.tier_change.to_tier) == (tiers["Member"], tiers["Gold"])
    assert len(vip_invites) == 1 and result.purchase.tier_before == tiers["Member"]


def test_rolled_back_scan_sends_no_invitation(card, store, tiers, vip_invites, django_capture_on_commit_callbacks):
    from django.db import transaction

    with django_capture_on_commit_callbacks(execute=True), pytest.raises(RuntimeError):
        with transaction.atomic():
            _scan(card, store, "R-1", 600_000)
            raise RuntimeError("till crashed before commit")
    assert vip_invites == [] and not TierChange.objects.exists()


def test_neither_redeeming_nor_a_negative_adjust_demotes_at_once(card, tiers, django_capture_on_commit_callbacks):
    # Issue 12: a card moves down only at the scheduled evaluation, after its grace (tests/loyalty/test_tiers_rules.py).
    with django_capture_on_commit_callbacks(execute=True):
        points_adjust(card_id=card.pk, delta=1200, reason="goodwill", idempotency_key="k1")
    card.refresh_from_db()
    assert card.tier == tiers["Silver"]
    points_adjust(card_id=card.pk, delta=-500, reason="scan made in error", idempotency_key="k2")
    card.refresh_from_db()
    assert card.tier == tiers["Silver"] and card.points_balance == 700
    assert tier_evaluate(card.pk) is None


def test_vip_invite_service_calls_crm_once(card, tiers, monkeypatch, django_capture_on_commit_callbacks):
    invited: list[int] = []
    fake = types.ModuleType("crm.services.vip")
    fake.invite_to_vip_group = invited.append
    monkeypatch.setitem(sys.modules, "crm.services.vip", fake)
    with django_capture_on_commit_callbacks(execute=True):
        points_adjust(card_id=card.pk, delta=5000, reason="launch party", idempotency_key="vip")
    change = TierChange.objects.get(card=card)
    assert tier_change_send_vip_invite(change.pk) is True
    assert tier_change_send_vip_invite(change.pk) is False  # a redelivered task does not invite twice
    assert invited == [card.contact_id]
    change.refresh_from_db()
    assert change.vip_invite_sent_at is not None


def test_vip_invite_skipped_when_demoted_before_the_worker_ran(card, tiers, monkeypatch):
    invited: list[int] = []
    fake = types.ModuleType("crm.services.vip")
    fake.invite_to_vip_group = invited.append
    monkeypatch.setitem(sys.modules, "crm.services.vip", fake)
    points_adjust(card_id=card.pk, delta=5000, reason="oops", idempotency_key="a")
    change = TierChange.objects.get(card=card)
    tier_set_manual(card_id=card.pk, tier_id=tiers["Member"].pk)  # an admin moves the card down again
    assert tier_change_send_vip_invite(change.pk) is False and invited == []


def test_vip_task_retries_only_retryable_wecom_errors(card, tiers, monkeypatch):
    from celery.exceptions import Retry

    from crm.wecom.errors import WeComError
    from loyalty import tasks

    def fail(errcode):
        def invite(contact_id):
            raise WeComError(errcode, "boom", "/externalcontact/groupchat/add_join_way")

        return invite

    points_adjust(card_id=card.pk, delta=5000, reason="vip", idempotency_key="t")
    change = TierChange.objects.get(card=card)
    fake = types.ModuleType("crm.services.vip")
    monkeypatch.setitem(sys.modules, "crm.services.vip", fake)
    fake.invite_to_vip_group = fail(45009)
    with pytest.raises(Retry):
        tasks.vip_invite.apply(args=[change.pk], throw=True).get()
    fake.invite_to_vip_group = fail(40003)
    with pytest.raises(WeComError):
        tasks.vip_invite.apply(args=[change.pk], throw=True).get()


def test_the_timeline_names_a_tier_change_in_the_staff_language(card, store, tiers):
    """tier_changed is one of crm's ContactEvent kinds, so the timeline shows its (translated) label, not the code."""
    from django.utils.functional import Promise

    from crm.models import ContactEvent
    from loyalty.services.tiers import TIMELINE_KIND

    assert TIMELINE_KIND == ContactEvent.Kind.TIER_CHANGED
    _scan(card, store, "T-label", 100_000)  # -> Silver
    event = ContactEvent.objects.get(contact_id=card.contact_id, kind=TIMELINE_KIND)
    assert event.get_kind_display() == "Tier changed"
    label = dict(ContactEvent._meta.get_field("kind").choices)[TIMELINE_KIND]
    assert isinstance(label, Promise)  # gettext_lazy (crm.model_names): shown in the staff member's language
