"""Cards: one per company-owned contact, made the first time the customer opens it."""

from __future__ import annotations

import secrets

from django.db import IntegrityError, transaction

from crm.errors import NotFound
from crm.models import Contact
from loyalty.models import Card
from loyalty.services.tiers import tier_for_points


def _luhn_check_digit(digits: str) -> str:
    total = 0
    for index, char in enumerate(reversed(digits)):
        value = int(char)
        if index % 2 == 0:  # doubled positions, counted from the right of the payload
            value = value * 2 - 9 if value > 4 else value * 2
        total += value
    return str((10 - total % 10) % 10)


def card_number_generate() -> str:
    """12 digits: '8', 10 random digits, a Luhn check digit (typos at the till are caught)."""
    payload = "8" + "".join(str(secrets.randbelow(10)) for _ in range(10))
    return payload + _luhn_check_digit(payload)


def card_get_or_create(contact_id: int) -> Card:
    """The contact's card, made (at the entry tier) on first use; safe against two first opens at once."""
    # An erased contact has no card any more, whatever link or session still names it (crm.services.erasure).
    existing = Card.objects.select_related("tier", "contact").filter(
        contact_id=contact_id, contact__erased_at__isnull=True).first()
    if existing:
        return existing
    if not Contact.objects.filter(pk=contact_id, erased_at__isnull=True).exists():
        raise NotFound("No such customer.", field="contact")
    for _attempt in range(5):
        try:
            with transaction.atomic():
                card = Card.objects.create(
                    contact_id=contact_id, number=card_number_generate(), tier=tier_for_points(0)
                )
            from loyalty.services.journeys import journey_fire  # journeys import coupons, which import this

            journey_fire("card_joined", contact_id=contact_id)  # a journey step's welcome coupon, after commit
            return Card.objects.select_related("tier", "contact").get(pk=card.pk)
        except IntegrityError:
            # Either a concurrent first open made the card (use it) or the random number collided (try again).
            existing = Card.objects.select_related("tier", "contact").filter(contact_id=contact_id).first()
            if existing:
                return existing
    raise RuntimeError("could not allocate a unique card number")
