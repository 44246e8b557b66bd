"""Celery tasks, one module per kind of work (each routed to its own queue in settings)."""

# Every module here must be imported: the worker registers only the tasks of modules this package imports.
from crm.tasks import callbacks, campaigns, contacts, draws, group_packets, planning, redpackets, rollups  # noqa: F401
