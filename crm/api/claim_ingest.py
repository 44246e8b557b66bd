"""Red-packet claims on the ingest server: `POST /m/rp/<token>/` (JSON) in groups, everything else under /m/rp/ by
Django.

The web app answers the same path (crm/api/customer_pages.py) in a sync worker: a few milliseconds of CPU per
claim, most of it Django's per-request machinery and a commit and a task message per claim. On a Singles' Day burst
the claims of a plain pool (no eligibility, no gate) are all alike, so this app takes them the way the callback
ingest takes callbacks: the event loop verifies the signed link and keeps the pool's facts for a moment; a writer
thread takes every claim that arrived meanwhile through crm.services.claim_batches (one Redis pipeline, one
transaction, one task message) and answers each. A claim is answered only once its row is committed.

A claim this path does not take (a gated or eligibility pool, not open yet, an HTML page, a game call) goes to
Django's ASGI handler in the same process, so the proxy can send all of /m/rp/ here."""

from __future__ import annotations

import asyncio
import json
import logging
import re
import time
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import parse_qsl

from django.conf import settings
from django.utils import translation
from django.utils.translation import gettext

from crm.api.group_commit import GroupCommitWriter
from crm.api.throttles import ClaimIPThrottle, ClaimVisitorThrottle, _ClaimView
from crm.errors import ApplicationError, error_body
from crm.i18n import customer_language
from crm.services.claim_batches import ClaimAnswer, ClaimRequest, PoolFacts, claims_take, pool_facts
from crm.services.redpackets import parse_claim_token

logger = logging.getLogger(__name__)

CLAIM_PATH = re.compile(r"^/m/rp/([^/]+)/$")
PREFIX = "/m/rp/"
# A pool's facts (status, window, gates) are read at most this often per process. A refund or an early close is
# seen at once all the same: it closes the Redis state the claim script checks, and the writer re-reads the
# pool's status under its lock.
FACTS_SECONDS = 2.0
MAX_BODY = 64 * 1024


class _Meta:
    """What DRF's throttles read of a request (its ident: REMOTE_ADDR, X-Forwarded-For)."""

    def __init__(self, meta: dict) -> None:
        self.META = meta
        self.headers = {"x-forwarded-for": meta["HTTP_X_FORWARDED_FOR"]} if "HTTP_X_FORWARDED_FOR" in meta else {}


_throttles: tuple[tuple, list] = ((), [])


def _claim_throttles() -> list:
    """The claim throttles with a rate, made once per process while their rates stay the same (making them parses
    the rates: a fifth of what keying a claim costs)."""
    global _throttles
    rates = tuple(t.THROTTLE_RATES.get(t.scope) for t in (ClaimVisitorThrottle, ClaimIPThrottle))
    if _throttles[0] != rates:
        _throttles = (rates, [t for t in (ClaimVisitorThrottle(), ClaimIPThrottle()) if t.rate is not None])
    return _throttles[1]


def _windows(contact_id: int, meta: dict) -> tuple[tuple[str, int, int], ...]:
    """The claim throttles' windows for this request, keyed exactly as crm.api.throttles keys them, so a claim
    counts the same whichever server takes it."""
    request, view, out = _Meta(meta), _ClaimView(contact_id), []
    for throttle in _claim_throttles():
        key = throttle.get_cache_key(request, view)
        if key is not None:
            out.append((throttle.cache.make_key(f"{key}:window"), throttle.duration, throttle.num_requests))
    return tuple(out)


