"""Rotating card QR tokens and their SVG rendering.

A token is `L1.<card number>.<issued unix second>.<nonce>.<mac>`, the mac an HMAC (keyed by SECRET_KEY) over the
card number, the issue second and a random per-mint nonce (so two tokens minted in one second differ, and each is
used once: `qr_token_consume`). It is valid for CARD_QR_TTL_SECONDS after issue, so a screenshot is useless a
minute later. Digits, upper-case base32 and dots only: the QR uses alphanumeric mode (smaller, scans faster).
"""

from __future__ import annotations

import base64
import re
import secrets
import time
from dataclasses import dataclass

import segno
from django.conf import settings
from django.core.cache import cache
from django.utils.crypto import constant_time_compare, salted_hmac

from crm.errors import ApplicationError
from loyalty.till_cache import redis_client

_VERSION = "L1"
_SALT = "loyalty.card-qr"
# A token "issued" slightly in the future is tolerated (clock skew between web processes), no more.
_MAX_CLOCK_SKEW_SECONDS = 5
FIELD = "qr_token"
_NONCE_CHARS = 6  # base32: 30 random bits per mint, unique enough among one card's tokens of one second
_NONCE_RE = re.compile(r"^[A-Z2-7]{%d}$" % _NONCE_CHARS)


@dataclass(frozen=True)
class QrToken:
    token: str
    card_number: str
    issued_at: int  # unix seconds
    nonce: str = ""

    def expires_in(self, now: float | None = None) -> int:
        now = time.time() if now is None else now
        return max(0, int(self.issued_at + ttl_seconds() - now))


def ttl_seconds() -> int:
    return int(settings.CARD_QR_TTL_SECONDS)


def _mac(card_number: str, issued_at: int, nonce: str) -> str:
    digest = salted_hmac(_SALT, f"{card_number}:{issued_at}:{nonce}", algorithm="sha256").digest()
    return base64.b32encode(digest[:15]).decode()  # 120 bits, 24 chars, no padding


def qr_token_mint(card_number: str, now: float | None = None) -> QrToken:
    issued_at = int(time.time() if now is None else now)
    nonce = base64.b32encode(secrets.token_bytes(5)).decode()[:_NONCE_CHARS]
    token = f"{_VERSION}.{card_number}.{issued_at}.{nonce}.{_mac(card_number, issued_at, nonce)}"
    return QrToken(token=token, card_number=card_number, issued_at=issued_at, nonce=nonce)


def qr_token_parse(token: str) -> QrToken:
    """Check the signature (not the age). Malformed -> 400, forged -> 403, both naming qr_token."""
    parts = token.strip().split(".") if isinstance(token, str) else []
    if (
        len(parts) != 5
        or parts[0] != _VERSION
        or not parts[1].isdigit()
        or not parts[2].isdigit()
        or not _NONCE_RE.match(parts[3])
    ):
        raise ApplicationError("The QR token is not a loyalty card code.", code="qr_malformed", field=FIELD)
    card_number, issued_at, nonce, mac = parts[1], int(parts[2]), parts[3], parts[4]
    if not constant_time_compare(mac, _mac(card_number, issued_at, nonce)):
        raise ApplicationError("The QR token is not genuine.", code="qr_forged", field=FIELD, status_code=403)
    return QrToken(token=token.strip(), card_number=card_number, issued_at=issued_at, nonce=nonce)


def qr_token_check_fresh(parsed: QrToken, now: float | None = None) -> None:
    """A genuine token older than the TTL (e.g. a screenshot) -> 400 qr_expired."""
    now = time.time() if now is None else now
    if parsed.issued_at > now + _MAX_CLOCK_SKEW_SECONDS:
        raise ApplicationError("The QR token is not valid yet.", code="qr_not_yet_valid", field=FIELD)
    if now - parsed.issued_at > ttl_seconds():
        raise ApplicationError(
            "The QR code has expired; ask the customer to show the card again.", code="qr_expired", field=FIELD
        )


def _nonce_key(parsed: QrToken) -> str:
    return f"loyalty:qr-nonce:{parsed.card_number}:{parsed.issued_at}:{parsed.nonce}"


def qr_token_consume(parsed: QrToken, binding: str) -> None:
    """Use a fresh token once: bind its nonce to `binding` (the store and receipt it pays for) in Redis.

    SET NX with a TTL a little past the token's validity (after that the age check refuses it anyway). The
    same binding again (a till retrying the same receipt, e.g. after a timeout) passes, so the retry reaches the
    receipt's idempotent replay; any other use -> 409 token_reused."""
    key = _nonce_key(parsed)
    timeout = ttl_seconds() + _MAX_CLOCK_SKEW_SECONDS + 5
    client = redis_client()
    if client is None:  # not a Redis cache (a development setting): Django's add, same rule
        if cache.add(key, binding, timeout=timeout) or cache.get(key) == binding:
            return
    else:
        # One SET NX on the cache's own client (Django's cache.add builds a client object per call), the
        # binding stored as plain text; read back only when it was taken.
        raw_key = cache.make_key(key)
        if client.set(raw_key, binding, nx=True, ex=timeout) or client.get(raw_key) == binding.encode():
            return
    raise ApplicationError(
        "This QR code was already used; ask the customer to show the card again.",
        code="token_reused",
        field=FIELD,
        status_code=409,
    )


def qr_token_verify(token: str, now: float | None = None) -> QrToken:
    parsed = qr_token_parse(token)
    qr_token_check_fresh(parsed, now)
    return parsed


def qr_svg(data: str) -> str:
    """An inline <svg> QR code for `data` (no external assets)."""
    return segno.make(data, error="m", micro=False).svg_inline(scale=6, border=4, omitsize=True, dark="#111")
