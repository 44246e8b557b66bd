"""WeChat's web OAuth (公众号网页授权) and the shopper's WeChat browser, as the simulator serves them.

Real hosts and the simulator's paths (under /wecom-sim/):
- `https://open.weixin.qq.com/connect/oauth2/authorize?appid&redirect_uri&response_type=code&scope&state
  #wechat_redirect` -> `connect/oauth2/authorize`: inside WeChat the page redirects at once (snsapi_base is silent)
  to `redirect_uri?code=CODE&state=STATE`. Who is "inside WeChat": the X-Sim-Shopper header the sim's own
  open_link sends, else the `wxsim_shopper` cookie set by `oauth/wechat_client`, else a page asks to pick a shopper.
- `https://api.weixin.qq.com/sns/oauth2/access_token?appid&secret&code&grant_type=authorization_code`
  -> `sns/oauth2/access_token`: `{access_token, expires_in, refresh_token, openid, scope, unionid}`, or
  `{errcode, errmsg}` (HTTP 200) with WeChat's codes: 41002 appid missing, 40013 invalid appid, 41004 appsecret
  missing, 40125 invalid appsecret, 40002 invalid grant_type, 41008 missing code, 40029 invalid code (unknown,
  another app's, or older than 5 minutes), 40163 code been used.
- WeCom's side of the mapping is `cgi-bin/externalcontact/unionid_to_external_userid` (see cgi/idconvert below).

A shopper's openid is per app (derived from appid + external_userid, stable across resets) and their unionid is the
open platform's: assigned on first use when the shopper was created without one, then also shown by
externalcontact/get.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import html
import json
import re
import secrets
from urllib.parse import urlencode, urlsplit

import requests
from django.conf import settings
from django.db import IntegrityError, transaction
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect, JsonResponse
from django.views.decorators.http import require_GET

from wecom_sim import faults, ids, limits
from wecom_sim.cgi.base import WecomError, apply_fault, endpoint
from wecom_sim.corp import get_corp, now
from wecom_sim.models import SimCorp, SimFriendship, SimGroupMember, SimOAuthApp, SimOAuthCode, SimShopper

SCOPES = ("snsapi_base", "snsapi_userinfo")
AUTHORIZE_PATH = "/connect/oauth2/authorize"
CLIENT_COOKIE = "wxsim_shopper"
SHOPPER_HEADER = "X-Sim-Shopper"
_STATE_RE = re.compile(r"^[A-Za-z0-9]{0,128}$")  # WeChat: state is a-zA-Z0-9, at most 128 bytes
SNS_TEXTS = {
    40002: "invalid grant_type",
    40013: "invalid appid",
    40029: "invalid code",
    40125: "invalid appsecret",
    40163: "code been used",
    41002: "appid missing",
    41004: "appsecret missing",
    41008: "missing code",
}
BROWSER_KEY = "wecomsim:wxbrowser:{eid}"  # the shopper's WeChat browser cookies, between open_link calls
BROWSER_TTL = 7 * 86400


# --- the app, openids, unionids ---------------------------------------------------------------------------


def get_app(corp: SimCorp | None = None) -> SimOAuthApp:
    """The corp's Official Account, created from settings.WECOM_SIM on first use (like the corp itself)."""
    corp = corp or get_corp()
    conf = settings.WECOM_SIM
    appid = conf.get("OAUTH_APPID") or "wx5f3c0a1d2e4b6c8e"
    app = SimOAuthApp.objects.filter(appid=appid).first()
    if app is None:
        try:
            app = SimOAuthApp.objects.create(corp=corp, appid=appid,
                                             secret=conf.get("OAUTH_SECRET") or "demo-oauth-secret")
        except IntegrityError:  # another thread made it first
            app = SimOAuthApp.objects.get(appid=appid)
    return app


def find_app(appid: str) -> SimOAuthApp | None:
    """The app with this appid; the configured one is created on demand (a reset deletes it with the corp)."""
    if not appid:
        return None
    if appid == (settings.WECOM_SIM.get("OAUTH_APPID") or "wx5f3c0a1d2e4b6c8e"):
        return get_app()
    return SimOAuthApp.objects.filter(appid=appid).first()


