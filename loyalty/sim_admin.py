"""A small HTTP client for the simulator's admin API (/wecom-sim/admin/).

The simulated world (staff, shoppers, their WeChat inboxes and browsers) is driven only over HTTP, like
any other outside system; nothing here imports the simulator.
"""

from __future__ import annotations

import requests


class SimAdminError(RuntimeError):
    pass


class SimAdmin:
    def __init__(self, base_url: str, admin_key: str, timeout: float = 30) -> None:
        self.base = base_url.rstrip("/") + "/wecom-sim/admin/"
        self.session = requests.Session()
        self.session.headers["X-Sim-Admin-Key"] = admin_key
        self.timeout = timeout

    def _call(self, method: str, path: str, body: dict | None = None) -> dict:
        response = self.session.request(method, self.base + path.lstrip("/"), json=body, timeout=self.timeout)
        if response.status_code >= 400:
            raise SimAdminError(f"{method} {path} -> {response.status_code}: {response.text[:300]}")
        return response.json() if response.content else {}

    def get(self, path: str) -> dict:
        return self._call("GET", path)

    def post(self, path: str, body: dict | None = None) -> dict:
        return self._call("POST", path, body or {})

    def delete(self, path: str) -> dict:
        return self._call("DELETE", path)

    def patch(self, path: str, body: dict) -> dict:
        return self._call("PATCH", path, body)
