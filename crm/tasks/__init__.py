"""Celery tasks, one module per kind of work (each routed to its own queue in settings)."""

from crm.tasks import callbacks, campaigns, contacts, group_packets, planning, redpackets, rollups  # noqa: F401
