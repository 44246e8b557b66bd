"""Django admin, one module per sub-domain."""

from crm.admin import (  # noqa: F401
    callbacks,
    campaigns,
    contacts,
    draw_records,
    draws,
    erasure,
    group_packets,
    platform,
    rollups,
    runs,
    security,
    segments,
    tags,
)