def openid_for(shopper: SimShopper, appid: str) -> str:
    """The shopper's openid under this app: stable, distinct per app (WeChat's openids are per app)."""
    return "o" + hashlib.sha1(f"openid:{appid}:{shopper.external_userid}".encode()).hexdigest()[:27]


def unionid_for(shopper: SimShopper) -> str:
    """The shopper's unionid; one is assigned (and kept) when the shopper was created without."""
    if shopper.unionid:
        return shopper.unionid
    unionid = "o" + hashlib.sha1(f"unionid:{shopper.external_userid}".encode()).hexdigest()[:27]
    SimShopper.objects.filter(pk=shopper.pk, unionid="").update(unionid=unionid)
    shopper.refresh_from_db(fields=["unionid"])
    return shopper.unionid


def is_contact(shopper: SimShopper) -> bool:
    """The corp knows this WeChat user: a live follow relation, or membership of one of its customer groups."""
    if SimFriendship.objects.filter(shopper=shopper, member_deleted=False, confirmed=True).exists():
        return True
    return SimGroupMember.objects.filter(userid=shopper.external_userid, type=2).exists()


# --- authorize --------------------------------------------------------------------------------------------


def _page(title: str, body: str, status: int = 200) -> HttpResponse:
    return HttpResponse(
        f'<!doctype html><html lang="zh-hans"><head><meta charset="utf-8">'
        f'<meta name="viewport" content="width=device-width, initial-scale=1"><title>{html.escape(title)}</title>'
        f"</head><body><main>{body}</main></body></html>",
        status=status,
    )


def _oops(errcode: int | None, text: str) -> HttpResponse:
    """WeChat shows authorize errors as a page inside the browser, not as JSON."""
    code = f'<p class="errcode">{errcode}</p>' if errcode else ""
    text = html.escape(text)
    return _page("微信网页授权", f'<h1>Oops! Something went wrong:(</h1>{code}<p class="errmsg">{text}</p>', status=400)


def _current_shopper(request: HttpRequest, corp: SimCorp) -> SimShopper | None:
    header, picked, cookie = (request.headers.get(SHOPPER_HEADER), request.GET.get("sim_shopper"),
                              request.COOKIES.get(CLIENT_COOKIE))
    candidates = (header, picked, cookie)
    for eid in candidates:
        if eid:
            shopper = SimShopper.objects.filter(corp=corp, external_userid=eid).first()
            if shopper is not None:
                return shopper
    return None


def _picker(request: HttpRequest, corp: SimCorp) -> HttpResponse:
    """Outside the WeChat client: pick which simulated WeChat user is opening the page."""
    query = (request.GET.get("q") or "").strip()
    shoppers = SimShopper.objects.filter(corp=corp).order_by("-id")
    if query:
        shoppers = shoppers.filter(name__icontains=query) | shoppers.filter(external_userid__startswith=query)
    params = {k: v for k, v in request.GET.items() if k not in ("sim_shopper", "q")}
    rows = "".join(
        f'<li><a class="shopper" data-eid="{html.escape(s.external_userid)}" '
        f'href="?{html.escape(urlencode({**params, "sim_shopper": s.external_userid}))}">'
        f"{html.escape(s.name)} <small>{html.escape(s.external_userid)}</small></a></li>"
        for s in shoppers[:50]
    )
    hidden = "".join(f'<input type="hidden" name="{html.escape(k)}" value="{html.escape(v)}">'
                     for k, v in params.items())
    body = (
        "<h1>请在微信客户端打开链接</h1><p>WeCom simulator: choose the WeChat user opening this page.</p>"
        f'<form method="get">{hidden}<input name="q" value="{html.escape(query)}" placeholder="name or wm...">'
        f'<button type="submit">Search</button></form><ul class="shoppers">{rows or "<li>no shoppers</li>"}</ul>'
    )
    return _page("微信网页授权", body)


