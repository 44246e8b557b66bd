"""The callback ingest server (crm/api/callback_ingest.py) over real HTTP: a uvicorn server on a loopback port,
the real database and Redis, real crypto, and a real Celery worker where processing is part of the claim."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from types import SimpleNamespace

import pytest
import requests
import uvicorn
from django.db import OperationalError, connection

from crm.api.callback_ingest import CallbackIngestApp
from crm.models import CallbackEvent
from crm.services.callbacks import callbacks_store
from tests.conftest import free_port, wait_for
from tests.crm.wecom.callback_helpers import event_xml, signed_get, signed_post


@contextmanager
def _served(app: CallbackIngestApp) -> Iterator[SimpleNamespace]:
    """The app served by uvicorn in this process (so it uses the test database), stopped on the way out."""
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, lifespan="on", log_level="warning"))
    thread = threading.Thread(target=server.run, name="ingest-server", daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: server.started, timeout=10, message="the ingest server to start")
        yield SimpleNamespace(url=url, app=app, callback=f"{url}/wecom/callback")
    finally:
        server.should_exit = True
        thread.join(15)
    assert not app.writer.alive, "the writer outlived the server (its connection would block the test database)"


@pytest.fixture
def ingest(live_stack):
    with _served(CallbackIngestApp()) as served:
        yield served


def _probe(i: int, created: int | None = None) -> str:
    # An event type no handler knows: applied as "ignored", which keeps these tests about delivery.
    return event_xml(Event="crm_test_probe", ChangeType="ingest", CreateTime=str(created or int(time.time())),
                     ExternalUserID=f"wmingest{i:05d}", State=None, WelcomeCode=None)  # fmt: skip


def test_url_verification_refusals_and_other_paths(ingest):
    verified = requests.get(ingest.callback, params=signed_get("6214872163829459327"), timeout=10)
    assert verified.status_code == 200 and verified.content == b"6214872163829459327"

    forged = signed_get("1")
    forged["msg_signature"] = "0" * 40
    refused = requests.get(ingest.callback, params=forged, timeout=10)
    assert refused.status_code == 403 and refused.json()["error"]["code"] == "bad_signature"

    params, body = signed_post(_probe(1))
    tampered = body.replace(b"<Encrypt><![CDATA[", b"<Encrypt><![CDATA[A")
    assert requests.post(ingest.callback, params=params, data=tampered, timeout=10).status_code in (400, 403)
    stale_params, stale_body = signed_post(_probe(2), timestamp=int(time.time()) - 3600)
    stale = requests.post(ingest.callback, params=stale_params, data=stale_body, timeout=10)
    assert stale.status_code == 403 and stale.json()["error"]["code"] == "stale"
    foreign = requests.post(ingest.callback, **_as_kwargs(signed_post(_probe(3), receive_id="wwforeign00000")))
    assert foreign.status_code == 403 and foreign.json()["error"]["code"] == "bad_receiveid"
    missing = requests.post(ingest.callback, params={"timestamp": "1"}, data=b"<xml/>", timeout=10)
    assert missing.status_code == 400 and "msg_signature" in missing.json()["error"]["message"]
    huge = requests.post(ingest.callback, params=params, data=b"x" * (300 * 1024), timeout=10)
    assert huge.status_code == 413 and huge.json()["error"]["code"] == "too_large"

    put = requests.put(ingest.callback, timeout=10)
    assert put.status_code == 405 and put.headers["allow"] == "GET, POST"
    assert requests.get(f"{ingest.url}/admin/", timeout=10).status_code == 404
    health = requests.get(f"{ingest.url}/healthz", timeout=10)
    assert health.status_code == 200 and health.json()["ok"] is True
    assert health.json()["checks"]["writer"]["groups"] == 0  # nothing refused reached the writer
    assert not CallbackEvent.objects.exists()  # nothing refused was stored


def _as_kwargs(signed: tuple[dict, bytes]) -> dict:
    params, body = signed
    return {"params": params, "data": body, "timeout": 10}


def test_an_acknowledged_callback_is_already_stored(ingest):
    for i in range(5):
        answer = requests.post(ingest.callback, **_as_kwargs(signed_post(_probe(i))))
        assert answer.status_code == 200 and answer.content == b""
        # No waiting: the 200 is only sent once the row is committed.
        event = CallbackEvent.objects.get(payload__ExternalUserID=f"wmingest{i:05d}")
        assert event.status in ("received", "routed", "applied") and event.nonce


def test_a_burst_with_redeliveries_and_replays_is_stored_once_and_processed_once(ingest, celery_worker):
    created = int(time.time())
    xmls = [_probe(i, created) for i in range(300)]
    originals = [signed_post(xml) for xml in xmls]
    redeliveries = [signed_post(xml) for xml in xmls[:40]]  # WeCom's retry: same event, newly signed
    replays = originals[100:120]  # the very same signed request again: an attacker's replay
    requests_ = originals + redeliveries + replays
    session = requests.Session()

    def send(signed: tuple[dict, bytes]) -> tuple[int, str, float]:
        started = time.monotonic()
        answer = session.post(ingest.callback, **_as_kwargs(signed))
        code = answer.json()["error"]["code"] if answer.status_code != 200 else ""
        return answer.status_code, code, time.monotonic() - started

    with ThreadPoolExecutor(32) as pool:
        results = list(pool.map(send, requests_))
    assert max(elapsed for *_, elapsed in results) < 5  # well within WeCom's 5 s
    refused = [(status, code) for status, code, _ in results if status != 200]
    assert refused == [(403, "replayed")] * 20  # one copy of each replayed pair, whichever came second
    stored = set(CallbackEvent.objects.values_list("payload__ExternalUserID", flat=True))
    assert stored == {f"wmingest{i:05d}" for i in range(300)}
    assert CallbackEvent.objects.count() == 300
    assert ingest.app.writer.largest_group > 1  # concurrent callbacks shared commits

    wait_for(lambda: CallbackEvent.objects.filter(status="applied").count() == 300, timeout=60,
             message="every stored callback processed by the worker")  # fmt: skip
    assert set(CallbackEvent.objects.values_list("attempts", flat=True)) == {1}


def test_storage_failure_answers_retry_and_the_retry_gets_through(live_stack):
    failures = {"left": 2}

    def flaky_store(opened):
        if failures["left"]:
            failures["left"] -= 1
            raise OperationalError("server closed the connection unexpectedly")
        return callbacks_store(opened)

    with _served(CallbackIngestApp(store=flaky_store)) as ingest:
        signed = signed_post(_probe(7))
        # The writer tries twice (the second time on a new connection); both fail: not acknowledged.
        first = requests.post(ingest.callback, **_as_kwargs(signed))
        assert first.status_code == 503 and first.json()["error"]["code"] == "unavailable"
        assert not CallbackEvent.objects.exists()
        # WeCom retries the very same request: the replay guard never saw it, so it is stored now.
        again = requests.post(ingest.callback, **_as_kwargs(signed))
        assert again.status_code == 200
        assert CallbackEvent.objects.count() == 1


@pytest.mark.skipif(connection.vendor != "postgresql", reason="terminates a PostgreSQL backend")
def test_a_lost_database_connection_is_replaced_without_failing_a_callback(ingest):
    assert requests.post(ingest.callback, **_as_kwargs(signed_post(_probe(1)))).status_code == 200
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid() "
            "AND query LIKE 'INSERT INTO \"crm_callbackevent\"%%'"
        )
        (writer_pid,) = cursor.fetchone()
        cursor.execute("SELECT pg_terminate_backend(%s)", [writer_pid])
    answer = requests.post(ingest.callback, **_as_kwargs(signed_post(_probe(2))))
    assert answer.status_code == 200
    assert CallbackEvent.objects.count() == 2
