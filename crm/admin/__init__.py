"""Django admin, one module per sub-domain."""

from crm.admin import callbacks, campaigns, contacts, platform, rollups, runs, security, segments  # noqa: F401
