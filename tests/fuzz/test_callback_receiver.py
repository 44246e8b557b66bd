"""Fuzz the WeCom callback receiver (issue 14.5): malformed XML, wrong encodings, huge bodies, truncated
ciphertexts and odd query parameters, signed with the real token where the signature would otherwise stop them
first, against both receivers over real HTTP: the Django view (crm/api/callbacks.py) on the live server and the
ingest server (crm/api/callback_ingest.py, crm/ingest.py) under uvicorn. Every answer is a 4xx (never a 5xx: the
only documented one is 503 "not stored", which nothing here may cause) and nothing is stored."""

from __future__ import annotations

import base64
import os
import secrets
import threading
import time

import pytest
import requests
import uvicorn
from django.conf import settings
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from crm.api.callback_ingest import CallbackIngestApp
from crm.models import CallbackEvent
from crm.services.callbacks import MAX_BODY_BYTES
from crm.wecom.crypto import signature
from tests.conftest import free_port, wait_for
from tests.crm.wecom.callback_helpers import crypt, event_xml

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.timeout(300)]
EXAMPLES = int(os.environ.get("FUZZ_CALLBACK_EXAMPLES", "60"))


@pytest.fixture
def receivers(live_server):
    app = CallbackIngestApp()
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, lifespan="on", log_level="warning"))
    thread = threading.Thread(target=server.run, name="ingest-fuzz", daemon=True)
    thread.start()
    wait_for(lambda: server.started, timeout=10, message="the ingest server to start")
    yield {"django": f"{live_server.url}/wecom/callback", "ingest": f"http://127.0.0.1:{port}/wecom/callback"}
    server.should_exit = True
    thread.join(15)


def _envelope(encrypt: str, extra: str = "") -> bytes:
    return (f"<xml><ToUserName><![CDATA[{settings.WECOM_CORP_ID}]]></ToUserName>{extra}"
            f"<Encrypt><![CDATA[{encrypt}]]></Encrypt></xml>").encode()


def _signed(encrypt: str, *, timestamp: str | None = None, nonce: str | None = None) -> dict:
    ts = timestamp if timestamp is not None else str(int(time.time()))
    nonce = nonce if nonce is not None else secrets.token_hex(8)
    return {"msg_signature": signature(settings.WECOM_CALLBACK_TOKEN, ts, nonce, encrypt), "timestamp": ts,
            "nonce": nonce}


def _encrypt_bytes(plain: bytes) -> str:
    return crypt().encrypt(plain)


_text = st.text(st.characters(codec="utf-8"), max_size=40)
_xml = st.builds(lambda n: event_xml(ExternalUserID=f"wmfuzz{n}", State="店铺-上海"), st.integers(0, 10**6))


@st.composite
def _truncated_xml(draw):
    """A strict prefix of an event's XML (never well-formed: its root is not closed), or its close tag mangled."""
    xml = draw(_xml)
    if draw(st.booleans()):
        return xml[: draw(st.integers(0, len(xml) - 1))].encode()
    return xml.replace("</xml>", draw(st.sampled_from(["</xm>", "<xml>", "</xml", "</XML>"]))).encode()


_wrong_encoding = _xml.flatmap(lambda xml: st.sampled_from([
    xml.encode("gbk"), xml.encode("utf-16"), xml.encode("utf-16-be"), xml.encode("utf-32"),
    xml.encode("utf-8") + b"\xff\xfe", b"\xc3\x28" + xml.encode(), xml.encode("gbk").replace(b"<xml>", b"<xml>\x00"),
]))
_garbage = st.binary(max_size=300).filter(lambda b: not b.startswith(b"<xml>"))
_bad_plain = st.one_of(_truncated_xml(), _wrong_encoding, _garbage,
                       st.builds(lambda t: f"<xml><a>{t}</b></xml>".encode(), _text),
                       st.just(b'<?xml version="1.0" encoding="klingon"?><xml/>'),
                       st.just(b"<!DOCTYPE x [<!ENTITY a \"aaaaaaaaaa\"><!ENTITY b \"&a;&a;&a;&a;&a;&a;&a;\">]>"
                               b"<xml><x>&b;&b;&b;&b;&b;&b;&b;&b;</x>"))


