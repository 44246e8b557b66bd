"""Progress to the next tier on the tier rules' basis (points earned or spend, in the rolling window), not on
lifetime points: the card page, the console's card panel and the card API say the same numbers that move the card."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from crm.services.customer_links import sign_contact
from loyalty.models import Card, Purchase
from loyalty.selectors_tiers import tier_progress
from loyalty.services import points_adjust
from loyalty.services.tiers import tier_policy_save

pytestmark = pytest.mark.django_db


def _card(card):
    return Card.objects.select_related("tier").get(pk=card.pk)


def test_points_in_the_window_not_lifetime(card, tiers):
    tier_policy_save(basis="points", window_days=90, grace_days=30)
    points_adjust(card_id=card.pk, delta=900, reason="then", idempotency_key="then")
    card = _card(card)
    assert card.tier == tiers["Member"] and card.lifetime_points == 900
    now = tier_progress(card)
    assert (now.basis, now.window_days, now.value, now.remaining) == ("points", 90, 900, 100)
    later = tier_progress(card, at=timezone.now() + timedelta(days=200))  # those 900 left the window
    assert later.value == 0 and later.next_tier == tiers["Silver"] and later.remaining == 1000
    tier_policy_save(basis="points", window_days=0, grace_days=30)  # all history: lifetime points
    assert tier_progress(card, at=timezone.now() + timedelta(days=200)).remaining == 100


def test_spend_basis_counts_fen_and_the_pages_say_yuan(card, tiers, store, admin_client, admin_client_api):
    tier_policy_save(basis="spend", window_days=365, grace_days=30)
    silver = tiers["Silver"]
    Purchase.objects.create(store=store, receipt_id="S-1", card=card, amount_fen=12_345)
    card = Card.objects.select_related("tier").get(pk=card.pk)
    progress = tier_progress(card)
    assert progress.basis == "spend" and progress.value == 12_345
    assert progress.needed == silver.min_spend_fen and progress.remaining == silver.min_spend_fen - 12_345
    yuan = progress.remaining_yuan

    panel = admin_client.get(reverse("console:contact", args=[card.contact_id])).content.decode()
    assert f'data-basis="spend" data-remaining="{progress.remaining}"' in panel and f"¥{yuan}" in panel
    page = admin_client.get(f"/m/card/{sign_contact(card.contact_id, 'card')}/", HTTP_ACCEPT_LANGUAGE="en")
    html = page.content.decode()
    assert f"Spend ¥{yuan} more to reach {silver.name}" in html and "365 days" in html
    body = admin_client_api.get(f"/api/loyalty/cards/{card.pk}").json()
    assert body["next_tier"]["name"] == silver.name
    assert body["next_tier_progress"] == {"basis": "spend", "window_days": 365, "value": 12_345,
                                          "needed": silver.min_spend_fen, "remaining": progress.remaining}  # fmt: skip


def test_the_top_tier_has_no_next(card, tiers):
    top = max(tiers.values(), key=lambda t: t.rank)
    Card.objects.filter(pk=card.pk).update(tier=top)
    progress = tier_progress(Card.objects.select_related("tier").get(pk=card.pk))
    assert progress.next_tier is None and progress.remaining == 0
