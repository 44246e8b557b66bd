"""Build signed, encrypted WeCom callbacks the way Tencent's server does (with our crypto: the simulator's
own implementation is held against it in the live tests)."""

from __future__ import annotations

import itertools
import secrets
import time

from django.conf import settings

from crm.wecom.crypto import WXBizMsgCrypt, signature

_seq = itertools.count(1)


def crypt(receive_id: str | None = None) -> WXBizMsgCrypt:
    return WXBizMsgCrypt(
        settings.WECOM_CALLBACK_TOKEN, settings.WECOM_ENCODING_AES_KEY, receive_id or settings.WECOM_CORP_ID
    )


def event_xml(**fields) -> str:
    """An event XML; fields override the defaults (an add_external_contact). A list value becomes <Item>s."""
    base = {
        "ToUserName": settings.WECOM_CORP_ID,
        "FromUserName": "sys",
        "CreateTime": str(int(time.time())),
        "MsgType": "event",
        "Event": "change_external_contact",
        "ChangeType": "add_external_contact",
        "UserID": "zhangsan",
        "ExternalUserID": f"wm{secrets.token_hex(15)}",
        "State": "store-sh-001",
        "WelcomeCode": secrets.token_hex(16),
    }
    base.update(fields)
    parts = []
    for name, value in base.items():
        if value is None:
            continue
        if isinstance(value, list):
            items = "".join(f"<Item><![CDATA[{v}]]></Item>" for v in value)
            parts.append(f"<{name}>{items}</{name}>")
        else:
            parts.append(f"<{name}><![CDATA[{value}]]></{name}>")
    return "<xml>" + "".join(parts) + "</xml>"


def signed_post(
    xml: str, *, timestamp: int | None = None, nonce: str | None = None, receive_id: str | None = None
) -> tuple[dict, bytes]:
    """(query params, body) of a POST callback carrying `xml`."""
    c = crypt(receive_id)
    ts = str(int(time.time()) if timestamp is None else timestamp)
    nonce = nonce or f"{next(_seq)}{secrets.randbelow(10**9)}"
    encrypt = c.encrypt(xml)
    body = (
        f"<xml><ToUserName><![CDATA[{settings.WECOM_CORP_ID}]]></ToUserName>"
        f"<AgentID><![CDATA[{settings.WECOM_AGENT_ID}]]></AgentID><Encrypt><![CDATA[{encrypt}]]></Encrypt></xml>"
    )
    params = {"msg_signature": signature(c.token, ts, nonce, encrypt), "timestamp": ts, "nonce": nonce}
    return params, body.encode()


def signed_get(echo: str, *, timestamp: int | None = None, receive_id: str | None = None) -> dict:
    c = crypt(receive_id)
    ts = str(int(time.time()) if timestamp is None else timestamp)
    nonce = secrets.token_hex(6)
    echostr = c.encrypt(echo)
    return {
        "msg_signature": signature(c.token, ts, nonce, echostr),
        "timestamp": ts,
        "nonce": nonce,
        "echostr": echostr,
    }