@st.composite
def malformed_posts(draw) -> tuple[dict, bytes]:
    kind = draw(st.sampled_from(["plain", "truncated_cipher", "envelope", "huge", "params", "encoding"]))
    if kind == "plain":  # signed, encrypted, but what it decrypts to is not a UTF-8 XML event
        encrypt = _encrypt_bytes(draw(_bad_plain))
        return _signed(encrypt), _envelope(encrypt)
    if kind == "truncated_cipher":  # a real event's ciphertext cut short, re-signed so the signature holds
        raw = base64.b64decode(_encrypt_bytes(draw(_xml).encode()))
        cut = draw(st.integers(0, len(raw) - 1))
        encrypt = base64.b64encode(raw[:cut]).decode() if draw(st.booleans()) else base64.b64encode(raw).decode()[
            : draw(st.integers(1, len(base64.b64encode(raw)) - 1))]
        return _signed(encrypt), _envelope(encrypt)
    if kind == "envelope":  # the POSTed envelope itself malformed
        encrypt = _encrypt_bytes(draw(_xml).encode())
        body = _envelope(encrypt)
        body = draw(st.sampled_from([
            body[: draw(st.integers(0, len(body) - 1))], body.replace(b"Encrypt", b"Encrypted"),
            body.replace(b"<![CDATA[", b"<![CDATA[\x00"), b"<xml><Encrypt></Encrypt></xml>", draw(st.binary()),
            body.replace(b"</xml>", b"</xml><xml>"),
        ]))
        return _signed(encrypt), body
    if kind == "huge":  # over the receiver's limit, signed or not
        size = MAX_BODY_BYTES + draw(st.integers(1, 64 * 1024))
        encrypt = "A" * size
        return _signed(encrypt), _envelope(encrypt) if draw(st.booleans()) else b"<" * size
    if kind == "encoding":  # a real event in an envelope that is not UTF-8
        encrypt = _encrypt_bytes(draw(_xml).encode())
        extra = "<AgentID>店铺</AgentID>"
        text = _envelope(encrypt, extra).decode()
        encoding = draw(st.sampled_from(["utf-16", "gbk", "utf-32"]))
        declared = f'<?xml version="1.0" encoding="{encoding}"?>' if encoding != "utf-32" else ""
        return _signed(encrypt), (declared + text).encode(encoding)
    encrypt = _encrypt_bytes(draw(_xml).encode())  # a real event, its query parameters broken (one at least)
    broken = draw(st.sampled_from(["timestamp", "nonce", "msg_signature"]))
    timestamp = draw(st.sampled_from(["9" * 400, "-" + "9" * 30, "1e10", "", "０x", str(2**70), "12\x00", "1.5"]))
    nonce = draw(st.sampled_from(["n" * 65, "a\x00b", "é" * 1000, ""]))
    params = _signed(encrypt, timestamp=timestamp if broken == "timestamp" else None,
                     nonce=nonce if broken == "nonce" else None)
    if broken == "msg_signature":
        params["msg_signature"] = draw(st.sampled_from(["", "0" * 40, "x" * 5000, "é", "\x00"]))
    return params, _envelope(encrypt)


def _not_utf8(data: bytes) -> bool:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return True
    return False


@st.composite
def malformed_gets(draw) -> dict:
    echostr = _encrypt_bytes(draw(st.one_of(_wrong_encoding, _garbage.filter(_not_utf8))))
    if draw(st.booleans()):
        raw = base64.b64decode(echostr)
        echostr = base64.b64encode(raw[: draw(st.integers(0, len(raw) - 1))]).decode()
    return {**_signed(echostr, timestamp=draw(st.sampled_from([None, "9" * 400, str(2**70)]))), "echostr": echostr}


def _assert_refused(response: requests.Response, what: str) -> None:
    assert 400 <= response.status_code < 500, f"{what}: {response.status_code} {response.text[:300]}"
    assert response.json()["error"]["code"], what


def test_malformed_callbacks_are_refused_with_a_4xx_and_nothing_is_stored(receivers):
    http = requests.Session()

    @given(request=malformed_posts())
    @hsettings(max_examples=EXAMPLES, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    def posts(request):
        params, body = request
        for name, url in receivers.items():
            response = http.post(url, params=params, data=body, headers={"Content-Type": "text/xml"}, timeout=30)
            _assert_refused(response, f"POST to {name} {params} {body[:200]!r}...{body[-200:]!r}")

    @given(params=malformed_gets())
    @hsettings(max_examples=EXAMPLES // 2, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    def gets(params):
        for name, url in receivers.items():
            _assert_refused(http.get(url, params=params, timeout=30), f"GET to {name} {params}")

    posts()
    gets()
    assert CallbackEvent.objects.count() == 0
