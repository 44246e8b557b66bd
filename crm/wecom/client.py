"""The WeCom server API client: the only code in the CRM that speaks WeCom.

- The access token is cached in Redis (shared by every process) and fetched under a Redis lock, so fifty
  workers starting together make one gettoken call; on 40014/42001 it is dropped, refreshed and the call
  repeated (at once the first time, then with backoff within the retry budget).
- -1, 6000, 45009, 45033, HTTP 5xx, timeouts and connection errors are retried with exponential backoff and
  full jitter, a bounded number of times; every other errcode is raised at once as `WeComError`.
- Every call is logged with endpoint, errcode, duration_ms and attempt; never the token or the secret.
"""

from __future__ import annotations

import json
import logging
import random
import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import redis
import requests
from requests.adapters import HTTPAdapter
from urllib3.exceptions import NameResolutionError, NewConnectionError

from crm.logconfig import redact
from crm.wecom.errors import BACKOFF_ERRCODES, NOT_IDEMPOTENT, TOKEN_ERRCODES, TRANSPORT_ERRCODE, WeComError
from crm.wecom.ratelimit import RateLimiter

logger = logging.getLogger(__name__)

TOKEN_KEY = "crm:wecom:token:{corp_id}"
TOKEN_LOCK_KEY = "crm:wecom:token-lock:{corp_id}"

# Delete the cached token only if it is still the one that failed (another worker may have refreshed it).
_COMPARE_AND_DELETE = """
if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end
return 0
"""


@dataclass(frozen=True)
class ClientConfig:
    """Everything a client is built from; `get_client()` rebuilds when any of it changes."""

    base_url: str
    corp_id: str
    corp_secret: str = field(repr=False)  # never in logs or tracebacks
    timeout: float = 10.0
    # add_msg_template with 10,000 external_userids: WeCom (and the simulator under load) may take many seconds,
    # and a read timeout there is ambiguous (the task may exist), costing the send's whole grace before the lookup
    # adopts it. Kept well under MASS_SEND_GRACE_SECONDS with the backoff of the client's retries.
    mass_send_timeout: float = 60.0
    max_retries: int = 4
    redis_url: str = "redis://127.0.0.1:6379/0"
    retry_base_delay: float = 0.2
    retry_max_delay: float = 10.0
    agent_id: int | None = None
    rate_per_minute: int = 0  # calls per API per minute for the whole corp, shared through Redis; 0 = unlimited

    @classmethod
    def from_settings(cls) -> ClientConfig:
        from django.conf import settings

        return cls(
            base_url=settings.WECOM_API_BASE_URL.rstrip("/"),
            corp_id=settings.WECOM_CORP_ID,
            corp_secret=settings.WECOM_CORP_SECRET,
            timeout=float(settings.WECOM_HTTP_TIMEOUT),
            mass_send_timeout=float(getattr(settings, "WECOM_MASS_SEND_TIMEOUT", 60.0)),
            max_retries=int(settings.WECOM_MAX_RETRIES),
            redis_url=settings.REDIS_URL,
            retry_base_delay=settings.WECOM_RETRY_BASE_DELAY,
            retry_max_delay=settings.WECOM_RETRY_MAX_DELAY,
            agent_id=settings.WECOM_AGENT_ID,
            rate_per_minute=int(getattr(settings, "WECOM_RATE_PER_MINUTE", 0) or 0),
        )


def _never_sent(exc: requests.RequestException) -> bool:
    """A connection that was never made (refused, unresolvable, connect timeout): WeCom saw nothing."""
    if isinstance(exc, requests.ConnectTimeout):
        return True
    reason = exc.args[0] if exc.args else None
    reason = getattr(reason, "reason", reason)  # urllib3's MaxRetryError wraps the cause
    return isinstance(reason, NewConnectionError | NameResolutionError)


