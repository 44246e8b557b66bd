"""The callback ingest server: `/wecom/callback` as a lean ASGI app with group commit.

The Django view (crm/api/callbacks.py) answers the same path inside the web app. On a busy day WeCom's
callbacks come in bursts of hundreds a second, and through Django and a sync worker each one costs a few
milliseconds of CPU, most of it not in verifying or storing. This app does the same work with the same
services (`callback_open`, `callbacks_store`) and nothing else: one event loop per process, verification and
decryption on the loop, and storing through a group-commit writer, so callbacks that arrive together share
one INSERT, one commit and one Redis round trip. It answers 200 only once the event is committed.

Run by `gunicorn -c python:crm.gunicorn_ingest_conf crm.ingest` (uvicorn workers); in production the proxy
sends `/wecom/callback` here and everything else to the web app, so WeCom's configured URL does not change.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable
from urllib.parse import parse_qsl

from django.conf import settings

from crm.api.group_commit import GroupCommitWriter
from crm.errors import error_body
from crm.services.callbacks import (
    MAX_BODY_BYTES,
    NOT_STORED,
    CallbackRefused,
    Receipt,
    callback_open,
    callback_verify_url,
    callbacks_store,
    replay_refused,
)

logger = logging.getLogger(__name__)

CALLBACK_PATH = "/wecom/callback"
HEALTH_PATH = "/healthz"
CLAIMS_PREFIX = "/m/rp/"

Send = Callable[[dict], Awaitable[None]]
Receive = Callable[[], Awaitable[dict]]


class TooLarge(Exception):
    pass


class CallbackIngestApp:
    """ASGI application: the callback receiver, a liveness probe, and 404 for anything else."""

    def __init__(self, *, store: Callable[..., list[Receipt]] = callbacks_store, max_batch: int = 64,
                 claims=None) -> None:
        self.writer: GroupCommitWriter = GroupCommitWriter(store, max_batch=max_batch, name="callback-writer")
        # The red-packet claims under /m/rp/ (crm.api.claim_ingest), when this server takes them too.
        self.claims = claims

    async def __call__(self, scope: dict, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
        elif scope["type"] == "http":
            if scope["path"] == CALLBACK_PATH:
                await self._callback(scope, receive, send)
            elif self.claims is not None and scope["path"].startswith(CLAIMS_PREFIX):
                await self.claims(scope, receive, send)
            elif scope["path"] == HEALTH_PATH:
                writers = {"writer": self.writer}
                if self.claims is not None:
                    writers["claim_writer"] = self.claims.writer
                checks = {name: {"ok": w.alive, "groups": w.groups, "largest_group": w.largest_group}
                          for name, w in writers.items()}
                ok = all(check["ok"] for check in checks.values())
                await _json(send, 200 if ok else 503, {"ok": ok, "checks": checks})
            else:
                await _json(send, 404, error_body("not_found", "no such path on the callback ingest server"))

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                self.writer.start()
                if self.claims is not None:
                    self.claims.start()
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                # Requests still waiting on the writer are answered before the process goes.
                await asyncio.get_running_loop().run_in_executor(None, self.writer.stop)
                if self.claims is not None:
                    await asyncio.get_running_loop().run_in_executor(None, self.claims.stop)
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def _callback(self, scope: dict, receive: Receive, send: Send) -> None:
        method = scope["method"]
        if method not in ("GET", "POST"):
            await _json(send, 405, error_body("method_not_allowed", f"{method} is not allowed"), allow=b"GET, POST")
            return
        params = dict(parse_qsl(scope["query_string"].decode("latin-1")))
        try:
            if method == "GET":
                echo = callback_verify_url(params=params)
                await _respond(send, 200, echo.encode(), b"text/plain; charset=utf-8")
                return
            body = await _read_body(receive)
            opened = callback_open(params=params, body=body)
        except TooLarge:
            await _json(send, 413, error_body("too_large", f"body over {MAX_BODY_BYTES} bytes"))
            return
        except CallbackRefused as exc:
            _log_refused(scope, exc)
            await _json(send, exc.status_code, error_body(exc.code, exc.message))
            return
        try:
            receipt: Receipt = await asyncio.wait_for(
                asyncio.wrap_future(self.writer.submit(opened)), timeout=settings.CALLBACK_INGEST_TIMEOUT_SECONDS
            )
        except Exception:
            # Not known to be stored, so not acknowledged: WeCom delivers it again. Should the writer store it
            # after all, the event is kept once (dedupe key) whatever the redelivery gets.
            logger.exception("callback not stored")
            await _json(send, NOT_STORED["status"], error_body(NOT_STORED["code"], NOT_STORED["message"]))
            return
        if receipt.replayed:
            exc = replay_refused()
            _log_refused(scope, exc)
            await _json(send, exc.status_code, error_body(exc.code, exc.message))
            return
        await _respond(send, 200, b"", b"text/plain")


async def _read_body(receive: Receive) -> bytes:
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise CallbackRefused("client went away", code="bad_request", status_code=400)
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            raise TooLarge
        chunks.append(chunk)
        if not message.get("more_body"):
            return b"".join(chunks)


def _log_refused(scope: dict, exc: CallbackRefused) -> None:
    client = scope.get("client")
    logger.warning("callback refused", extra={"reason": exc.code, "remote": client[0] if client else None})


async def _respond(send: Send, status: int, body: bytes, content_type: bytes, allow: bytes | None = None) -> None:
    headers = [(b"content-type", content_type), (b"content-length", str(len(body)).encode())]
    if allow:
        headers.append((b"allow", allow))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def _json(send: Send, status: int, payload: dict, allow: bytes | None = None) -> None:
    await _respond(send, status, json.dumps(payload).encode(), b"application/json", allow)
