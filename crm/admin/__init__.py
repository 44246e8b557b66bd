"""Django admin, one module per sub-domain."""

from crm.admin import (  # noqa: F401
    callbacks,
    campaigns,
    contacts,
    group_packets,
    platform,
    rollups,
    runs,
    security,
    segments,
)
