"""WeChat's web OAuth (公众号网页授权) as the CRM speaks it: the authorize URL and the code exchange.

Not a WeCom cgi-bin call (no corp access_token; its own hosts), so it has its own small HTTP call here; the
unionid -> external_userid step is a WeCom call: `WeComClient.unionid_to_external_userid`.
Errors are `WeComError` with WeChat's errcode (40029 invalid code, 40163 code been used, 40125 invalid appsecret...;
-1 for transport failures). The secret never reaches a log.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from urllib.parse import urlencode

import requests

from crm.wecom.errors import TRANSPORT_ERRCODE, WeComError

logger = logging.getLogger(__name__)

EXCHANGE_PATH = "oauth2/access_token"


@dataclass(frozen=True)
class OAuthConfig:
    appid: str
    secret: str = field(repr=False)
    authorize_url: str = "https://open.weixin.qq.com/connect/oauth2/authorize"
    sns_base_url: str = "https://api.weixin.qq.com/sns"
    scope: str = "snsapi_base"
    timeout: float = 10.0

    @classmethod
    def from_settings(cls) -> OAuthConfig:
        from django.conf import settings

        return cls(
            appid=settings.WECHAT_OAUTH_APPID,
            secret=settings.WECHAT_OAUTH_SECRET,
            authorize_url=settings.WECHAT_OAUTH_AUTHORIZE_URL,
            sns_base_url=settings.WECHAT_SNS_BASE_URL.rstrip("/"),
            scope=settings.WECHAT_OAUTH_SCOPE,
            timeout=float(settings.WECOM_HTTP_TIMEOUT),
        )


def authorize_url(config: OAuthConfig, *, redirect_uri: str, state: str) -> str:
    """Where to send the browser; WeChat redirects back to redirect_uri?code=...&state=... (the parameter order
    and the #wechat_redirect fragment are what WeChat's documentation shows)."""
    query = urlencode({"appid": config.appid, "redirect_uri": redirect_uri, "response_type": "code",
                       "scope": config.scope, "state": state})
    return f"{config.authorize_url}?{query}#wechat_redirect"


def exchange_code(config: OAuthConfig, code: str, session: requests.Session | None = None) -> dict:
    """GET sns/oauth2/access_token -> {access_token, expires_in, refresh_token, openid, scope, unionid?}."""
    params = {"appid": config.appid, "secret": config.secret, "code": code, "grant_type": "authorization_code"}
    started = time.monotonic()
    errcode: int | None = None
    try:
        try:
            response = (session or requests).get(f"{config.sns_base_url}/{EXCHANGE_PATH}", params=params,
                                                 timeout=config.timeout)
        except requests.RequestException as exc:
            raise WeComError(TRANSPORT_ERRCODE, type(exc).__name__, "sns/" + EXCHANGE_PATH, retryable=True) from None
        if response.status_code != 200:
            raise WeComError(TRANSPORT_ERRCODE, f"HTTP {response.status_code}", "sns/" + EXCHANGE_PATH,
                             retryable=response.status_code >= 500)
        try:
            data = response.json()
        except ValueError:
            raise WeComError(TRANSPORT_ERRCODE, "response is not JSON", "sns/" + EXCHANGE_PATH,
                             retryable=True) from None
        if not isinstance(data, dict):
            raise WeComError(TRANSPORT_ERRCODE, "response is not a JSON object", "sns/" + EXCHANGE_PATH)
        errcode = int(data.get("errcode", 0) or 0)
        if errcode:
            raise WeComError(errcode, str(data.get("errmsg", "")), "sns/" + EXCHANGE_PATH, retryable=False)
        if not data.get("openid"):
            raise WeComError(TRANSPORT_ERRCODE, "no openid in the answer", "sns/" + EXCHANGE_PATH, retryable=False)
        return data
    except WeComError as exc:
        errcode = exc.errcode
        raise
    finally:
        logger.info("wechat oauth call", extra={"endpoint": "sns/" + EXCHANGE_PATH, "errcode": errcode,
                                                "duration_ms": round((time.monotonic() - started) * 1000, 1)})