class ClaimIngestApp:
    """The claim fast path; `django` answers what it does not take."""

    def __init__(self, django, *, max_batch: int = 128) -> None:
        self.django = django
        self.writer: GroupCommitWriter = GroupCommitWriter(claims_take, max_batch=max_batch, name="claim-writer",
                                                           threads=settings.CLAIM_INGEST_WRITERS)
        self._facts: dict[int, PoolFacts] = {}
        self._reading: dict[int, asyncio.Future] = {}
        self._reader = ThreadPoolExecutor(max_workers=1, thread_name_prefix="claim-facts")
        self._texts: dict[tuple[str, str], str] = {}

    def start(self) -> None:
        self.writer.start()

    def stop(self) -> None:
        self.writer.stop()

    async def __call__(self, scope: dict, receive, send) -> None:
        match = CLAIM_PATH.match(scope["path"])
        if scope["method"] != "POST" or match is None or not _wants_json(scope):
            await self.django(scope, receive, send)
            return
        try:
            pool_id, contact_id = parse_claim_token(match.group(1))
        except ApplicationError as exc:
            await _json(send, exc.status_code, error_body(exc.code, exc.message, exc.field))
            return
        facts = await self._pool(pool_id)
        if facts is None or not facts.fast or facts.expires_at.timestamp() <= time.time():
            await self.django(scope, receive, send)  # its body is still unread: Django reads it
            return
        if not await _drain(receive):
            return
        headers = dict(scope.get("headers") or ())
        meta = {"REMOTE_ADDR": (scope.get("client") or ("", 0))[0]}
        if b"x-forwarded-for" in headers:
            meta["HTTP_X_FORWARDED_FOR"] = headers[b"x-forwarded-for"].decode("latin-1")
        request = ClaimRequest(pool_id, contact_id, _windows(contact_id, meta))
        try:
            answer: ClaimAnswer = await asyncio.wait_for(
                asyncio.wrap_future(self.writer.submit(request)), timeout=settings.CALLBACK_INGEST_TIMEOUT_SECONDS
            )
        except Exception:
            # Not known to be written: the customer taps again and gets the same packet (once per customer).
            logger.exception("claim not answered")
            answer = ClaimAnswer("unavailable")
        language = customer_language(headers.get(b"accept-language", b"").decode("latin-1"))
        await self._answer(send, answer, facts, contact_id, language)

    async def _pool(self, pool_id: int) -> PoolFacts | None:
        """The pool's facts; one read per pool at a time, however many claims are waiting for it. While a newer
        read is on its way, claims go on with the facts they have (see FACTS_SECONDS)."""
        facts = self._facts.get(pool_id)
        if facts is not None and time.monotonic() - facts.read_at <= FACTS_SECONDS:
            return facts
        reading = self._reading.get(pool_id)
        if reading is None:
            reading = self._reading[pool_id] = asyncio.ensure_future(self._read(pool_id))
        if facts is not None:
            return facts
        return await asyncio.shield(reading)

    async def _read(self, pool_id: int) -> PoolFacts | None:
        try:
            facts = await asyncio.get_running_loop().run_in_executor(self._reader, pool_facts, pool_id)
        finally:
            del self._reading[pool_id]
        if facts is None:
            self._facts.pop(pool_id, None)
        else:
            if len(self._facts) > 10_000:  # pools come and go; a dropped entry is only read again
                self._facts.clear()
            self._facts[pool_id] = facts
        return facts

    def _text(self, key: str, language: str) -> str:
        from crm.api.customer_pages import MESSAGES

        text = self._texts.get((key, language))
        if text is None:
            with translation.override(language):
                text = str(MESSAGES[key]) if key in MESSAGES else ERRORS[key][2]()
            self._texts[(key, language)] = text
        return text

    async def _answer(self, send, answer: ClaimAnswer, facts: PoolFacts, contact_id: int, language: str) -> None:
        if answer.status in ERRORS:
            status, code, _text = ERRORS[answer.status]
            extra = []
            if answer.status == "throttled":
                extra = [(b"retry-after", str(max(1, int(answer.wait_seconds + 0.999))).encode())]
            await _json(send, status, error_body(code, self._text(answer.status, language)), extra, language)
            return
        await _json(send, 200, {
            "status": answer.status,
            "message": self._text(answer.status, language),
            "amount_fen": answer.amount_fen,
            "pool_id": facts.id,
            "contact_id": contact_id,
            "campaign": facts.campaign,
            "expires_at": facts.expires_at.isoformat(),
            "invite": None,
            "gates": [],
        }, language=language)  # fmt: skip


# status -> (HTTP status, error code, message): the same answers the web app's page gives.
ERRORS = {
    "throttled": (429, "throttled", lambda: gettext("Too many attempts. Please wait a minute and try again.")),
    "retry": (409, "retry", lambda: gettext("Please try again.")),
    "not_found": (404, "not_found", lambda: gettext("This red packet does not exist.")),
    "unavailable": (503, "unavailable", lambda: gettext("Red packets are not available right now.")),
}


def _wants_json(scope: dict) -> bool:
    query = scope.get("query_string") or b""
    if b"format=json" in query and dict(parse_qsl(query.decode("latin-1"))).get("format") == "json":
        return True
    for name, value in scope.get("headers") or ():
        if name == b"accept":
            return b"application/json" in value
    return False


async def _drain(receive) -> bool:
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return False
        size += len(message.get("body", b""))
        if size > MAX_BODY or not message.get("more_body"):
            return True


async def _json(send, status: int, body: dict, extra: list | None = None, language: str | None = None) -> None:
    payload = json.dumps(body, ensure_ascii=False).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(payload)).encode()),
               (b"cache-control", b"no-store"), *(extra or [])]  # fmt: skip
    if language:
        headers.append((b"content-language", language.encode()))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": payload})
