"""Django admin, one module per sub-domain."""

from crm.admin import callbacks, campaigns, contacts, group_packets, platform, rollups, runs, segments  # noqa: F401
