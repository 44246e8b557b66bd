"""DRF throttles counted in Redis, shared by every web process: the till's (loyalty), the red-packet claim's, and
every customer page's and public endpoint's (throttle_page, page_throttles).

Over the rate -> 429 code "throttled" with Retry-After. Rates are REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"].
"""

from __future__ import annotations

import functools
import hashlib
import math
import secrets
from collections.abc import Callable
from dataclasses import dataclass

from django.core.cache import cache
from rest_framework.throttling import SimpleRateThrottle
from rest_framework.views import APIView


def redis_client():
    """The default cache's own redis-py client (crm.cache keeps one per pool), or None when the cache is not Redis."""
    backend = getattr(cache, "_cache", None)
    if backend is None or not hasattr(backend, "get_client"):
        return None
    client = getattr(backend, "_throttle_client", None)
    if client is None:
        client = backend._throttle_client = backend.get_client(write=True)
    return client


# DRF's sliding window (drop requests older than the duration; refuse at the limit; else record this one), kept
# as a sorted set and run in Redis, every throttle of a request in one call (one round trip), instead of
# reading and writing back the pickled list of every request in the window (a busy till's list is thousands of
# timestamps long). Each key is its own window, as DRF's loop over the throttles: a refusal by one does not
# stop the others counting. ARGV: the number of window keys, the expected config version ('' for none: then
# the last key is not the version's), then four values per window key: now, duration, limit, member.
_WINDOW_LUA = """
local out, n, version = {}, tonumber(ARGV[1]), ARGV[2]
if version ~= '' then
  -- The caller decided on its cached configuration of this version: count nothing when it has changed.
  local current = redis.call('GET', KEYS[#KEYS])
  if current ~= version then
    return {'stale', current}
  end
end
for i = 1, n do
  local key, a = KEYS[i], i * 4 - 1
  local now, duration, limit, member = ARGV[a], ARGV[a + 1], tonumber(ARGV[a + 2]), ARGV[a + 3]
  redis.call('ZREMRANGEBYSCORE', key, '-inf', now - duration)
  local count = redis.call('ZCARD', key)
  local oldest = redis.call('ZRANGE', key, 0, 0, 'WITHSCORES')[2] or now
  if count >= limit then
    out[i] = {0, count, oldest}
  else
    redis.call('ZADD', key, now, member)
    redis.call('PEXPIRE', key, math.ceil(duration * 1000))
    out[i] = {1, count + 1, oldest}
  end
end
-- The keys after the windows are only read (a view's cache reads riding on the same round trip).
for i = n + 1, #KEYS - (version ~= '' and 1 or 0) do
  out[i] = {redis.call('GET', KEYS[i])}
end
return out
"""


class RedisWindowThrottle(SimpleRateThrottle):
    """SimpleRateThrottle's rule and Retry-After, counted by one Lua script in Redis (falls back to DRF's own
    code when the cache is not Redis). RedisThrottledView checks all of a view's in one call."""

    _script = None

    def allow_request(self, request, view):
        return RedisWindowThrottle.allow_all([self], request, view)[0]

    def _window_args(self, request, view) -> list | None:
        """This request's ARGV for the script, or None when it is not counted (no rate, nothing to key on)."""
        if self.rate is None:
            return None
        self.key = self.get_cache_key(request, view)
        if self.key is None:
            return None
        self.now = self.timer()
        return [repr(self.now), self.duration, self.num_requests, f"{self.now!r}:{secrets.token_hex(4)}"]

    @staticmethod
    def allow_all(
        throttles: list[RedisWindowThrottle], request, view, reads: list[str] = (), version=None,
        version_key: str | None = None,
    ) -> list[bool] | Stale:
        """Count every throttle in one call; `reads` (raw Redis keys) are GET in the same call, their values
        (bytes or None) left in view.throttle_reads. With `version` (and the raw Redis key that holds it,
        `version_key`): only if the configuration's version in Redis is still that one (the till's: loyalty.api),
        else nothing counted and Stale(the version found)."""
        client = redis_client()
        if client is None:
            return [SimpleRateThrottle.allow_request(t, request, view) for t in throttles]
        keys, args, counted = [], [0, version or b""], []
        for throttle in throttles:
            window = throttle._window_args(request, view)
            if window is not None:
                keys.append(throttle.cache.make_key(f"{throttle.key}:window"))
                args.extend(window)
                counted.append(throttle)
        if counted or reads or version:
            args[0] = len(counted)
            if RedisWindowThrottle._script is None:
                RedisWindowThrottle._script = client.register_script(_WINDOW_LUA)
            tail = [version_key] if version else []
            out = RedisWindowThrottle._script(keys=keys + list(reads) + tail, args=args, client=client)
            if out and out[0] == b"stale":
                return Stale(out[1] if len(out) > 1 else None)
            for throttle, (allowed, count, oldest) in zip(counted, out[: len(counted)], strict=True):
                throttle._allowed, throttle._count, throttle._oldest = bool(allowed), count, float(oldest)
            view.throttle_reads = [r[0] if r else None for r in out[len(counted) :]]
        return [getattr(t, "_allowed", True) if t in counted else True for t in throttles]

    def wait(self):
        if not hasattr(self, "_count"):
            return super().wait()
        remaining = self.duration - (self.now - self._oldest) if self._count else self.duration
        available = self.num_requests - self._count + 1
        return None if available <= 0 else remaining / float(available)


