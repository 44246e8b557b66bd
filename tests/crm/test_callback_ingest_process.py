"""The callback ingest server as production runs it (gunicorn with uvicorn workers, a child process), stopped in
the middle of a burst: whatever it acknowledged is stored, and WeCom's redelivery of the rest gets everything in
exactly once."""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests

from crm.embedded_redis import die_with_parent
from crm.localstack import ROOT, child_env
from crm.models import CallbackEvent
from tests.conftest import free_port, wait_for
from tests.crm.wecom.callback_helpers import event_xml, signed_post

GUNICORN = str(Path(sys.executable).parent / "gunicorn")


def _start(env: dict, port: int, log) -> subprocess.Popen:
    proc = subprocess.Popen(
        [GUNICORN, "-c", "python:crm.gunicorn_ingest_conf", "crm.ingest", "-b", f"127.0.0.1:{port}",
         "--workers", "1", "--graceful-timeout", "10"],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
        preexec_fn=die_with_parent,  # a failed or killed test run leaves no server behind
    )  # fmt: skip

    def healthy() -> bool:
        assert proc.poll() is None, f"the ingest server exited with {proc.returncode}"
        try:
            return requests.get(f"http://127.0.0.1:{port}/healthz", timeout=5).status_code == 200
        except requests.RequestException:  # refused while it boots, or slow to answer on a loaded machine
            return False

    wait_for(healthy, timeout=30, message="the ingest server to come up")
    return proc


def _probe(i: int) -> str:
    return event_xml(Event="crm_test_probe", ChangeType="restart", ExternalUserID=f"wmrestart{i:05d}",
                     State=None, WelcomeCode=None)  # fmt: skip


@pytest.mark.timeout(180)
def test_a_stop_mid_burst_loses_nothing_it_acknowledged(live_stack, tmp_path):
    env = child_env(live_stack, LOG_LEVEL="WARNING")
    port = free_port()
    url = f"http://127.0.0.1:{port}/wecom/callback"
    xmls = [_probe(i) for i in range(300)]
    answered = threading.Semaphore(0)

    def send(i: int) -> tuple[int, int]:
        params, body = signed_post(xmls[i])
        try:
            status = requests.post(url, params=params, data=body, timeout=10).status_code
        except requests.RequestException:
            status = 0  # refused or cut off: WeCom will deliver it again
        answered.release()
        return i, status

    with open(tmp_path / "ingest.log", "wb") as log:
        proc = _start(env, port, log)
        try:

            def stop_after_first_hundred() -> None:
                for _ in range(100):
                    answered.acquire(timeout=30)
                proc.send_signal(signal.SIGTERM)  # a deploy: gunicorn stops its workers gracefully

            stopper = threading.Thread(target=stop_after_first_hundred)
            stopper.start()
            with ThreadPoolExecutor(16) as pool:
                results = list(pool.map(send, range(300)))
            stopper.join(30)
            assert proc.wait(30) == 0
        finally:
            if proc.poll() is None:
                proc.kill()

        acknowledged = {i for i, status in results if status == 200}
        assert 100 <= len(acknowledged) < 300  # the stop came mid-burst
        assert {status for _, status in results} <= {0, 200, 503}
        stored = set(CallbackEvent.objects.values_list("payload__ExternalUserID", flat=True))
        assert {f"wmrestart{i:05d}" for i in acknowledged} <= stored  # acknowledged means stored

        # The server is back; WeCom delivers again what it got no 200 for (signed anew).
        proc = _start(env, port, log)
        try:
            retried = list(ThreadPoolExecutor(16).map(send, sorted(set(range(300)) - acknowledged)))
            assert {status for _, status in retried} <= {200}
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(30)
    assert CallbackEvent.objects.count() == 300
    assert set(CallbackEvent.objects.values_list("payload__ExternalUserID", flat=True)) == {
        f"wmrestart{i:05d}" for i in range(300)
    }