@require_GET
def authorize(request: HttpRequest) -> HttpResponse:
    appid = request.GET.get("appid", "")
    redirect_uri = request.GET.get("redirect_uri", "")
    scope = request.GET.get("scope", "")
    state = request.GET.get("state", "")
    if not appid:
        return _oops(10012, "appid 参数错误")
    app = find_app(appid)
    if app is None:
        return _oops(None, "appid 参数错误 (unknown appid)")
    if not redirect_uri:
        return _oops(10011, "redirect_uri 参数错误")
    target = urlsplit(redirect_uri)
    if target.scheme not in ("http", "https") or not target.hostname:
        return _oops(10011, "redirect_uri 参数错误")
    if app.redirect_domain and target.hostname != app.redirect_domain:
        return _oops(10003, "redirect_uri域名与后台配置不一致")
    if request.GET.get("response_type") != "code":
        return _oops(None, "response_type 参数错误")
    if not scope:
        return _oops(10010, "scope 参数错误")
    if scope not in SCOPES:
        return _oops(10005, "此公众号并没有这些scope的权限")
    if not _STATE_RE.match(state):
        return _oops(None, "state 参数错误 (a-zA-Z0-9, at most 128 bytes)")
    corp = app.corp
    shopper = _current_shopper(request, corp)
    if shopper is None:
        return _picker(request, corp)
    moment = now(corp)
    code = SimOAuthCode.objects.create(
        app=app, shopper=shopper, code=ids.random_token(32), scope=scope, redirect_uri=redirect_uri, state=state,
        created_at=moment, expires_at=moment + dt.timedelta(seconds=app.code_ttl_seconds),
    )
    sep = "&" if target.query else "?"
    response = HttpResponseRedirect(f"{redirect_uri}{sep}{urlencode({'code': code.code, 'state': state})}")
    if request.GET.get("sim_shopper"):  # picked on the page: this browser is now that WeChat user
        response.set_cookie(CLIENT_COOKIE, shopper.external_userid, path="/", samesite="Lax", httponly=True)
    return response


@require_GET
def wechat_client(request: HttpRequest) -> HttpResponse:
    """Sim only: make this browser the WeChat client of `shopper` (a cookie), then open `next`.

    Browser tests and demos call `/wecom-sim/oauth/wechat_client?shopper=<eid>&next=<url>`; `shopper=` empty logs out.
    """
    eid = request.GET.get("shopper", "")
    next_url = request.GET.get("next") or "/"
    if not next_url.startswith(("/", "http://", "https://")):
        return _oops(None, "next 参数错误")
    if eid and not SimShopper.objects.filter(corp=get_corp(), external_userid=eid).exists():
        return _oops(None, f"unknown shopper {eid}")
    response = HttpResponseRedirect(next_url)
    if eid:
        response.set_cookie(CLIENT_COOKIE, eid, path="/", samesite="Lax", httponly=True)
    else:
        response.delete_cookie(CLIENT_COOKIE, path="/")
    return response


# --- sns/oauth2/access_token ------------------------------------------------------------------------------


def _sns_error(errcode: int) -> JsonResponse:
    rid = f"{secrets.token_hex(4)}-{secrets.token_hex(4)}-{secrets.token_hex(4)}"
    return JsonResponse({"errcode": errcode, "errmsg": f"{SNS_TEXTS.get(errcode, 'error')}, rid: {rid}"})


@require_GET
def sns_access_token(request: HttpRequest) -> HttpResponse:
    path = "sns/oauth2/access_token"
    limits.count_call(path)
    response = apply_fault(faults.pick(path), request.META.get("REMOTE_ADDR", ""), {})
    if response is not None:
        return response
    params = request.GET
    if not params.get("appid"):
        return _sns_error(41002)
    app = find_app(params["appid"])
    if app is None:
        return _sns_error(40013)
    if not params.get("secret"):
        return _sns_error(41004)
    if not secrets.compare_digest(params["secret"], app.secret):
        return _sns_error(40125)
    if params.get("grant_type") != "authorization_code":
        return _sns_error(40002)
    if not params.get("code"):
        return _sns_error(41008)
    moment = now(app.corp)
    row = SimOAuthCode.objects.filter(app=app, code=params["code"]).select_related("shopper").first()
    if row is None or row.expires_at <= moment:
        return _sns_error(40029)
    with transaction.atomic():
        # Single use, also under two concurrent exchanges: only one conditional UPDATE takes the code.
        taken = SimOAuthCode.objects.filter(pk=row.pk, used_at__isnull=True).update(used_at=moment)
    if not taken:
        return _sns_error(40163)
    shopper = row.shopper
    return JsonResponse({
        "access_token": ids.random_token(88, ids._ALNUM + "-_"),
        "expires_in": 7200,
        "refresh_token": ids.random_token(88, ids._ALNUM + "-_"),
        "openid": openid_for(shopper, app.appid),
        "scope": row.scope,
        "unionid": unionid_for(shopper),
    })


