"""The callback ingest server's ASGI app with two extra trivial endpoints served by the same server processes:

- `/bench/bare`: a raw ASGI answer, the baseline the receiver's and the claims' throughput and latency are
  compared with;
- `/bench/django-bare`: a bare JSON view through Django (its ASGI handler and middleware, as the server's Django
  fallback runs them): reported beside it, for scale (the till bench's bare
  endpoint is of this kind).
"""

from django.conf import settings
from django.core.asgi import get_asgi_application
from django.http import JsonResponse
from django.urls import include, path

from crm.ingest import application as ingest


def _django_bare(request):
    return JsonResponse({"ok": True})


urlpatterns = [path("bench/django-bare", _django_bare), path("", include("crm.urls"))]
settings.ROOT_URLCONF = __name__
_django = get_asgi_application()


async def application(scope, receive, send):
    if scope["type"] == "http" and scope["path"] == "/bench/bare":
        while (await receive()).get("more_body"):
            pass
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
        await send({"type": "http.response.body", "body": b""})
        return
    if scope["type"] == "http" and scope["path"] == "/bench/django-bare":
        await _django(scope, receive, send)
        return
    await ingest(scope, receive, send)
