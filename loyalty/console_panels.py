"""Loyalty's panel on the console's contact page: card, tier, points and purchases.

Registered from LoyaltyConfig.ready() into crm's panel registry (crm.console.panels), because crm never imports
loyalty: the contact page shows what is registered without knowing who registered it."""

from __future__ import annotations

from django.http import HttpRequest
from django.utils.translation import gettext_lazy as _

from crm.console.panels import ContactPanel, register_contact_panel
from crm.console.render import yuan
from crm.models import Contact
from loyalty.models import Card
from loyalty.selectors import card_purchases
from loyalty.selectors_tiers import tier_progress

PURCHASES_SHOWN = 10


def card_panel_context(contact: Contact, request: HttpRequest) -> dict:
    """The card (None when the customer has not opened it yet: it is made on first use), its next tier and the
    latest purchases with their amounts in yuan."""
    card = Card.objects.select_related("tier").filter(contact=contact).first()
    if card is None:
        return {"card": None}
    purchases = list(card_purchases(card.pk, limit=PURCHASES_SHOWN))
    for purchase in purchases:
        purchase.amount = yuan(purchase.amount_fen)
    progress = tier_progress(card)  # on the tier rules' basis and window, not lifetime points
    return {
        "card": card,
        "progress": progress,
        "next_tier": progress.next_tier,
        "purchases": purchases,
        "purchases_count": card.purchases.count(),
        "purchases_shown": PURCHASES_SHOWN,
    }


def register() -> None:
    register_contact_panel(
        ContactPanel(
            key="loyalty-card",
            title=_("Loyalty card & purchases"),
            template="loyalty/console_card_panel.html",
            context=card_panel_context,
            permissions=("loyalty.view_card",),
            order=10,
            icon="loyalty",
        )
    )
