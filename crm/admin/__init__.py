"""Django admin, one module per sub-domain."""

from crm.admin import callbacks, campaigns, contacts, platform, rollups, segments  # noqa: F401