@dataclass(frozen=True)
class Stale:
    version: bytes | None


class RedisThrottledView(APIView):
    """DRF's check_throttles (every throttle counts; the longest wait answers), the Redis windows in one call."""

    throttle_reads: list | None = None

    def throttle_read_keys(self, request) -> list[str]:
        """Raw Redis keys the view will read anyway: fetched in the throttles' round trip."""
        return []

    def check_throttles(self, request):
        throttles = self.get_throttles()
        if not all(isinstance(t, RedisWindowThrottle) for t in throttles):
            return super().check_throttles(request)
        allowed = RedisWindowThrottle.allow_all(throttles, request, self, self.throttle_read_keys(request))
        durations = [t.wait() for t, ok in zip(throttles, allowed, strict=True) if not ok]
        if durations:
            self.throttled(request, max((d for d in durations if d is not None), default=None))


# --- red-packet claims ---------------------------------------------------------------------------------------
# A claim's POST is counted per visitor (the contact the signed link or the OAuth session names, whichever device)
# and per IP (forged or harvested links from one host). The IP rate is loose on purpose: on Singles' Day many
# customers share one carrier-NAT address.


class ClaimVisitorThrottle(RedisWindowThrottle):
    scope = "redpacket_claim_visitor"

    def get_cache_key(self, request, view):
        contact_id = getattr(view, "contact_id", None)
        if contact_id is None:
            return None
        return self.cache_format % {"scope": self.scope, "ident": contact_id}


class ClaimIPThrottle(RedisWindowThrottle):
    scope = "redpacket_claim_ip"

    def get_cache_key(self, request, view):
        return self.cache_format % {"scope": self.scope, "ident": self.get_ident(request)}


class _ClaimView:
    """What the claim throttles key on, for a plain Django view (they are DRF throttles, checked outside DRF)."""

    def __init__(self, contact_id: int | None) -> None:
        self.contact_id = contact_id


def claim_throttle(request, contact_id: int | None) -> tuple[bool, float | None]:
    """(allowed, seconds to wait) for one claim, both windows in one Redis call; every window counts it."""
    throttles = [ClaimVisitorThrottle(), ClaimIPThrottle()]
    allowed = RedisWindowThrottle.allow_all(throttles, request, _ClaimView(contact_id))
    waits = [t.wait() for t, ok in zip(throttles, allowed, strict=True) if not ok]
    if not waits:
        return True, None
    return False, max((w for w in waits if w is not None), default=None)


# --- customer pages and other public endpoints ---------------------------------------------------------------
# Every page under /m/ (cards, mall, draws, group packets, red-packet and fission pages) and WeChat OAuth's callback
# is counted per kind of page: per visitor where one is known (the signed link, or the contact OAuth put in the
# session) and per IP always (forged or harvested links, scrapers). Rates: REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"]
# "page_<kind>_visitor" / "page_<kind>_ip" (settings PAGE_*). A refusal is 429 with Retry-After, before the view
# does any work; both windows ride on one Redis call, as the claim's do.

_page_throttle_classes: dict[str, tuple[type[RedisWindowThrottle], type[RedisWindowThrottle]]] = {}


