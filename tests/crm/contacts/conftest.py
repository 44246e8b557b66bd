"""Fixtures for the contacts domain: the simulator's admin API over HTTP, a reset world with staff."""

from __future__ import annotations

import time

import pytest
import requests
from django.conf import settings

QUEUES = ("callbacks", "pushes", "redpackets", "default")


class Sim:
    """The simulator's admin API (/wecom-sim/admin/), over real HTTP."""

    def __init__(self, base: str) -> None:
        self.base = f"{base}/wecom-sim/admin/"
        self.http = requests.Session()
        self.http.headers["X-Sim-Admin-Key"] = settings.WECOM_SIM["ADMIN_KEY"]

    def call(self, method: str, path: str, body: dict | None = None, expect: int | None = None) -> dict:
        response = self.http.request(method, self.base + path, json=body, timeout=30)
        if expect is not None:
            assert response.status_code == expect, response.text
        else:
            assert response.status_code < 400, f"{method} {path}: {response.status_code} {response.text[:300]}"
        return response.json() if response.content else {}

    def post(self, path: str, body: dict | None = None, **kw) -> dict:
        return self.call("POST", path, body or {}, **kw)

    def get(self, path: str) -> dict:
        return self.call("GET", path)

    # the world
    def member(self, userid: str, name: str = "") -> dict:
        return self.post("members", {"userid": userid, "name": name or userid.title()})

    def shopper(self, name: str, **fields) -> str:
        return self.post("shoppers", {"name": name, **fields})["external_userid"]

    def scan(self, eid: str, state: str) -> dict:
        return self.post(f"shoppers/{eid}/scan_contact_way", {"state": state})

    def inbox(self, eid: str) -> list[dict]:
        return self.get(f"shoppers/{eid}/inbox")["messages"]

    def drain(self, timeout: float = 10) -> dict:
        return self.post("callbacks/drain", {"timeout": timeout})

    def advance(self, seconds: float) -> dict:
        return self.post("clock/advance", {"seconds": seconds})


def _quiesce(sim: Sim, redis_client, with_worker: bool, timeout: float = 20) -> None:
    """Let the world go quiet before the database is flushed: callbacks delivered, the worker's queues empty and
    nothing in flight, and the simulator's delivery thread stopped (a transaction still open in any of them
    deadlocks the flush on PostgreSQL)."""
    settle(sim, redis_client, with_worker, timeout)
    from wecom_sim import delivery

    delivery.stop()


def settle(sim: Sim, redis_client, with_worker: bool = True, timeout: float = 20) -> None:
    """Every callback the simulator owes delivered, and the worker done with all it was given."""
    try:
        sim.drain(timeout=10)
    except AssertionError:
        pass
    deadline = time.monotonic() + (timeout if with_worker else 0)
    while time.monotonic() < deadline:
        # Deliveries in flight: recent entries only (a killed worker's message lingers for the visibility timeout).
        in_flight = redis_client.zcount("unacked_index", time.time() - 60, "+inf")
        if not sum(redis_client.llen(q) for q in QUEUES) + in_flight:
            break
        time.sleep(0.1)
    if with_worker:
        time.sleep(0.3)  # the last task's transaction commits after its ack bookkeeping


@pytest.fixture
def sim(live_stack, redis_client, request) -> Sim:
    s = Sim(live_stack)
    s.post("reset")
    yield s
    workers = {"celery_worker", "worker_factory", "_session_worker"}
    _quiesce(s, redis_client, with_worker=bool(workers & set(request.fixturenames)))


@pytest.fixture
def staffed(sim):
    """Three members with customer contact in WeCom, synced into Staff."""
    from crm.services.staff import staff_sync

    for userid, name in (("alice", "Alice"), ("bob", "Bob"), ("carol", "Carol")):
        sim.member(userid, name)
    staff_sync()
    return sim
