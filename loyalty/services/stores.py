"""Stores whose tills scan cards."""

from __future__ import annotations

from django.db import transaction

from loyalty.models import Store


@transaction.atomic
def store_upsert(*, code: str, name: str, city: str = "", is_active: bool = True) -> Store:
    """Create or update the store with this code (the code the tills send)."""
    store, _ = Store.objects.update_or_create(code=code, defaults={"name": name, "city": city, "is_active": is_active})
    return store