def _ttl(expires_in: int) -> int:
    """Refresh before WeCom expires the token: a margin of a fifth of its lifetime, at most 5 minutes."""
    return max(1, expires_in - min(300, expires_in // 5))


def _compact(body: dict[str, Any]) -> dict[str, Any]:
    """Drop keyword arguments left at None, so optional WeCom fields are simply absent."""
    return {k: v for k, v in body.items() if v is not None}


class WeComClient:
    """A WeCom API client for one corp app (corp id + secret)."""

    def __init__(self, config: ClientConfig, redis_client: redis.Redis | None = None) -> None:
        self.config = config
        self.redis = redis_client or redis.Redis.from_url(
            config.redis_url, socket_timeout=5, socket_connect_timeout=5, health_check_interval=30
        )
        self.session = requests.Session()
        adapter = HTTPAdapter(pool_connections=4, pool_maxsize=64, max_retries=0)
        self.session.mount("http://", adapter)
        self.session.mount("https://", adapter)
        self._token_key = TOKEN_KEY.format(corp_id=config.corp_id)
        self._lock_key = TOKEN_LOCK_KEY.format(corp_id=config.corp_id)
        self._cad = self.redis.register_script(_COMPARE_AND_DELETE)
        self._local: tuple[str, float] | None = None
        self.limiter = RateLimiter(self.redis, config.corp_id, config.rate_per_minute)
        self._local_lock = threading.Lock()

    # --- generic calls ---------------------------------------------------------------------------

    def get(self, path: str, **params: Any) -> dict:
        """GET `path` (relative to the base, e.g. "user/get") with the token; the JSON dict when errcode == 0."""
        return self._call("GET", path, params=_compact(params))

    def post(self, path: str, body: dict | None = None, *, timeout: float | None = None) -> dict:
        """POST a JSON `body` to `path` with the token; the JSON dict when errcode == 0."""
        return self._call("POST", path, body=body or {}, timeout=timeout)

    def _call(
        self, method: str, path: str, params: dict | None = None, body: dict | None = None, files: dict | None = None,
        timeout: float | None = None,
    ) -> dict:
        path = path.strip("/")
        refreshed = False
        attempt = 0  # HTTP calls made (logged)
        tries = 0  # calls counted against the backoff budget (a token refresh is not one)
        while True:
            attempt += 1
            tries += 1
            token = self.access_token()
            self.limiter.acquire(path)  # before every HTTP call, retries included: WeCom counts them all
            try:
                return self._request(method, path, {**(params or {}), "access_token": token}, body, attempt, files,
                                     timeout=timeout)
            except WeComError as exc:
                if exc.errcode in TOKEN_ERRCODES and (not refreshed or tries <= self.config.max_retries):
                    # Invalidated early or expired: drop this token, fetch a new one, repeat the call. The first
                    # refresh is free; a token refused again (WeCom answers 42001 now and then even to a fresh
                    # one) backs off within the retry budget instead of failing a call nothing else was wrong with.
                    self.invalidate_token(token)
                    if refreshed:
                        self._sleep(tries)
                    else:
                        tries -= 1
                    refreshed = True
                    continue
                if self._should_back_off(exc, tries):
                    self._sleep(tries)
                    continue
                raise

    def _should_back_off(self, exc: WeComError, attempt: int) -> bool:
        if attempt > self.config.max_retries:
            return False
        if exc.maybe_applied and exc.path in NOT_IDEMPOTENT:
            return False  # sending it again could create it twice: the caller finds out what happened first
        return exc.errcode in BACKOFF_ERRCODES and exc.retryable

    def _sleep(self, attempt: int) -> None:
        # Full jitter: many workers hitting 45009 together must not retry in lockstep.
        ceiling = min(self.config.retry_max_delay, self.config.retry_base_delay * (2 ** (attempt - 1)))
        time.sleep(random.uniform(ceiling / 2, ceiling))

    def _request(
        self, method: str, path: str, params: dict, body: dict | None, attempt: int, files: dict | None = None,
        *, timeout: float | None = None,
    ) -> dict:
        url = f"{self.config.base_url}/{path}"
        timeout = timeout or self.config.timeout
        started = time.monotonic()
        errcode: int | None = None
        try:
            try:
                if method == "GET":
                    response = self.session.get(url, params=params, timeout=timeout)
                elif files:  # multipart upload (media/upload); requests writes the boundary and Content-Type
                    response = self.session.post(url, params=params, files=files, timeout=timeout)
                else:
                    data = json.dumps(body, ensure_ascii=False).encode()
                    response = self.session.post(
                        url,
                        params=params,
                        data=data,
                        headers={"Content-Type": "application/json; charset=utf-8"},
                        timeout=timeout,
                    )
            except requests.Timeout as exc:
                # A connect timeout sent nothing; a read timeout may come after WeCom acted on the request.
                raise WeComError(TRANSPORT_ERRCODE, f"timeout: {redact(str(exc))}", path, retryable=True,
                                 maybe_applied=not isinstance(exc, requests.ConnectTimeout)) from None
            except requests.RequestException as exc:
                raise WeComError(
                    TRANSPORT_ERRCODE, f"{type(exc).__name__}: {redact(str(exc))}", path, retryable=True,
                    maybe_applied=not _never_sent(exc),
                ) from None
            if response.status_code >= 500:
                raise WeComError(TRANSPORT_ERRCODE, f"HTTP {response.status_code}", path, retryable=True,
                                 maybe_applied=True)
            if response.status_code != 200:
                # WeCom answers business errors with HTTP 200; anything else is a wrong path or a proxy refusing.
                raise WeComError(TRANSPORT_ERRCODE, f"HTTP {response.status_code}", path, retryable=False)
            try:
                data = response.json()
            except ValueError:
                raise WeComError(TRANSPORT_ERRCODE, "response is not JSON", path, retryable=True,
                                 maybe_applied=True) from None
            if not isinstance(data, dict):
                raise WeComError(TRANSPORT_ERRCODE, "response is not a JSON object", path, retryable=True,
                                 maybe_applied=True)
            errcode = int(data.get("errcode", 0) or 0)
            if errcode != 0:
                raise WeComError(errcode, str(data.get("errmsg", "")), path)
            return data
        except WeComError as exc:
            errcode = exc.errcode
            raise
        finally:
            logger.info(
                "wecom call",
                extra={
                    "endpoint": path,
                    "method": method,
                    "errcode": errcode,
                    "duration_ms": round((time.monotonic() - started) * 1000, 1),
                    "attempt": attempt,
                },
            )

    # --- access token ----------------------------------------------------------------------------

    def access_token(self) -> str:
        """The cached token, fetched once for all processes (under a Redis lock) when absent."""
        try:
            return self._shared_token()
        except redis.RedisError:
            # Redis down: keep working with a per-process token rather than failing every WeCom call.
            logger.warning("wecom token cache unavailable, using a process-local token", exc_info=True)
            return self._local_token()

    def _shared_token(self) -> str:
        cached = self.redis.get(self._token_key)
        if cached:
            return cached.decode()
        wait = self.config.timeout * (self.config.max_retries + 1) + 5
        lock = self.redis.lock(self._lock_key, timeout=wait, blocking_timeout=wait, sleep=0.02)
        acquired = lock.acquire()
        try:
            # Whoever held the lock before us has most likely stored a fresh token.
            cached = self.redis.get(self._token_key)
            if cached:
                return cached.decode()
            token, expires_in = self._fetch_token()
            self.redis.set(self._token_key, token, ex=_ttl(expires_in))
            return token
        finally:
            if acquired:
                try:
                    lock.release()
                except redis.exceptions.LockError:  # it expired while we were fetching; harmless
                    pass

    def _local_token(self) -> str:
        with self._local_lock:
            if self._local is None or self._local[1] <= time.monotonic():
                token, expires_in = self._fetch_token()
                self._local = (token, time.monotonic() + _ttl(expires_in))
            return self._local[0]

    def _fetch_token(self) -> tuple[str, int]:
        params = {"corpid": self.config.corp_id, "corpsecret": self.config.corp_secret}
        attempt = 0
        while True:
            attempt += 1
            try:
                data = self._request("GET", "gettoken", params, None, attempt)
                return str(data["access_token"]), int(data.get("expires_in", 7200))
            except WeComError as exc:
                # gettoken takes no token: a 40014/42001 from it is WeCom's glitch, as transient as a -1.
                glitch = exc.errcode in TOKEN_ERRCODES and attempt <= self.config.max_retries
                if glitch or self._should_back_off(exc, attempt):
                    self._sleep(attempt)
                    continue
                raise
            except (KeyError, TypeError, ValueError):
                raise WeComError(TRANSPORT_ERRCODE, "gettoken answered without access_token", "gettoken", True)

    def invalidate_token(self, token: str | None = None) -> None:
        """Forget the cached token (only if it is still `token`, when given)."""
        with self._local_lock:
            if self._local is not None and (token is None or self._local[0] == token):
                self._local = None
        try:
            if token is None:
                self.redis.delete(self._token_key)
            else:
                self._cad(keys=[self._token_key], args=[token])
        except redis.RedisError:
            logger.warning("wecom token cache unavailable, could not drop the token", exc_info=True)

    # --- paging ----------------------------------------------------------------------------------

    def iter_pages(self, path: str, body: dict, cursor_field: str = "cursor") -> Iterator[dict]:
        """POST `path` repeatedly, following `next_cursor` until it is empty; yields each whole page."""
        body = dict(body)
        seen: set[str] = set()
        while True:
            page = self.post(path, body)
            yield page
            cursor = page.get("next_cursor") or ""
            if not cursor or cursor in seen:  # a cursor repeating would loop forever
                return
            seen.add(cursor)
            body[cursor_field] = cursor

    def _iter_items(self, path: str, body: dict, key: str) -> Iterator[dict]:
        for page in self.iter_pages(path, body):
            yield from page.get(key) or []

    # --- members ---------------------------------------------------------------------------------

    def user_get(self, userid: str) -> dict:
        return self.get("user/get", userid=userid)

    def user_list_id(self, cursor: str | None = None, limit: int | None = None) -> dict:
        return self.post("user/list_id", _compact({"cursor": cursor, "limit": limit}))

    def iter_user_list_id(self, limit: int = 10000) -> Iterator[dict]:
        """Every member as {userid|open_userid, department}."""
        return self._iter_items("user/list_id", {"limit": limit}, "dept_user")

    def get_follow_user_list(self) -> dict:
        return self.get("externalcontact/get_follow_user_list")

    # --- external contacts -----------------------------------------------------------------------

    def externalcontact_list(self, userid: str) -> dict:
        return self.get("externalcontact/list", userid=userid)

    def externalcontact_get(self, external_userid: str, cursor: str | None = None) -> dict:
        return self.get("externalcontact/get", external_userid=external_userid, cursor=cursor)

    def externalcontact_get_all(self, external_userid: str) -> dict:
        """`externalcontact/get` with every follow_user page (WeCom pages above 500 followers) merged."""
        result = self.externalcontact_get(external_userid)
        seen: set[str] = set()
        cursor = result.get("next_cursor") or ""
        while cursor and cursor not in seen:
            seen.add(cursor)
            page = self.externalcontact_get(external_userid, cursor=cursor)
            result.setdefault("follow_user", []).extend(page.get("follow_user") or [])
            cursor = page.get("next_cursor") or ""
        result["next_cursor"] = ""
        return result

    def batch_get_by_user(self, userid_list: list[str], cursor: str | None = None, limit: int | None = None) -> dict:
        return self.post(
            "externalcontact/batch/get_by_user",
            _compact({"userid_list": userid_list, "cursor": cursor, "limit": limit}),
        )

    def iter_batch_get_by_user(
        self, userids: Iterable[str], limit: int = 100, unlicensed: list[str] | None = None
    ) -> Iterator[dict]:
        """Every {external_contact, follow_info} of these members, 100 userids per request, following cursors.

        WeCom may succeed while skipping members (fail_info.unlicensed_userid_list): pass a list as `unlicensed`
        to collect them."""
        userids = list(userids)
        for start in range(0, len(userids), 100):
            chunk = userids[start : start + 100]
            for page in self.iter_pages("externalcontact/batch/get_by_user", {"userid_list": chunk, "limit": limit}):
                skipped = (page.get("fail_info") or {}).get("unlicensed_userid_list") or []
                if skipped:
                    logger.warning("wecom batch_get_by_user skipped unlicensed members", extra={"count": len(skipped)})
                    if unlicensed is not None:
                        unlicensed.extend(skipped)
                yield from page.get("external_contact_list") or []

    def remark(self, userid: str, external_userid: str, **fields: Any) -> dict:
        """fields: remark, description, remark_company, remark_mobiles, remark_pic_mediaid."""
        return self.post("externalcontact/remark", {"userid": userid, "external_userid": external_userid, **fields})

    def convert_to_openid(self, external_userid: str) -> dict:
        return self.post("externalcontact/convert_to_openid", {"external_userid": external_userid})

    def unionid_to_external_userid(self, unionid: str, openid: str) -> dict:
        """A WeChat user's unionid (+ the openid from the same Official Account) -> {external_userid}: the
        self-built app's conversion (84061 when the corp has no relation with them)."""
        return self.post("externalcontact/unionid_to_external_userid", {"unionid": unionid, "openid": openid})

    # --- corp tags -------------------------------------------------------------------------------

    def get_corp_tag_list(self, tag_id: list[str] | None = None, group_id: list[str] | None = None) -> dict:
        return self.post("externalcontact/get_corp_tag_list", _compact({"tag_id": tag_id, "group_id": group_id}))

    def add_corp_tag(
        self,
        tag: list[dict],
        group_id: str | None = None,
        group_name: str | None = None,
        order: int | None = None,
        agentid: int | None = None,
    ) -> dict:
        body = {"tag": tag, "group_id": group_id, "group_name": group_name, "order": order, "agentid": agentid}
        return self.post("externalcontact/add_corp_tag", _compact(body))

    def edit_corp_tag(self, id: str, name: str | None = None, order: int | None = None, **extra: Any) -> dict:
        return self.post("externalcontact/edit_corp_tag", _compact({"id": id, "name": name, "order": order, **extra}))

    def del_corp_tag(self, tag_id: list[str] | None = None, group_id: list[str] | None = None, **extra: Any) -> dict:
        return self.post("externalcontact/del_corp_tag", _compact({"tag_id": tag_id, "group_id": group_id, **extra}))

    def mark_tag(
        self,
        userid: str,
        external_userid: str,
        add_tag: list[str] | None = None,
        remove_tag: list[str] | None = None,
    ) -> dict:
        body = {"userid": userid, "external_userid": external_userid, "add_tag": add_tag, "remove_tag": remove_tag}
        return self.post("externalcontact/mark_tag", _compact(body))

    # --- contact ways and welcome messages ---------------------------------------------------------

    def add_contact_way(self, type: int, scene: int, **fields: Any) -> dict:
        """fields: style, remark, skip_verify, state, user, party, is_temp, expires_in, ... -> {config_id, qr_code}."""
        return self.post("externalcontact/add_contact_way", {"type": type, "scene": scene, **fields})

    def get_contact_way(self, config_id: str) -> dict:
        return self.post("externalcontact/get_contact_way", {"config_id": config_id})

    def list_contact_way(self, **fields: Any) -> dict:
        """fields: start_time, end_time, cursor, limit."""
        return self.post("externalcontact/list_contact_way", fields)

    def update_contact_way(self, config_id: str, **fields: Any) -> dict:
        return self.post("externalcontact/update_contact_way", {"config_id": config_id, **fields})

    def del_contact_way(self, config_id: str) -> dict:
        return self.post("externalcontact/del_contact_way", {"config_id": config_id})

    def send_welcome_msg(
        self, welcome_code: str, text: dict | None = None, attachments: list[dict] | None = None
    ) -> dict:
        body = {"welcome_code": welcome_code, "text": text, "attachments": attachments}
        return self.post("externalcontact/send_welcome_msg", _compact(body))

    # --- mass messages ---------------------------------------------------------------------------

    def add_msg_template(self, **fields: Any) -> dict:
        """fields: chat_type, external_userid, chat_id_list, tag_filter, sender, allow_select, text, attachments.

        -> {msgid, fail_list}: check fail_list, the call succeeds with some recipients refused."""
        return self.post("externalcontact/add_msg_template", fields,
                         timeout=max(self.config.timeout, self.config.mass_send_timeout))

    def get_groupmsg_list_v2(self, **fields: Any) -> dict:
        """fields: chat_type, start_time, end_time, creator, filter_type, limit, cursor."""
        return self.post("externalcontact/get_groupmsg_list_v2", fields)

    def iter_groupmsg_list_v2(self, **fields: Any) -> Iterator[dict]:
        return self._iter_items("externalcontact/get_groupmsg_list_v2", fields, "group_msg_list")

    def get_groupmsg_task(self, msgid: str, cursor: str | None = None, limit: int | None = None) -> dict:
        return self.post(
            "externalcontact/get_groupmsg_task", _compact({"msgid": msgid, "cursor": cursor, "limit": limit})
        )

    def iter_groupmsg_task(self, msgid: str, limit: int = 1000) -> Iterator[dict]:
        return self._iter_items("externalcontact/get_groupmsg_task", {"msgid": msgid, "limit": limit}, "task_list")

    def get_groupmsg_send_result(
        self, msgid: str, userid: str, cursor: str | None = None, limit: int | None = None
    ) -> dict:
        body = {"msgid": msgid, "userid": userid, "cursor": cursor, "limit": limit}
        return self.post("externalcontact/get_groupmsg_send_result", _compact(body))

    def iter_groupmsg_send_result(self, msgid: str, userid: str, limit: int = 1000) -> Iterator[dict]:
        body = {"msgid": msgid, "userid": userid, "limit": limit}
        return self._iter_items("externalcontact/get_groupmsg_send_result", body, "send_list")

    def cancel_groupmsg_send(self, msgid: str) -> dict:
        return self.post("externalcontact/cancel_groupmsg_send", {"msgid": msgid})

    def remind_groupmsg_send(self, msgid: str) -> dict:
        return self.post("externalcontact/remind_groupmsg_send", {"msgid": msgid})

    # --- inheritance -----------------------------------------------------------------------------

    def transfer_customer(
        self,
        handover_userid: str,
        takeover_userid: str,
        external_userid: list[str],
        transfer_success_msg: str | None = None,
    ) -> dict:
        """-> {customer:[{external_userid, errcode}]}: per-item errcodes; 0 only means "transfer started"."""
        body = {
            "handover_userid": handover_userid,
            "takeover_userid": takeover_userid,
            "external_userid": external_userid,
            "transfer_success_msg": transfer_success_msg,
        }
        return self.post("externalcontact/transfer_customer", _compact(body))

    def transfer_result(self, handover_userid: str, takeover_userid: str, cursor: str | None = None) -> dict:
        body = {"handover_userid": handover_userid, "takeover_userid": takeover_userid, "cursor": cursor}
        return self.post("externalcontact/transfer_result", _compact(body))

    def iter_transfer_result(self, handover_userid: str, takeover_userid: str) -> Iterator[dict]:
        body = {"handover_userid": handover_userid, "takeover_userid": takeover_userid}
        return self._iter_items("externalcontact/transfer_result", body, "customer")

    def resigned_transfer_customer(
        self, handover_userid: str, takeover_userid: str, external_userid: list[str]
    ) -> dict:
        body = {
            "handover_userid": handover_userid,
            "takeover_userid": takeover_userid,
            "external_userid": external_userid,
        }
        return self.post("externalcontact/resigned/transfer_customer", body)

    def resigned_transfer_result(self, handover_userid: str, takeover_userid: str, cursor: str | None = None) -> dict:
        body = {"handover_userid": handover_userid, "takeover_userid": takeover_userid, "cursor": cursor}
        return self.post("externalcontact/resigned/transfer_result", _compact(body))

    def iter_resigned_transfer_result(self, handover_userid: str, takeover_userid: str) -> Iterator[dict]:
        body = {"handover_userid": handover_userid, "takeover_userid": takeover_userid}
        return self._iter_items("externalcontact/resigned/transfer_result", body, "customer")

    def get_unassigned_list(
        self, page_id: int | None = None, cursor: str | None = None, page_size: int | None = None
    ) -> dict:
        body = {"page_id": page_id, "cursor": cursor, "page_size": page_size}
        return self.post("externalcontact/get_unassigned_list", _compact(body))

    def iter_unassigned_list(self, page_size: int = 1000) -> Iterator[dict]:
        """Every {handover_userid, external_userid, dimission_time}, by cursor (stops on is_last too)."""
        body: dict[str, Any] = {"page_size": page_size}
        seen: set[str] = set()
        while True:
            page = self.post("externalcontact/get_unassigned_list", body)
            yield from page.get("info") or []
            cursor = page.get("next_cursor") or ""
            if page.get("is_last") or not cursor or cursor in seen:
                return
            seen.add(cursor)
            body["cursor"] = cursor

    def groupchat_transfer(self, chat_id_list: list[str], new_owner: str) -> dict:
        """Resigned owners' groups. -> {failed_chat_list:[{chat_id, errcode, errmsg}]} (partial success)."""
        return self.post("externalcontact/groupchat/transfer", {"chat_id_list": chat_id_list, "new_owner": new_owner})

    def groupchat_onjob_transfer(self, chat_id_list: list[str], new_owner: str) -> dict:
        return self.post(
            "externalcontact/groupchat/onjob_transfer", {"chat_id_list": chat_id_list, "new_owner": new_owner}
        )

    # --- customer groups -------------------------------------------------------------------------

    def groupchat_list(self, **fields: Any) -> dict:
        """fields: status_filter, owner_filter{userid_list}, cursor, limit (1..1000)."""
        fields.setdefault("limit", 1000)
        return self.post("externalcontact/groupchat/list", fields)

    def iter_groupchat_list(self, **fields: Any) -> Iterator[dict]:
        fields.setdefault("limit", 1000)
        return self._iter_items("externalcontact/groupchat/list", fields, "group_chat_list")

    def groupchat_get(self, chat_id: str, need_name: int = 0) -> dict:
        return self.post("externalcontact/groupchat/get", {"chat_id": chat_id, "need_name": need_name})

    def groupchat_add_join_way(self, scene: int, **fields: Any) -> dict:
        """fields: remark, auto_create_room, room_base_name, room_base_id, chat_id_list, state -> {config_id}."""
        return self.post("externalcontact/groupchat/add_join_way", {"scene": scene, **fields})

    def get_join_way(self, config_id: str) -> dict:
        return self.post("externalcontact/groupchat/get_join_way", {"config_id": config_id})

    def update_join_way(self, config_id: str, scene: int, **fields: Any) -> dict:
        return self.post(
            "externalcontact/groupchat/update_join_way", {"config_id": config_id, "scene": scene, **fields}
        )

    def del_join_way(self, config_id: str) -> dict:
        return self.post("externalcontact/groupchat/del_join_way", {"config_id": config_id})

    # --- media ---------------------------------------------------------------------------------------

    def media_upload(
        self, type: str, filename: str, content: bytes, content_type: str = "application/octet-stream"
    ) -> dict:
        """Temporary media, valid 3 days: multipart POST of the file as field "media" to media/upload?type=TYPE
        (image, voice, video, file). -> {type, media_id, created_at}. Token refresh, rate slot and backoff as
        every call (the file is sent again on a retry)."""
        files = {"media": (filename, content, content_type)}
        return self._call("POST", "media/upload", params={"type": type}, files=files)

    # --- app messages ----------------------------------------------------------------------------

    def message_send(self, msgtype: str, **fields: Any) -> dict:
        """An app message (to staff): touser/toparty/totag, msgtype and its content; agentid from settings if absent."""
        body = {"msgtype": msgtype, **fields}
        if "agentid" not in body and self.config.agent_id is not None:
            body["agentid"] = self.config.agent_id
        return self.post("message/send", body)


_client: WeComClient | None = None
_client_lock = threading.Lock()


def get_client() -> WeComClient:
    """The process-wide client, rebuilt whenever the settings it was built from change (tests override them)."""
    global _client
    config = ClientConfig.from_settings()
    client = _client
    if client is not None and client.config == config:
        return client
    with _client_lock:
        if _client is None or _client.config != config:
            _client = WeComClient(config)
        return _client
