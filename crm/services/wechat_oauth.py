"""Who is opening a customer page: WeChat's web OAuth, the identity kept in the Django session per purpose.

The flow (docs/campaign-engine.md section 6):
1. A page reached without an identity calls `oauth_start(request, purpose=..., next_path=...)` and redirects to
   the authorize URL it returns. The `state` is a random nonce plus its HMAC (WeChat allows only a-zA-Z0-9, at most
   128 bytes, so no JSON in it); the nonce's record in Redis holds the page to return to and the purpose, is
   single-use and expires after WECHAT_OAUTH_STATE_TTL_SECONDS, and is bound to this browser's session.
2. WeChat redirects to `/m/oauth/callback/?code&state`: `oauth_callback` takes the nonce (GET+DEL in one
   MULTI: a replayed callback finds nothing), exchanges the code (sns/oauth2/access_token: openid, unionid), maps
   the unionid to the corp's external_userid (WeCom unionid_to_external_userid) and that to a Contact, stores the
   identity under `session["wx_identity"][purpose]` (a new session key: no fixation) and returns the page to go
   back to.
3. The page then reads `session_contact(request, purpose)`.

Every refusal is an ApplicationError with a 4xx status and a customer-facing message (not a contact, a stale or
reused code, a forged or replayed state); WeChat or WeCom being down is a 503, never a 500.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import re
import secrets
import time

import redis
from django.conf import settings
from django.http import HttpRequest
from django.urls import reverse
from django.utils.translation import gettext as _

from crm import redisconn
from crm.errors import ApplicationError
from crm.models import Contact
from crm.services.customer_links import absolute_url
from crm.wecom import oauth as wechat
from crm.wecom.client import get_client
from crm.wecom.errors import TRANSPORT_ERRCODE, WeComError

logger = logging.getLogger(__name__)

PURPOSES = ("redpacket", "draw", "card")
SESSION_KEY = "wx_identity"
BROWSER_KEY = "wx_oauth_browser"  # a random value in the session the state is bound to
STATE_KEY = "crm:oauth:state:{nonce}"
_STATE_RE = re.compile(r"^([0-9a-f]{32})([0-9a-f]{24})$")
_NEXT_RE = re.compile(r"^/m/[A-Za-z0-9/_\-.:]*(\?[A-Za-z0-9=&_\-.%]*)?$")
# WeChat's codes for a code it will not exchange: 40029 invalid (unknown, expired, another app's), 40163 used.
STALE_CODE = {40029, 42003}
USED_CODE = {40163}
# WeCom's answers for a WeChat user the corp has no relation with.
NOT_CONTACT = {84061, 40096, 40003, 40058, 845003}

_redis: redis.Redis | None = None


def _store() -> redis.Redis:
    global _redis
    if _redis is None:
        _redis = redisconn.client(settings.REDIS_URL, socket_timeout=5, socket_connect_timeout=5)
    return _redis


def _mac(nonce: str) -> str:
    return hmac.new(settings.SECRET_KEY.encode(), f"wx-oauth-state:{nonce}".encode(), hashlib.sha256).hexdigest()[:24]


def _binding(request: HttpRequest) -> str:
    value = request.session.get(BROWSER_KEY)
    if not value:
        value = request.session[BROWSER_KEY] = secrets.token_hex(16)
    return value


def callback_url() -> str:
    return absolute_url(reverse("wechat-oauth-callback"))


def safe_next(path: str) -> str:
    """Only our own customer pages: a state never carries the visitor off to another site."""
    if not path or not _NEXT_RE.match(path) or "//" in path:
        raise ApplicationError(_("This link is not valid."), code="bad_next", field="next", status_code=400)
    return path


def oauth_start(request: HttpRequest, *, purpose: str, next_path: str) -> str:
    """The WeChat authorize URL for this visitor; coming back, the callback returns them to next_path."""
    if purpose not in PURPOSES:
        raise ValueError(f"unknown purpose {purpose!r}")
    nonce = secrets.token_hex(16)
    record = {"next": safe_next(next_path), "purpose": purpose, "browser": _binding(request)}
    _store().set(STATE_KEY.format(nonce=nonce), json.dumps(record), ex=settings.WECHAT_OAUTH_STATE_TTL_SECONDS,
                 nx=True)
    return wechat.authorize_url(wechat.OAuthConfig.from_settings(), redirect_uri=callback_url(),
                                state=nonce + _mac(nonce))


def _refuse(message: str, code: str, status: int = 400, next_path: str = "") -> ApplicationError:
    """A refusal; `details.next` (when known) is the page a fresh sign-in can start from."""
    return ApplicationError(message, code=code, field="state" if code.startswith("state") else "code",
                            status_code=status, details={"next": next_path} if next_path else None)


def _take_state(request: HttpRequest, state: str) -> dict:
    match = _STATE_RE.match(state or "")
    if not match or not hmac.compare_digest(match.group(2), _mac(match.group(1))):
        raise _refuse(_("This sign-in link is not valid. Please open the link from your WeChat message again."),
                      "state_invalid")
    key = STATE_KEY.format(nonce=match.group(1))
    pipe = _store().pipeline(transaction=True)  # GET + DEL in one MULTI: of two racing callbacks, one gets it
    pipe.get(key)
    pipe.delete(key)
    raw, _deleted = pipe.execute()
    if raw is None:
        raise _refuse(_("This sign-in link has already been used or has expired. Please open the link from your "
                        "WeChat message again."), "state_used")
    record = json.loads(raw)
    if not hmac.compare_digest(str(record.get("browser", "")), str(request.session.get(BROWSER_KEY, ""))):
        # Someone else's callback URL opened in this browser (login CSRF): not this visitor's sign-in.
        raise _refuse(_("This sign-in link was started in another browser. Please open the link from your WeChat "
                        "message again."), "state_foreign")
    return record


def _external_userid(unionid: str, openid: str) -> str:
    try:
        return str(get_client().unionid_to_external_userid(unionid, openid).get("external_userid") or "")
    except WeComError as exc:
        if exc.errcode in NOT_CONTACT:
            return ""
        raise


def oauth_callback(request: HttpRequest, *, code: str, state: str) -> str:
    """Finish the sign-in; returns the page to go back to. ApplicationError (4xx, or 503 when WeChat or WeCom is
    down) otherwise: nothing is stored then."""
    record = _take_state(request, state)
    if not code:  # snsapi_userinfo refused by the user (snsapi_base never asks)
        raise _refuse(_("WeChat did not confirm who you are. Please open the link from your WeChat message again."),
                      "code_missing", next_path=record["next"])
    try:
        answer = wechat.exchange_code(wechat.OAuthConfig.from_settings(), code)
        unionid, openid = str(answer.get("unionid") or ""), str(answer["openid"])
        external_userid = _external_userid(unionid, openid) if unionid else ""
    except WeComError as exc:
        if exc.errcode in STALE_CODE:
            raise _refuse(_("This sign-in has expired. Please open the link from your WeChat message again."),
                          "code_invalid", next_path=record["next"]) from None
        if exc.errcode in USED_CODE:
            raise _refuse(_("This sign-in link has already been used. Please open the link from your WeChat message "
                            "again."), "code_used", next_path=record["next"]) from None
        logger.warning("wechat oauth failed", extra={"errcode": exc.errcode, "endpoint": exc.path})
        status = 503 if exc.errcode == TRANSPORT_ERRCODE or exc.retryable else 502
        raise ApplicationError(_("WeChat sign-in is not available right now. Please try again in a moment."),
                               code="oauth_unavailable", status_code=status,
                               details={"next": record["next"]}) from None
    contact = Contact.objects.filter(external_userid=external_userid).only("id").first() if external_userid else None
    if contact is None:
        raise ApplicationError(
            _("We could not find you among our customers. Add one of our staff on WeCom first, then open the link "
              "again."), code="not_contact", status_code=403)
    remember(request, record["purpose"], contact.id, openid=openid)
    return record["next"]


def remember(request: HttpRequest, purpose: str, contact_id: int, *, openid: str = "") -> None:
    """Keep the identity for this purpose in the session (under a new session key)."""
    identities = dict(request.session.get(SESSION_KEY) or {})
    identities[purpose] = {"contact_id": contact_id, "openid": openid, "at": int(time.time())}
    request.session.cycle_key()
    request.session[SESSION_KEY] = identities


def session_contact(request: HttpRequest, purpose: str) -> int | None:
    """The contact id OAuth identified for this purpose in this session, unless older than the max age."""
    entry = (request.session.get(SESSION_KEY) or {}).get(purpose) if hasattr(request, "session") else None
    if not entry:
        return None
    # At least a minute: the page the callback redirects to must still find the identity it just stored.
    if time.time() - float(entry.get("at", 0)) > max(60, int(settings.WECHAT_OAUTH_IDENTITY_MAX_AGE)):
        return None
    return int(entry["contact_id"])


def _rate_key(ip: str) -> str:
    return f"crm:oauth:refused:{ip}:{int(time.time() // 60)}"


def callback_allowed(ip: str) -> bool:
    """False once this client IP had more than WECHAT_OAUTH_CALLBACK_RATE_PER_MINUTE refused callbacks in the current
    minute. Only refusals count: many customers behind one carrier NAT or proxy open their links at once, and each
    success costs WeChat one exchange anyway; a flood of forged or replayed callbacks is what this stops."""
    limit = int(settings.WECHAT_OAUTH_CALLBACK_RATE_PER_MINUTE)
    return limit <= 0 or int(_store().get(_rate_key(ip)) or 0) < limit


def callback_refused(ip: str) -> None:
    """Count a refused callback against its client IP (a fixed one-minute window in Redis)."""
    key = _rate_key(ip)
    pipe = _store().pipeline()
    pipe.incr(key)
    pipe.expire(key, 120)
    pipe.execute()
