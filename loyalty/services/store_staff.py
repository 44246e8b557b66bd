"""Store staff: binding store managers and cashiers to their stores, and one demo user per role."""

from __future__ import annotations

from collections.abc import Iterable

from django.contrib.auth import get_user_model
from django.db import transaction
from rest_framework.authtoken.models import Token

from crm.errors import ApplicationError
from crm.services.roles import ADMIN, CASHIER, MARKETING, STORE_MANAGER, roles_ensure, user_role_set
from loyalty.models import Store


@transaction.atomic
def store_members_set(user, store_codes: Iterable[str]) -> list[Store]:
    """Bind `user` to exactly these stores (by code); unknown codes are refused, naming the code."""
    codes = sorted(set(store_codes))
    stores = list(Store.objects.filter(code__in=codes))
    unknown = sorted(set(codes) - {s.code for s in stores})
    if unknown:
        raise ApplicationError(f"Unknown store {unknown[0]!r}.", code="unknown_store", field="stores")
    user.loyalty_stores.set(stores)
    return stores


# username -> (role, password, bound to the demo store). The passwords are demo defaults, as admin/admin is.
DEMO_USERS = {
    "admin": (ADMIN, "admin", False),
    "marketing": (MARKETING, "marketing", False),
    "manager": (STORE_MANAGER, "manager", True),
    "cashier": (CASHIER, "cashier", True),
}


@transaction.atomic
def demo_users_ensure(*, store_code: str = "SH001", store_name: str = "Shanghai Jing'an") -> dict[str, object]:
    """One demo user per role (idempotent; an existing user keeps the password it has now):
    admin/admin (superuser), marketing/marketing, manager/manager (store manager of `store_code`),
    cashier/cashier (till only, bound to `store_code`, with an API token). Returns {username: user}."""
    roles_ensure()
    store = Store.objects.filter(code=store_code).first()
    if store is None:
        store = Store.objects.create(code=store_code, name=store_name)
    user_model = get_user_model()
    users = {}
    for username, (role, password, bound) in DEMO_USERS.items():
        user, created = user_model.objects.get_or_create(username=username)
        if created:
            user.set_password(password)
            user.is_superuser = role == ADMIN
            user.save()
        user_role_set(user, role)
        if bound:
            user.loyalty_stores.add(store)
        if role == CASHIER:
            Token.objects.get_or_create(user=user)
        users[username] = user
    return users
