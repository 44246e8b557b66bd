"""The cgi-bin envelope: registry, token check, faults, frequency/concurrency limits, errcode JSON."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.csrf import csrf_exempt

from wecom_sim import corp as corp_mod
from wecom_sim import delivery, faults, limits
from wecom_sim.errcodes import errmsg
from wecom_sim.models import SimAccessToken, SimCorp


class WecomError(Exception):
    """A business error answered as HTTP 200 with a non-zero errcode."""

    def __init__(self, errcode: int, extra: str = "") -> None:
        super().__init__(errcode)
        self.errcode = errcode
        self.extra = extra


@dataclass
class Endpoint:
    path: str
    handler: Callable
    method: str  # GET | POST
    empty: dict = field(default_factory=dict)
    auth: bool = True


REGISTRY: dict[str, Endpoint] = {}


def endpoint(path: str, method: str = "POST", empty: dict | None = None, auth: bool = True):
    """Register a handler(corp, params) -> dict. `empty` holds the result keys an error still carries."""

    def register(func):
        REGISTRY[path] = Endpoint(path, func, method, empty or {}, auth)
        return func

    return register


def client_ip(request: HttpRequest) -> str:
    return request.META.get("REMOTE_ADDR", "127.0.0.1")


def error_body(code: int, ip: str, empty: dict, extra: str = "") -> dict:
    return {"errcode": code, "errmsg": errmsg(code, ip, extra), **json.loads(json.dumps(empty))}


def reply(body: dict) -> JsonResponse:
    return JsonResponse(body, json_dumps_params={"ensure_ascii": False})


def apply_fault(rule: dict | None, ip: str, empty: dict) -> HttpResponse | None:
    """Answer for an injected fault, or None to go on (slow only delays)."""
    if rule is None:
        return None
    kind = rule["kind"]
    if kind in ("slow", "timeout"):
        # timeout: sleep past any sane client timeout unless told otherwise.
        default_ms = 1500 if kind == "slow" else int(float(getattr(settings, "WECOM_HTTP_TIMEOUT", 10)) * 1000) + 2000
        time.sleep((rule.get("delay_ms") or default_ms) / 1000)
        return None if kind == "slow" else HttpResponse("", status=504)
    if kind == "5xx":
        return HttpResponse("<html><body>502 Bad Gateway</body></html>", status=502, content_type="text/html")
    if kind in ("45009", "42001", "40014", "-1"):
        return reply(error_body(int(kind), ip, empty))
    return None


def check_token(corp: SimCorp, token: str | None) -> int:
    if not token:
        return 41001
    row = SimAccessToken.objects.filter(token=token).first()
    if row is None or row.revoked or row.corp_id != corp.pk:
        return 40014
    if corp_mod.now(corp) >= row.expires_at:
        return corp.expired_token_errcode
    return 0


def parse_params(request: HttpRequest, ep: Endpoint) -> dict:
    params = {k: v for k, v in request.GET.items() if k != "access_token"}
    if ep.method == "POST":
        if request.method != "POST":
            raise WecomError(40058, "POST required")
        if request.content_type == "multipart/form-data":
            # Uploads (media/upload): the form's files go to the handler as "_files"; reading the body as JSON
            # after Django parsed the form would raise.
            params.update(request.POST.items())
            params["_files"] = request.FILES
            return params
        raw = request.body.decode("utf-8", errors="replace").strip()
        if raw:
            try:
                body = json.loads(raw)
            except ValueError:
                raise WecomError(47001)
            if not isinstance(body, dict):
                raise WecomError(47001)
            params.update(body)
    return params


def cgi_bin(request: HttpRequest, api_path: str) -> HttpResponse:
    api_path = api_path.strip("/")
    ip = client_ip(request)
    ep = REGISTRY.get(api_path)
    limits.count_call(api_path)
    delivery.notify()
    if ep is None:
        return reply({"errcode": 48001, "errmsg": errmsg(48001, ip, "api unauthorized or not found")})
    response = apply_fault(faults.pick(api_path), ip, ep.empty)
    if response is not None:
        return response
    corp = corp_mod.get_corp()
    try:
        if ep.auth:
            code = check_token(corp, request.GET.get("access_token"))
            if code:
                raise WecomError(code)
        params = parse_params(request, ep)
        if not limits.allow_ip(ip, corp.ip_rate_limit_per_minute):
            raise WecomError(45009)
        if not limits.allow(corp.corpid, api_path, corp.rate_limit_per_minute):
            raise WecomError(45009)
        with limits.concurrency_slot(corp.corpid, api_path, corp.concurrency_limit) as ok:
            if not ok:
                raise WecomError(45033)
            result = ep.handler(corp, params) or {}
    except WecomError as exc:
        return reply(error_body(exc.errcode, ip, ep.empty, exc.extra))
    return reply({"errcode": 0, "errmsg": "ok", **result})


# --- helpers for handlers ---------------------------------------------------------------------


def require(params: dict, name: str, code: int = 40063):
    value = params.get(name)
    if value in (None, "", []):
        raise WecomError(code, f"{name} missing")
    return value


def as_list(params: dict, name: str) -> list:
    value = params.get(name) or []
    if not isinstance(value, list):
        raise WecomError(47001, f"{name} must be a list")
    return value


def as_int(params: dict, name: str, default: int | None = None) -> int | None:
    value = params.get(name, default)
    if value in (None, ""):
        return default
    try:
        return int(value)
    except (TypeError, ValueError):
        raise WecomError(47001, f"{name} must be an integer")


def clamp_limit(params: dict, default: int, maximum: int) -> int:
    limit = as_int(params, "limit", default) or default
    return max(1, min(limit, maximum))


def _query_hash(query: dict) -> str:
    stable = json.dumps(query, sort_keys=True, default=str)
    return hashlib.sha1(stable.encode()).hexdigest()[:12]


def make_cursor(offset: int, query: dict) -> str:
    """Opaque, bound to its query, tamper-evident."""
    payload = f"{offset}.{_query_hash(query)}"
    mac = hmac.new(settings.SECRET_KEY.encode(), payload.encode(), hashlib.sha256).hexdigest()[:10]
    return base64.urlsafe_b64encode(f"{payload}.{mac}".encode()).decode().rstrip("=")


def read_cursor(cursor: str | None, query: dict) -> int:
    if not cursor:
        return 0
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        offset, qhash, mac = text.split(".")
    except (ValueError, UnicodeDecodeError):
        raise WecomError(40058, "invalid cursor")
    expected = hmac.new(settings.SECRET_KEY.encode(), f"{offset}.{qhash}".encode(), hashlib.sha256).hexdigest()[:10]
    if not hmac.compare_digest(mac, expected) or qhash != _query_hash(query):
        raise WecomError(40058, "invalid cursor")
    return int(offset)


def page(items: list, params: dict, query: dict, default: int, maximum: int) -> tuple[list, str]:
    """-> (this page, next_cursor or "")."""
    limit = clamp_limit(params, default, maximum)
    offset = read_cursor(params.get("cursor"), query)
    chunk = items[offset : offset + limit]
    more = offset + limit < len(items)
    return chunk, make_cursor(offset + limit, query) if more else ""


csrf_exempt_cgi_bin = csrf_exempt(cgi_bin)
