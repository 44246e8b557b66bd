"""Cashier accounts for the tills (used by demo seeding and store onboarding)."""

from __future__ import annotations

from collections.abc import Iterable

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.db import transaction
from rest_framework.authtoken.models import Token

from crm.errors import ApplicationError
from crm.services.roles import roles_ensure
from loyalty.models import Store
from loyalty.permissions import CASHIER_GROUP


@transaction.atomic
def cashier_ensure(*, username: str, store_codes: Iterable[str] = ()) -> tuple[object, str]:
    """A user in the "cashier" group with an API token for the till: (user, token key). Idempotent.

    The till scans only at the stores it is bound to: `store_codes`, added to those it has."""
    user, created = get_user_model().objects.get_or_create(username=username)
    if created:
        user.set_unusable_password()  # tills authenticate with the token only
        user.save(update_fields=["password"])
    group, group_created = Group.objects.get_or_create(name=CASHIER_GROUP)
    if group_created:  # normally made by the roles migration; give it the role's permissions
        roles_ensure()
    user.groups.add(group)
    codes = list(store_codes)
    stores = list(Store.objects.filter(code__in=codes))
    missing = sorted(set(codes) - {s.code for s in stores})
    if missing:
        raise ApplicationError(f"Unknown store {missing[0]!r}.", code="unknown_store", field="store_codes")
    user.loyalty_stores.add(*stores)
    token, _ = Token.objects.get_or_create(user=user)
    return user, token.key
