"""The project's WSGI app plus two bench-only baseline views served by the same gunicorn workers and middleware
(for bench/till_scan.py, never mounted in the real app):

- `/bench/bare`: a bare JSON answer;
- `/bench/write?card=<id>`: the minimal write, one transaction that inserts a ledger row and updates a balance.
"""

import os
import uuid

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "crm.settings")

import django

django.setup()

from django.conf import settings  # noqa: E402
from django.core.wsgi import get_wsgi_application  # noqa: E402
from django.db import transaction  # noqa: E402
from django.db.models import F  # noqa: E402
from django.http import JsonResponse  # noqa: E402
from django.urls import include, path  # noqa: E402
from django.views.decorators.csrf import csrf_exempt  # noqa: E402

from loyalty.models import Card, PointsLedger  # noqa: E402


@csrf_exempt
def bare(request):
    return JsonResponse({"ok": True})


@csrf_exempt
def write(request):
    card_id = int(request.GET["card"])
    with transaction.atomic():
        Card.objects.filter(pk=card_id).update(points_balance=F("points_balance") + 1)
        PointsLedger.objects.create(
            card_id=card_id, delta=1, kind="adjust", idempotency_key=f"bench:{uuid.uuid4().hex}", balance_after=0
        )
    return JsonResponse({"ok": True})


urlpatterns = [path("bench/bare", bare), path("bench/write", write), path("", include("crm.urls"))]
settings.ROOT_URLCONF = __name__
application = get_wsgi_application()

from crm.heap import freeze_loaded_app  # noqa: E402

freeze_loaded_app()  # as crm.wsgi does
