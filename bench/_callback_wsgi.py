"""The project's WSGI app with one extra trivial Django view, `/bench/bare`, served by the same server processes
and the same middleware: the baseline that the callback receiver's throughput and latency are compared with."""

import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "crm.settings")

import django

django.setup()

from django.conf import settings  # noqa: E402
from django.core.wsgi import get_wsgi_application  # noqa: E402
from django.http import HttpResponse  # noqa: E402
from django.urls import include, path  # noqa: E402
from django.views.decorators.csrf import csrf_exempt  # noqa: E402


@csrf_exempt
def bare(request):
    return HttpResponse(b"", content_type="text/plain")


urlpatterns = [path("bench/bare", bare), path("", include("crm.urls"))]
settings.ROOT_URLCONF = __name__
application = get_wsgi_application()