# --- WeCom: unionid -> external_userid --------------------------------------------------------------------


# A self-built app calls POST cgi-bin/externalcontact/unionid_to_external_userid {unionid, openid} ->
# {external_userid} (the corp's own wm... id, as WxJava's WxCpExternalContactService.unionidToExternalUserid and
# doc 93274: the unionid's open platform account must be the corp's own subject, openid and unionid from the same
# Official Account, and the customer followed by a member in the app's visible range). The third-party variants
# (idconvert/unionid_to_external_userid with subject_type and pending_id, service/..._3rd) are not simulated.
@endpoint("externalcontact/unionid_to_external_userid", empty={"external_userid": ""})
def unionid_to_external_userid(corp: SimCorp, params: dict) -> dict:
    unionid = str(params.get("unionid") or "")
    openid = str(params.get("openid") or "")
    if not unionid or not openid:
        raise WecomError(40063, "unionid and openid are required")
    shopper = SimShopper.objects.filter(corp=corp, unionid=unionid).first()
    if shopper is None:
        raise WecomError(84061)
    appids = SimOAuthApp.objects.filter(corp=corp).values_list("appid", flat=True)
    if openid not in {openid_for(shopper, appid) for appid in appids}:
        raise WecomError(40058, "openid and unionid do not match")
    if not is_contact(shopper):
        raise WecomError(84061)
    return {"external_userid": shopper.external_userid}


# --- the shopper's WeChat browser (open_link) -------------------------------------------------------------


def _load_jar(eid: str) -> requests.cookies.RequestsCookieJar:
    jar = requests.cookies.RequestsCookieJar()
    raw = faults.client().get(BROWSER_KEY.format(eid=eid))
    for c in json.loads(raw) if raw else []:
        jar.set(c["name"], c["value"], domain=c["domain"], path=c["path"])
    return jar


def _save_jar(eid: str, jar) -> None:
    cookies = [{"name": c.name, "value": c.value, "domain": c.domain, "path": c.path} for c in jar]
    faults.client().set(BROWSER_KEY.format(eid=eid), json.dumps(cookies), ex=BROWSER_TTL)


def browse(eid: str, url: str, method: str = "GET", data: dict | None = None, timeout: float = 15) -> requests.Response:
    """The shopper's WeChat browser opens `url`: it keeps its cookies between calls (so a page that identified the
    shopper through OAuth remembers them) and follows redirects, through authorize too (it is inside WeChat).

    A POST is a tap on the page's button: when the page first had to send the shopper through OAuth (the POST came
    back as a redirect), the browser lands on the page and taps again, with the CSRF token the page set."""
    headers = {"User-Agent": "Mozilla/5.0 (iPhone) MicroMessenger/8.0.50 wxwork-sim", SHOPPER_HEADER: eid}
    with requests.Session() as session:
        session.cookies = _load_jar(eid)
        try:
            if method.upper() != "POST":
                response = session.get(url, params=data or None, headers=headers, timeout=timeout)
            else:
                response = _post(session, url, data or {}, headers, timeout)
        finally:
            _save_jar(eid, session.cookies)
    return response


def _post(session: requests.Session, url: str, data: dict, headers: dict, timeout: float) -> requests.Response:
    def tap(target: str) -> requests.Response:
        token = session.cookies.get("csrftoken")
        extra = {"X-CSRFToken": token, "Referer": target} if token else {}
        return session.post(target, data=data, headers={**headers, **extra}, timeout=timeout)

    response = tap(url)
    if any(AUTHORIZE_PATH in r.url for r in response.history):  # sent through OAuth first: now on the page
        response = tap(response.url)
    return response


def urlpatterns():
    from django.urls import path

    return [
        path("connect/oauth2/authorize", authorize, name="oauth-authorize"),
        path("sns/oauth2/access_token", sns_access_token, name="oauth-access-token"),
        path("oauth/wechat_client", wechat_client, name="oauth-wechat-client"),
    ]
