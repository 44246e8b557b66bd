"""The private-domain CRM: project package (settings, urls, Celery app) and core domain."""

from crm.celery import app as celery_app

__all__ = ["celery_app"]
