"""Cashier accounts for the tills (used by demo seeding and store onboarding)."""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.db import transaction
from rest_framework.authtoken.models import Token

from loyalty.permissions import CASHIER_GROUP


@transaction.atomic
def cashier_ensure(*, username: str) -> tuple[object, str]:
    """A user in the "cashier" group with an API token for the till: (user, token key). Idempotent."""
    user, created = get_user_model().objects.get_or_create(username=username)
    if created:
        user.set_unusable_password()  # tills authenticate with the token only
        user.save(update_fields=["password"])
    user.groups.add(Group.objects.get_or_create(name=CASHIER_GROUP)[0])
    token, _ = Token.objects.get_or_create(user=user)
    return user, token.key
