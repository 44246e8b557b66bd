"""Fixtures for the simulator: a reset world behind a SimDriver, a WeCom caller, and a callback receiver that
checks signatures and decrypts with its own (independent) implementation."""

from __future__ import annotations

import base64
import hashlib
import http.server
import struct
import threading
import time
import xml.etree.ElementTree as ET
from urllib.parse import parse_qs, urlparse

import pytest
import requests
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from django.conf import settings

from wecom_sim.driver import SimDriver


@pytest.fixture(scope="session", autouse=True)
def _stop_delivery_thread(django_db_setup):
    """Stop this process's callback thread before the test database is dropped."""
    yield
    from wecom_sim import delivery

    delivery.stop()


@pytest.fixture
def sim(live_stack) -> SimDriver:
    from wecom_sim import delivery

    driver = SimDriver(live_stack, settings.WECOM_SIM["ADMIN_KEY"])
    driver.reset()
    # These tests are about the simulator alone: its callbacks go nowhere unless a test sets up `receiver`,
    # so that a CRM worker running in the same session never reacts to this world (e.g. sends welcomes).
    driver.configure(drop_rate=1.0)
    yield driver
    delivery.stop()  # no delivery attempts into the next test's flushed database


class WeCom:
    """A minimal WeCom caller: token in the query string, JSON bodies."""

    def __init__(self, driver: SimDriver) -> None:
        self.driver = driver
        self.base = f"{driver.base}/wecom-sim/cgi-bin"
        self.token = driver.token()

    auto_refresh = True  # like a real client: refresh on 40014/42001 and retry once

    def _call(self, method: str, api: str, query: dict, body: dict | None) -> dict:
        for attempt in (1, 2):
            params = {"access_token": self.token, **query}
            if method == "GET":
                result = requests.get(f"{self.base}/{api}", params=params, timeout=30).json()
            else:
                result = requests.post(f"{self.base}/{api}", params=params, json=body or {}, timeout=30).json()
            if attempt == 1 and self.auto_refresh and result.get("errcode") in (40014, 42001):
                self.token = self.driver.token()
                continue
            return result
        return result

    def get(self, api: str, **query) -> dict:
        return self._call("GET", api, query, None)

    def post(self, api: str, body: dict | None = None, **query) -> dict:
        return self._call("POST", api, query, body)


@pytest.fixture
def wx(sim) -> WeCom:
    return WeCom(sim)


@pytest.fixture
def world(sim, wx):
    """Two staff, a single contact way with state, one shopper who added alice."""
    sim.add_member("alice", "Alice")
    sim.add_member("bob", "Bob")
    way = wx.post("externalcontact/add_contact_way", {"type": 1, "scene": 2, "user": ["alice"], "state": "store-1"})
    shopper = sim.add_shopper("王芳", gender=2)
    added = sim.scan_contact_way(shopper["external_userid"], state="store-1")
    return {"way": way, "shopper": shopper, "eid": shopper["external_userid"], "added": added}


# --- an independent WXBizMsgCrypt receiver ---------------------------------------------------------


def independent_decrypt(encoding_aes_key: str, encrypted: str) -> tuple[str, str]:
    key = base64.b64decode(encoding_aes_key + "=")
    decryptor = Cipher(algorithms.AES(key), modes.CBC(key[:16])).decryptor()
    plain = decryptor.update(base64.b64decode(encrypted)) + decryptor.finalize()
    plain = plain[: -plain[-1]]
    length = struct.unpack("!I", plain[16:20])[0]
    return plain[20 : 20 + length].decode(), plain[20 + length :].decode()


def independent_signature(*parts: str) -> str:
    return hashlib.sha1("".join(sorted(parts)).encode()).hexdigest()


class Receiver:
    """http.server in a thread. `plan` is a list of behaviours consumed per POST: 200, 500, ("sleep", s)."""

    def __init__(self, token: str, aes_key: str, corpid: str) -> None:
        self.token, self.aes_key, self.corpid = token, aes_key, corpid
        self.plan: list = []
        self.events: list[dict] = []
        self.posts = 0
        self.bad: list[str] = []
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def _query(self):
                return {k: v[0] for k, v in parse_qs(urlparse(self.path).query).items()}

            def do_GET(self):
                q = self._query()
                if independent_signature(receiver.token, q["timestamp"], q["nonce"], q["echostr"]) != q[
                        "msg_signature"]:
                    self.send_response(403)
                    self.end_headers()
                    return
                msg, _ = independent_decrypt(receiver.aes_key, q["echostr"])
                self.send_response(200)
                self.end_headers()
                self.wfile.write(msg.encode())

            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                q = self._query()
                receiver.posts += 1
                behaviour = receiver.plan.pop(0) if receiver.plan else 200
                if isinstance(behaviour, tuple):
                    time.sleep(behaviour[1])
                    behaviour = 200
                if behaviour != 200:
                    self.send_response(behaviour)
                    self.end_headers()
                    return
                encrypted = ET.fromstring(body).find("Encrypt").text
                if independent_signature(receiver.token, q["timestamp"], q["nonce"], encrypted) != q[
                        "msg_signature"]:
                    receiver.bad.append("signature")
                msg, receiveid = independent_decrypt(receiver.aes_key, encrypted)
                if receiveid != receiver.corpid:
                    receiver.bad.append("receiveid")
                event = {child.tag: child.text or "" for child in ET.fromstring(msg)}
                items = ET.fromstring(msg).find("MemChangeList")
                if items is not None:
                    event["MemChangeList"] = [i.text for i in items]
                receiver.events.append(event)
                self.send_response(200)
                self.end_headers()

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/callback"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def of(self, change_type: str) -> list[dict]:
        return [e for e in self.events if e.get("ChangeType") == change_type]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver(sim):
    corp = sim.corp()
    rec = Receiver("recvToken123", "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG", corp["corpid"])
    sim.configure(callback_url=rec.url, callback_token=rec.token, encoding_aes_key=rec.aes_key,
                  callback_retry_delay=0.2, callback_timeout=1.0, drop_rate=0.0)
    yield rec
    rec.close()
