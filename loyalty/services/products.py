"""The product catalogue: SKUs and their categories (segments by category bought; later, earning rules)."""

from __future__ import annotations

import re

from django.db import transaction
from django.utils.translation import gettext as _

from crm.errors import ApplicationError, NotFound
from loyalty.models import Product

_SKU = re.compile(r"^[A-Za-z0-9._-]{1,64}$")


def product_validate(*, sku: str, name: str = "", category: str = "", product_id: int | None = None) -> str:
    """Refuse a product the catalogue cannot hold, naming the field; returns the normalised SKU."""
    sku = (sku or "").strip()
    if not _SKU.match(sku):
        raise ApplicationError(_("A SKU is 1 to 64 letters, digits, dots, dashes or underscores."), field="sku")
    if len(name or "") > 128:
        raise ApplicationError(_("At most 128 characters."), field="name")
    if len(category or "") > 64:
        raise ApplicationError(_("At most 64 characters."), field="category")
    if Product.objects.filter(sku=sku).exclude(pk=product_id).exists():
        raise ApplicationError(_("Another product has this SKU."), field="sku", code="duplicate")
    return sku


@transaction.atomic
def product_save(*, sku: str, name: str = "", category: str = "", product_id: int | None = None) -> Product:
    """Create (no product_id) or change a product."""
    product = None
    if product_id is not None:
        product = Product.objects.select_for_update().filter(pk=product_id).first()
        if product is None:
            raise NotFound(_("No such product."), field="product")
    sku = product_validate(sku=sku, name=name, category=category, product_id=product_id)
    values = {"sku": sku, "name": (name or "").strip(), "category": (category or "").strip()}
    if product is None:
        return Product.objects.create(**values)
    for field, value in values.items():
        setattr(product, field, value)
    product.save()
    return product


@transaction.atomic
def product_delete(product_id: int) -> None:
    """Purchase lines keep their SKU as text, so a product can leave the catalogue without touching history."""
    Product.objects.filter(pk=product_id).delete()
