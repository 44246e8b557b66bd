"""ASGI entry point of the ingest server, WeCom callbacks and red-packet claims
(gunicorn -c python:crm.gunicorn_ingest_conf crm.ingest)."""

import os

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "crm.settings")
django.setup()

from django.core.asgi import get_asgi_application  # noqa: E402

from crm.api.callback_ingest import CallbackIngestApp  # noqa: E402  (models load after setup)
from crm.api.claim_ingest import ClaimIngestApp  # noqa: E402

# WeCom's callbacks and the red-packet claims: the two bursts that come from outside (the proxy sends
# /wecom/callback and /m/rp/ here; what the claim path does not take is Django's, in this process).
application = CallbackIngestApp(claims=ClaimIngestApp(get_asgi_application()))

from crm.heap import freeze_loaded_app  # noqa: E402

freeze_loaded_app()
