"""The WeCom corp red-packet pay client (WeChat Pay merchant API v2): XML bodies, MD5 signing, retries.

Retry discipline (wecom-api.md §10): SYSTEMERROR / PROCESSING and transport failures are retried with the
SAME mch_billno (re-entrant: the pay API pays a billno at most once). A new billno would be a new payout, so
this module never invents one; the caller derives it from its claim row. Imports nothing of the project but
settings, so it stays a library.
"""

from __future__ import annotations

import hashlib
import logging
import random
import secrets
import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from typing import Any

import requests
from django.conf import settings

logger = logging.getLogger(__name__)

SEND_PATH = "mmpaymkttransfers/sendworkwxredpack"
QUERY_PATH = "mmpaymkttransfers/queryworkwxredpack"
# Business codes where asking again with the same billno can succeed.
RETRYABLE_CODES = frozenset({"SYSTEMERROR", "PROCESSING", "FREQ_LIMIT", "TRANSPORT"})
_WORKWX_SIGN_FIELDS = ("act_name", "mch_billno", "mch_id", "nonce_str", "re_openid", "total_amount", "wxappid")


class PayError(Exception):
    """A pay call failed: the err_code (TRANSPORT for network/HTTP trouble) and whether a retry can help."""

    def __init__(self, err_code: str, message: str, retryable: bool | None = None) -> None:
        self.err_code = err_code or "UNKNOWN"
        self.message = message
        self.retryable = (self.err_code in RETRYABLE_CODES) if retryable is None else retryable
        super().__init__(f"{self.err_code}: {message}")

    def __reduce__(self):
        return (self.__class__, (self.err_code, self.message, self.retryable))


@dataclass(frozen=True)
class PayResult:
    """A successful send (or a re-entrant repeat of one)."""

    mch_billno: str
    send_listid: str
    total_amount: int
    raw: dict


def _md5_upper(text: str) -> str:
    return hashlib.md5(text.encode("utf-8")).hexdigest().upper()


def workwx_sign(fields: dict[str, Any], secret: str) -> str:
    """upper(md5 of the 7 fixed fields, sorted, `k=v&...`, then `&secret=` + the payment app secret)."""
    base = "&".join(f"{k}={fields[k]}" for k in _WORKWX_SIGN_FIELDS)
    return _md5_upper(f"{base}&secret={secret}")


def pay_sign(fields: dict[str, Any], api_key: str) -> str:
    """WeChat Pay v2 MD5 sign: every non-empty field but `sign`, sorted, `k=v&...&key=` + API key."""
    base = "&".join(f"{k}={v}" for k, v in sorted(fields.items()) if k != "sign" and v not in ("", None))
    return _md5_upper(f"{base}&key={api_key}")


def to_xml(fields: dict[str, Any]) -> bytes:
    root = ET.Element("xml")
    for key, value in fields.items():
        ET.SubElement(root, key).text = str(value)
    return ET.tostring(root, encoding="utf-8")


def from_xml(data: bytes) -> dict[str, str]:
    root = ET.fromstring(data)
    return {child.tag: (child.text or "") for child in root}


def _post(path: str, fields: dict[str, Any], timeout: float) -> dict[str, str]:
    url = f"{settings.WECOM_PAY_BASE_URL.rstrip('/')}/{path}"
    started = time.monotonic()
    try:
        response = requests.post(url, data=to_xml(fields), headers={"Content-Type": "text/xml"}, timeout=timeout)
    except requests.RequestException as exc:
        raise PayError("TRANSPORT", f"{type(exc).__name__}", retryable=True) from None
    finally:
        logger.info("pay call", extra={"endpoint": path, "duration_ms": round((time.monotonic() - started) * 1000)})
    if response.status_code >= 500:
        raise PayError("TRANSPORT", f"HTTP {response.status_code}", retryable=True)
    if response.status_code != 200:
        raise PayError("TRANSPORT", f"HTTP {response.status_code}", retryable=False)
    try:
        return from_xml(response.content)
    except ET.ParseError:
        raise PayError("TRANSPORT", "response is not XML", retryable=True) from None


def _check(data: dict[str, str]) -> None:
    if data.get("return_code") != "SUCCESS":
        if not data.get("return_code"):
            raise PayError("TRANSPORT", "response without return_code", retryable=True)
        # Communication-level refusal (signature, parameters): retrying the same request will not help.
        raise PayError(data.get("err_code") or "FAIL", data.get("return_msg", ""))
    if data.get("result_code") != "SUCCESS":
        raise PayError(data.get("err_code", "UNKNOWN"), data.get("err_code_des", ""))


def send_workwx_redpack(
    *,
    mch_billno: str,
    re_openid: str,
    total_amount: int,
    act_name: str,
    wishing: str,
    remark: str = "",
    sender_name: str = "",
    max_attempts: int = 3,
    timeout: float | None = None,
) -> PayResult:
    """Send one corp red packet; retries SYSTEMERROR/PROCESSING/transport with the same billno, then raises."""
    fields: dict[str, Any] = {
        "nonce_str": "",
        "mch_billno": mch_billno,
        "mch_id": settings.WECOM_MCH_ID,
        "wxappid": settings.WECOM_CORP_ID,
        "re_openid": re_openid,
        "total_amount": int(total_amount),
        "wishing": wishing,
        "act_name": act_name,
        "remark": remark,
    }
    if sender_name:
        fields["sender_name"] = sender_name
    else:
        fields["agentid"] = settings.WECOM_AGENT_ID
    timeout = timeout or float(settings.WECOM_HTTP_TIMEOUT)
    attempt = 0
    while True:
        attempt += 1
        # A fresh nonce per request is fine: the pay API deduplicates on mch_billno, not on the nonce.
        fields["nonce_str"] = secrets.token_hex(16)
        fields["workwx_sign"] = workwx_sign(fields, settings.WECOM_PAY_SECRET)
        fields.pop("sign", None)
        fields["sign"] = pay_sign(fields, settings.WECOM_PAY_API_KEY)
        try:
            data = _post(SEND_PATH, fields, timeout)
            _check(data)
            return PayResult(
                mch_billno=data.get("mch_billno", mch_billno),
                send_listid=data.get("send_listid", ""),
                total_amount=int(data.get("total_amount") or total_amount),
                raw=data,
            )
        except PayError as exc:
            if not exc.retryable or attempt >= max_attempts:
                raise
            time.sleep(random.uniform(0.05, 0.2) * attempt)


def query_workwx_redpack(mch_billno: str, timeout: float | None = None) -> dict[str, str]:
    """The pay API's record of a billno; raises PayError (e.g. NOT_FOUND, which may mean still processing)."""
    fields: dict[str, Any] = {
        "nonce_str": secrets.token_hex(16),
        "mch_billno": mch_billno,
        "mch_id": settings.WECOM_MCH_ID,
        "appid": settings.WECOM_CORP_ID,
    }
    fields["sign"] = pay_sign(fields, settings.WECOM_PAY_API_KEY)
    data = _post(QUERY_PATH, fields, timeout or float(settings.WECOM_HTTP_TIMEOUT))
    _check(data)
    return data
