"""The server processes' garbage collector, tuned once the application is loaded.

Django, DRF and the project's modules leave ~10^5 long-lived objects on the heap, and every full collection walks
all of them. A busy worker allocates enough per request (a till scan: models, SQL parameters, the JSON in and out)
to run such a collection every few dozen requests: measured in process, a scan took ~25 % less CPU with the
startup heap frozen (docs/loyalty-till.md, *Fourth pass*). `gc.freeze()` moves what exists at that point to a
permanent generation the collector no longer walks; later objects are collected as usual. It is what the Python
documentation suggests for pre-fork servers, and it is safe: frozen objects are never freed, and they live for
the whole process anyway.
"""

from __future__ import annotations

import gc


def freeze_loaded_app() -> None:
    """Import every view module now (Django does it on the first request), then freeze the heap."""
    from django.urls import get_resolver

    get_resolver().url_patterns  # noqa: B018  (resolves the URLconf: imports the views it names)
    gc.collect()
    gc.freeze()
