"""The callback ingest server's ASGI app with two extra trivial endpoints served by the same server processes:

- `/bench/bare`: a raw ASGI answer, the baseline the receiver's and the claims' throughput and latency are
  compared with;
- `/bench/django-bare`: a bare JSON view through Django (its ASGI handler and middleware, as the server's Django
  fallback runs them): reported beside it, for scale (the till bench's bare
  endpoint is of this kind);
- `/bench/write`: the minimal durable write, as the claim path makes it: the request's row handed to a group-commit
  writer thread (crm.api.group_commit), one COPY and one commit per group, answered once committed. Reported for
  scale: what a claim costs beyond the write every acknowledged claim must make (the till bench's minimal write is
  of this kind).
"""

import asyncio
import json

from django.conf import settings
from django.core.asgi import get_asgi_application
from django.http import JsonResponse
from django.urls import include, path

from crm.api.group_commit import GroupCommitWriter
from crm.ingest import application as ingest

_TABLE = "bench_minimal_write"
_made = False  # the table, once per process


def _store(items: list[int]) -> list[int]:
    from django.db import connection, transaction

    global _made
    postgres = connection.vendor == "postgresql"
    with transaction.atomic(), connection.cursor() as cur:
        if not _made:
            if postgres:  # two workers' first groups must not race to create it
                cur.execute("SELECT pg_advisory_xact_lock(8015)")
            key = "bigserial" if postgres else "integer"
            cur.execute(f"CREATE TABLE IF NOT EXISTS {_TABLE} (id {key} PRIMARY KEY, n bigint NOT NULL)")
        if not postgres:  # a SQLite run: the same rows, without COPY
            cur.executemany(f"INSERT INTO {_TABLE} (n) VALUES (%s)", [(n,) for n in items])
        else:
            with cur.cursor.copy(f"COPY {_TABLE} (n) FROM STDIN") as copy:
                for n in items:
                    copy.write_row((n,))
    _made = True  # committed: a group rolled back makes the table again next time
    return items


_writer = GroupCommitWriter(_store, max_batch=128, name="bench-writer")
_count = iter(range(10**12))


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
    if scope["type"] == "http" and scope["path"] == "/bench/write":
        while (await receive()).get("more_body"):
            pass
        n = await asyncio.wrap_future(_writer.submit(next(_count)))
        body = json.dumps({"ok": True, "n": n}).encode()
        await send({"type": "http.response.start", "status": 200, "headers": [
            (b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})
        return
    if scope["type"] == "http" and scope["path"] == "/bench/django-bare":
        await _django(scope, receive, send)
        return
    await ingest(scope, receive, send)
