"""Stores whose tills scan cards."""

from __future__ import annotations

import re
from collections.abc import Iterable

from django.contrib.auth import get_user_model
from django.db import transaction
from django.utils.translation import gettext as _

from crm.errors import ApplicationError, NotFound
from loyalty.models import Store

_CODE_RE = re.compile(r"^[-a-zA-Z0-9_]{1,32}$")


@transaction.atomic
def store_upsert(*, code: str, name: str, city: str = "", is_active: bool = True) -> Store:
    """Create or update the store with this code (the code the tills send)."""
    store, _created = Store.objects.update_or_create(
        code=code, defaults={"name": name, "city": city, "is_active": is_active}
    )
    return store


def store_validate(
    *, code: str, name: str, city: str = "", store_id: int | None = None, member_ids: Iterable[int] | None = None
) -> tuple[str, str, str]:
    """Refuse what a till or the table would refuse, naming the field; returns (code, name, city). Writes nothing."""
    code, name, city = (code or "").strip(), (name or "").strip(), (city or "").strip()
    if not _CODE_RE.match(code):
        raise ApplicationError(_("The code is what the tills send: 1-32 letters, digits, - or _."), field="code")
    if not name:
        raise ApplicationError(_("A store needs a name."), field="name")
    if len(name) > 128 or len(city) > 64:
        raise ApplicationError(_("At most 128 characters."), field="name" if len(name) > 128 else "city")
    others = Store.objects.exclude(pk=store_id) if store_id else Store.objects.all()
    if others.filter(code__iexact=code).exists():
        raise ApplicationError(
            _("A store with code %(code)s already exists.") % {"code": code}, code="duplicate", field="code"
        )
    if member_ids is not None:
        ids = set(member_ids)
        found = set(get_user_model().objects.filter(pk__in=ids, is_active=True).values_list("pk", flat=True))
        if ids - found:
            raise ApplicationError(_("Only active users can work at a store."), field="members")
    return code, name, city


@transaction.atomic
def store_save(
    *,
    code: str,
    name: str,
    city: str = "",
    is_active: bool = True,
    store_id: int | None = None,
    member_ids: Iterable[int] | None = None,
) -> Store:
    """Create (no store_id) or change a store, and, when `member_ids` is given, bind exactly those users to it
    (store managers see, and cashiers scan at, only their own stores). A code a till already sends is kept: a
    store with purchases cannot change its code."""
    member_ids = None if member_ids is None else list(member_ids)
    store = None
    if store_id is not None:
        store = Store.objects.select_for_update().filter(pk=store_id).first()
        if store is None:
            raise NotFound(_("No such store."), field="store")
    code, name, city = store_validate(code=code, name=name, city=city, store_id=store_id, member_ids=member_ids)
    if store is None:
        store = Store.objects.create(code=code, name=name, city=city, is_active=is_active)
    else:
        if code != store.code and store.purchases.exists():
            raise ApplicationError(
                _("Tills already send code %(code)s with their receipts; it cannot change.") % {"code": store.code},
                code="in_use",
                field="code",
            )
        store.code, store.name, store.city, store.is_active = code, name, city, is_active
        store.save()
    if member_ids is not None:
        store.members.set(member_ids)
    return store
