"""Driving the WeCom simulator's admin API over HTTP (the CRM never imports the simulator)."""

from __future__ import annotations

import requests
from django.conf import settings


class SimAdmin:
    """`POST/GET/PATCH/DELETE <base>/wecom-sim/admin/<path>` with the admin key; raises on non-2xx."""

    def __init__(self, base_url: str) -> None:
        self.base = f"{base_url}/wecom-sim/admin/"
        self.session = requests.Session()
        self.session.headers["X-Sim-Admin-Key"] = settings.WECOM_SIM["ADMIN_KEY"]

    def call(self, method: str, path: str, json: dict | None = None, timeout: float = 30) -> dict:
        response = self.session.request(method, self.base + path, json=json, timeout=timeout)
        assert response.ok, f"{method} {path}: {response.status_code} {response.text[:300]}"
        return response.json()

    def post(self, path: str, json: dict | None = None, **kw) -> dict:
        return self.call("POST", path, json or {}, **kw)

    def get(self, path: str) -> dict:
        return self.call("GET", path)

    def patch(self, path: str, json: dict) -> dict:
        return self.call("PATCH", path, json)

    def delete(self, path: str) -> dict:
        return self.call("DELETE", path)

    def reset(self) -> dict:
        return self.post("reset")

    def stats(self) -> dict:
        return self.get("stats")

    def fault(self, path: str, kind: str, **kw) -> dict:
        return self.post("faults", {"path": path, "kind": kind, **kw})
