"""ASGI entry point of the callback ingest server (gunicorn -c python:crm.gunicorn_ingest_conf crm.ingest)."""

import os

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "crm.settings")
django.setup()

from crm.api.callback_ingest import CallbackIngestApp  # noqa: E402  (models load after setup)

application = CallbackIngestApp()
