"""Whether the demo seed of `make run` has finished: the seed marks its start and its end, /readyz reads it.

Kept in the cache (Redis), which every process of one `make run` shares; a seed that was killed leaves "seeding"
behind, and the next run's seed starts over from it."""

from __future__ import annotations

from django.core.cache import cache
from django.utils import timezone

SEED_KEY = "readiness:demo_seed"


def seed_mark(state: str) -> None:
    """state is "seeding" (the seed started) or "done" (it finished)."""
    cache.set(SEED_KEY, {"state": state, "at": timezone.now().isoformat()}, timeout=None)


def seed_state() -> dict:
    return cache.get(SEED_KEY) or {"state": "not started"}
