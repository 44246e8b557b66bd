"""Django admin, one module per sub-domain."""

from crm.admin import callbacks, campaigns, contacts, platform, rollups, runs, segments  # noqa: F401
