"""Full sync and nightly reconciliation of contacts from WeCom."""

from __future__ import annotations

from crm.services.staff import staff_sync
from crm.services.tags import tags_sync_from_wecom


def reconcile() -> dict:
    """Staff and tags now; the contact pass lands with the full sync."""
    return {"staff": staff_sync(), "tags": tags_sync_from_wecom()}
