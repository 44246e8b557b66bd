"""Callback delivery: one background thread per process drains the outbox (SimCallback) to the CRM.

Rows are claimed with a conditional UPDATE, so several processes never deliver the same attempt twice.
The thread survives DB flushes between tests (it logs and keeps going) and only touches the DB while this
process has been active recently, so it does not hold connections on an idle or torn-down database."""

from __future__ import annotations

import datetime as dt
import logging
import random
import secrets
import sys
import threading
import time

import requests
from django.db import close_old_connections, connection
from django.utils import timezone

from wecom_sim import crypto
from wecom_sim.corp import callback_config, get_corp
from wecom_sim.models import SimCallback, SimCorp

logger = logging.getLogger(__name__)

POLL_SECONDS = 0.2


def _active_window() -> float:
    """Under pytest the thread works only shortly after this process served the simulator (test databases come
    and go); in a served simulator (gunicorn) it always works, so retries and timed transitions never stall."""
    return 15.0 if "pytest" in sys.modules else float("inf")

_lock = threading.Lock()
_wake = threading.Event()
_stop = threading.Event()
_thread: threading.Thread | None = None
_last_activity = 0.0


def notify() -> None:
    """Something happened in this process: make sure the thread runs and looks now."""
    global _last_activity
    _last_activity = time.monotonic()
    ensure_started()
    _wake.set()


def ensure_started() -> None:
    global _thread
    if _thread is not None and _thread.is_alive():
        return
    with _lock:
        if _thread is not None and _thread.is_alive():
            return
        _stop.clear()
        _thread = threading.Thread(target=_run, name="wecom-sim-callbacks", daemon=True)
        _thread.start()


def stop(timeout: float = 5.0) -> None:
    """Stop this process's delivery thread (tests call it before the test database is dropped)."""
    global _thread
    _stop.set()
    _wake.set()
    if _thread is not None:
        _thread.join(timeout)
    _thread = None


def _run() -> None:
    while not _stop.is_set():
        if time.monotonic() - _last_activity < _active_window():
            try:
                close_old_connections()
                from wecom_sim.clockwork import settle  # time-driven transitions (confirmations, transfers)

                settle(get_corp())
                deliver_due()
            except Exception as exc:
                # Between tests the database may be flushed or blocked; keep going either way.
                if "Database access not allowed" in str(exc):
                    logger.debug("wecom_sim delivery: database blocked")
                else:
                    logger.exception("wecom_sim callback delivery loop error")
            finally:
                connection.close()
        _wake.wait(POLL_SECONDS)
        _wake.clear()


def _encrypted_post(corp: SimCorp, xml: str) -> tuple[str, dict, str]:
    url, token, aes = callback_config(corp)
    encrypted = crypto.encrypt(aes, xml, corp.corpid)
    timestamp = str(int(time.time()))
    nonce = str(secrets.randbelow(10**10))
    query = {"msg_signature": crypto.signature(token, timestamp, nonce, encrypted), "timestamp": timestamp,
             "nonce": nonce}
    body = (
        f"<xml><ToUserName><![CDATA[{corp.corpid}]]></ToUserName><AgentID><![CDATA[{corp.agentid}]]></AgentID>"
        f"<Encrypt><![CDATA[{encrypted}]]></Encrypt></xml>"
    )
    return url, query, body


def _send(corp: SimCorp, xml: str) -> tuple[int | None, str]:
    url, query, body = _encrypted_post(corp, xml)
    try:
        response = requests.post(url, params=query, data=body.encode(), timeout=corp.callback_timeout,
                                 headers={"Content-Type": "text/xml", "User-Agent": "Mozilla/4.0"})
        return response.status_code, "" if response.status_code == 200 else response.text[:200]
    except requests.RequestException as exc:
        return None, f"{type(exc).__name__}: {exc}"[:500]


def deliver_due(limit: int = 50) -> int:
    corp = get_corp()
    now = timezone.now()
    # Reclaim attempts whose process died mid-send.
    stale = now - dt.timedelta(seconds=corp.callback_timeout + 10)
    SimCallback.objects.filter(status="sending", claimed_at__lt=stale).update(status="pending")
    due = list(SimCallback.objects.filter(status="pending", next_attempt_at__lte=now).order_by("id")[:limit])
    if corp.reorder:
        random.shuffle(due)
    delivered = 0
    for item in due:
        claimed = SimCallback.objects.filter(pk=item.pk, status="pending", attempts=item.attempts).update(
            status="sending", claimed_at=timezone.now()
        )
        if not claimed:
            continue  # another process (or a flush) got there first
        if corp.drop_rate and random.random() < corp.drop_rate:
            SimCallback.objects.filter(pk=item.pk).update(status="dropped")
            continue
        code, error = _send(corp, item.xml)
        attempts = item.attempts + 1
        if code == 200:
            delivered += 1
            SimCallback.objects.filter(pk=item.pk).update(
                status="delivered", attempts=attempts, last_status=code, delivered_at=timezone.now()
            )
            if corp.duplicate_rate and random.random() < corp.duplicate_rate:
                _send(corp, item.xml)
        elif attempts > corp.callback_retries:
            SimCallback.objects.filter(pk=item.pk).update(
                status="failed", attempts=attempts, last_status=code, last_error=error
            )
        else:
            SimCallback.objects.filter(pk=item.pk).update(
                status="pending", attempts=attempts, last_status=code, last_error=error,
                next_attempt_at=timezone.now() + dt.timedelta(seconds=corp.callback_retry_delay),
            )
    return delivered


def counts() -> dict:
    pending = SimCallback.objects.filter(status__in=["pending", "sending"]).count()
    return {
        "pending": pending,
        "delivered": SimCallback.objects.filter(status="delivered").count(),
        "failed": SimCallback.objects.filter(status="failed").count(),
        "dropped": SimCallback.objects.filter(status="dropped").count(),
    }


def drain(timeout: float) -> dict:
    notify()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        notify()
        current = counts()
        if current["pending"] == 0:
            return {**current, "drained": True}
        time.sleep(0.05)
    return {**counts(), "drained": False}


def verify_url(corp: SimCorp) -> dict:
    """The GET echostr check WeCom makes when the callback URL is saved."""
    url, token, aes = callback_config(corp)
    plain = secrets.token_hex(8)
    echostr = crypto.encrypt(aes, plain, corp.corpid)
    timestamp, nonce = str(int(time.time())), str(secrets.randbelow(10**10))
    params = {"msg_signature": crypto.signature(token, timestamp, nonce, echostr), "timestamp": timestamp,
              "nonce": nonce, "echostr": echostr}
    try:
        response = requests.get(url, params=params, timeout=corp.callback_timeout)
    except requests.RequestException as exc:
        return {"ok": False, "answer": None, "error": str(exc), "expected": plain}
    return {"ok": response.status_code == 200 and response.text == plain, "answer": response.text,
            "status": response.status_code, "expected": plain}