class _PageVisitorThrottle(RedisWindowThrottle):
    def get_cache_key(self, request, view):
        visitor = getattr(view, "throttle_visitor", None)
        visitor = visitor(request) if callable(visitor) else visitor
        if not visitor:
            return None
        return self.cache_format % {"scope": self.scope, "ident": visitor}


class _PageIPThrottle(RedisWindowThrottle):
    def get_cache_key(self, request, view):
        return self.cache_format % {"scope": self.scope, "ident": self.get_ident(request)}


def page_throttles(kind: str) -> list[type[RedisWindowThrottle]]:
    """The two throttle classes of one kind of page (for a DRF view's throttle_classes, or throttle_page)."""
    classes = _page_throttle_classes.get(kind)
    if classes is None:
        classes = _page_throttle_classes[kind] = (
            type(f"PageVisitorThrottle_{kind}", (_PageVisitorThrottle,), {"scope": f"page_{kind}_visitor"}),
            type(f"PageIPThrottle_{kind}", (_PageIPThrottle,), {"scope": f"page_{kind}_ip"}),
        )
    return list(classes)


def token_visitor(request, kwargs: dict) -> str | None:
    """The visitor a signed link names: a digest of its signed payload (the customer and the purpose; the part
    before the timestamp, so a link signed again is the same visitor). Not verified here: a forged token is a
    visitor of its own, and the per-IP window is what holds a forger back."""
    token = kwargs.get("token")
    if not token:
        return None
    return hashlib.sha256(str(token).split(":", 1)[0].encode()).hexdigest()[:24]


def session_visitor(request, kwargs: dict) -> str | None:
    """The contact WeChat OAuth identified in this session (any purpose), else None (then per IP only)."""
    from crm.services.wechat_oauth import SESSION_KEY

    session = getattr(request, "session", None)
    identities = (session.get(SESSION_KEY) if session is not None else None) or {}
    for entry in identities.values():
        if isinstance(entry, dict) and entry.get("contact_id"):
            return f"contact:{entry['contact_id']}"
    return None


def no_visitor(request, kwargs: dict) -> None:
    return None


class _PageView:
    def __init__(self, visitor: str | None) -> None:
        self.throttle_visitor = visitor


def page_throttle(request, kind: str, visitor: str | None) -> tuple[bool, float | None]:
    """(allowed, seconds to wait) for one request to a page of this kind; every window counts it."""
    throttles = [cls() for cls in page_throttles(kind)]
    allowed = RedisWindowThrottle.allow_all(throttles, request, _PageView(visitor))
    waits = [t.wait() for t, ok in zip(throttles, allowed, strict=True) if not ok]
    if not waits:
        return True, None
    return False, max((w for w in waits if w is not None), default=None)


def throttled_response(request, wait: float | None, *, json: bool = False):
    """429 with Retry-After, as JSON for API-like callers (a JSON endpoint, ?format=json, JSON body or Accept),
    else a page."""
    from django.http import JsonResponse
    from django.shortcuts import render
    from django.utils.translation import gettext as _

    from crm.errors import error_body

    message = _("Too many attempts. Please wait a minute and try again.")
    wants_json = (
        json
        or request.GET.get("format") == "json"
        or request.content_type == "application/json"
        or "application/json" in request.headers.get("Accept", "")
    )
    if wants_json:
        response = JsonResponse(error_body("throttled", message), status=429)
    else:
        response = render(request, "crm/throttled.html", {"message": message}, status=429)
    response["Retry-After"] = str(max(1, math.ceil(wait))) if wait is not None else "60"
    return response


def throttle_page(kind: str, visitor: Callable[..., str | None] = token_visitor, methods: frozenset | None = None,
                  json: bool = False):
    """Decorator for a plain Django view: the page throttles of `kind` (only for `methods`, when given: a red-packet
    page's claim POST has the claim's own throttles). `json`: the view answers JSON, so does its 429."""

    def decorate(view):
        @functools.wraps(view)
        def wrapped(request, *args, **kwargs):
            if methods is None or request.method in methods:
                allowed, wait = page_throttle(request, kind, visitor(request, kwargs))
                if not allowed:
                    return throttled_response(request, wait, json=json)
            return view(request, *args, **kwargs)

        return wrapped

    return decorate


# A red-packet page's claim POST is counted by the claim's own windows (one Redis call on the claim's hot path):
# the page windows count only looking at it.
PAGE_VIEW = frozenset({"GET", "HEAD"})
