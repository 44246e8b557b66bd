"""The mini-game gate: the campaign page's game proves a real, server-issued session played by this customer.

game_start gives the page a session: a nonce and a per-session key (an HMAC of the nonce, pool and contact under
the site's secret, so the server keeps nothing secret per session and can recompute it). The page posts
{nonce, score, sig} where sig = HMAC-SHA256(key, "<nonce>:<score>") in hex. game_finish accepts it only when the
signature verifies, the session is this pool's and this contact's, it has not finished before, it took at least
GAME_MIN_SECONDS (measured by the server from started_at) and no longer than GAME_SESSION_SECONDS, and the score
is within bounds a human can reach in that time. One finished session per (pool, contact): a DB partial UNIQUE.

Honestly: the key reaches the browser, so the game can be scripted. The gate proves that the customer's own page
ran a session the server issued, for as long as a game lasts; it does not prove skill.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone
from django.utils.translation import gettext

from crm.errors import ApplicationError, NotFound
from crm.models import GameSession, RedPacketPool

GAME_SECONDS = 10  # how long the page's game runs
GAME_MIN_SECONDS = 8  # a result sooner than this after the start was not played
GAME_SESSION_SECONDS = 15 * 60  # a session not finished within this is void
GAME_MAX_SCORE = 60  # the page drops at most this many packets in GAME_SECONDS
GAME_MIN_SCORE = 1


def _forged(reason: str, field: str = "sig") -> ApplicationError:
    return ApplicationError(gettext("This game result is not valid. Please play again."), code="forged_game_result",
                            field=field, status_code=403, details={"reason": reason})  # fmt: skip


def session_key(session: GameSession) -> str:
    msg = f"game:{session.pool_id}:{session.contact_id}:{session.nonce}".encode()
    return hmac.new(settings.SECRET_KEY.encode(), msg, hashlib.sha256).hexdigest()


def result_signature(key: str, nonce: str, score: int) -> str:
    """What the page computes (crm/static/crm/game.js): HMAC-SHA256(key, "<nonce>:<score>"), hex."""
    return hmac.new(key.encode(), f"{nonce}:{score}".encode(), hashlib.sha256).hexdigest()


def game_played(pool_id: int, contact_id: int) -> bool:
    return GameSession.objects.filter(pool_id=pool_id, contact_id=contact_id, finished_at__isnull=False).exists()


def game_start(pool_id: int, contact_id: int) -> dict:
    """A new session for this customer's game (an unfinished earlier one is void: its result would be forged)."""
    pool = RedPacketPool.objects.filter(id=pool_id).first()
    if pool is None or not pool.gate_game:
        raise NotFound(gettext("This red packet has no game."), field="pool")
    if game_played(pool_id, contact_id):
        raise ApplicationError(gettext("You have already played this game."), code="game_replayed", field="nonce",
                               status_code=409)  # fmt: skip
    with transaction.atomic():
        GameSession.objects.filter(pool_id=pool_id, contact_id=contact_id, finished_at__isnull=True).delete()
        session = GameSession.objects.create(pool_id=pool_id, contact_id=contact_id, nonce=secrets.token_hex(16),
                                             started_at=timezone.now())  # fmt: skip
    return {"nonce": session.nonce, "key": session_key(session), "seconds": GAME_SECONDS,
            "max_score": GAME_MAX_SCORE, "started_at": session.started_at.isoformat()}  # fmt: skip


def game_finish(*, pool_id: int, contact_id: int, nonce, score, sig) -> GameSession:
    """Accept a signed result once; a 403 forged_game_result or 409 game_replayed otherwise (nothing unlocks)."""
    if not isinstance(nonce, str) or not nonce:
        raise _forged("no_nonce", "nonce")
    session = GameSession.objects.filter(nonce=nonce[:32]).first()
    if session is None:
        raise _forged("unknown_session", "nonce")
    if session.pool_id != pool_id or session.contact_id != contact_id:
        raise _forged("wrong_contact", "nonce")
    if session.finished_at is not None or game_played(pool_id, contact_id):
        raise ApplicationError(gettext("You have already played this game."), code="game_replayed", field="nonce",
                               status_code=409)  # fmt: skip
    if not isinstance(score, int) or isinstance(score, bool):
        raise _forged("bad_score", "score")
    expected = result_signature(session_key(session), nonce, score)
    if not isinstance(sig, str) or not hmac.compare_digest(expected, sig):
        raise _forged("bad_signature", "sig")
    now = timezone.now()
    elapsed = (now - session.started_at).total_seconds()
    if elapsed < GAME_MIN_SECONDS:
        raise _forged("too_fast", "score")
    if elapsed > GAME_SESSION_SECONDS:
        raise _forged("session_expired", "nonce")
    if not GAME_MIN_SCORE <= score <= GAME_MAX_SCORE:
        raise _forged("score_out_of_bounds", "score")
    try:
        with transaction.atomic():
            # Conditional: of two concurrent posts of the same result, one finishes the session.
            done = GameSession.objects.filter(id=session.id, finished_at__isnull=True).update(
                finished_at=now, score=score
            )
    except IntegrityError:  # another session of theirs finished meanwhile (the partial UNIQUE)
        done = 0
    if not done:
        raise ApplicationError(gettext("You have already played this game."), code="game_replayed", field="nonce",
                               status_code=409)  # fmt: skip
    session.finished_at, session.score = now, score
    return session
