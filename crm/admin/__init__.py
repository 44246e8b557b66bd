"""Django admin, one module per sub-domain."""

from crm.admin import callbacks, campaigns, contacts, draws, platform, rollups, runs, segments  # noqa: F401
