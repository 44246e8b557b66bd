"""Celery tasks, one module per kind of work (each routed to its own queue in settings)."""

from crm.tasks import callbacks, campaigns, contacts, planning, redpackets, rollups  # noqa: F401
