"""The Celery application. All Celery settings live in crm/settings.py under CELERY_*."""

import os

from celery import Celery

from crm import kombu_fix

kombu_fix.install()  # a publish right after a Redis restart must not be lost (crm/kombu_fix.py)
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "crm.settings")

app = Celery("crm")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks(["crm", "loyalty"], related_name="tasks")

# Worker heartbeat for /healthz (imported for its signal handlers).
import crm.heartbeat  # noqa: E402,F401
