"""SimDriver: a small HTTP client for the simulator's admin API (tests, benchmarks, orchestration).

The CRM must not import this; it reaches the simulator over HTTP only."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

import requests


class SimAdminError(Exception):
    def __init__(self, status: int, body: Any) -> None:
        super().__init__(f"{status}: {body}")
        self.status, self.body = status, body


class SimDriver:
    def __init__(self, base_url: str, admin_key: str = "sim-admin", timeout: float = 30.0) -> None:
        self.base = base_url.rstrip("/")
        self.admin_key = admin_key
        self.timeout = timeout
        self.headers = {"X-Sim-Admin-Key": admin_key}

    # --- plumbing -------------------------------------------------------------------------------
    def call(self, method: str, path: str, json: dict | None = None, timeout: float | None = None) -> Any:
        # A fresh connection per call: keep-alive against Django's dev/live server adds ~40 ms (delayed ACK).
        response = requests.request(method, f"{self.base}/wecom-sim/admin/{path.lstrip('/')}", json=json,
                                    headers=self.headers, timeout=timeout or self.timeout)
        try:
            body = response.json() if response.content else {}
        except ValueError:
            body = {"error": {"code": "not_json", "message": response.text[:500], "field": None}}
        if response.status_code >= 400:
            raise SimAdminError(response.status_code, body)
        return body

    def cgi(self, api: str, token: str | None = None, json: dict | None = None, **query) -> dict:
        """Call a WeCom endpoint (GET without json, POST with it)."""
        if token:
            query["access_token"] = token
        url = f"{self.base}/wecom-sim/cgi-bin/{api}"
        if json is None:
            response = requests.get(url, params=query, timeout=self.timeout)
        else:
            response = requests.post(url, params=query, json=json, timeout=self.timeout)
        return response.json()

    def token(self) -> str:
        corp = self.corp()
        return self.cgi("gettoken", corpid=corp["corpid"], corpsecret=corp["corpsecret"])["access_token"]

    # --- world ----------------------------------------------------------------------------------
    def reset(self) -> dict:
        return self.call("POST", "reset")

    def corp(self) -> dict:
        return self.call("GET", "corp")

    def configure(self, **settings: Any) -> dict:
        return self.call("PATCH", "corp", settings)

    def add_member(self, userid: str, name: str = "", has_customer_contact: bool = True,
                   activated: bool = True) -> dict:
        return self.call("POST", "members", {"userid": userid, "name": name or userid,
                                             "has_customer_contact": has_customer_contact, "activated": activated})

    def resign(self, userid: str) -> dict:
        return self.call("POST", f"members/{userid}/resign")

    def member_delete_customer(self, userid: str, external_userid: str) -> dict:
        return self.call("POST", f"members/{userid}/delete_customer", {"external_userid": external_userid})

    def member_confirm_add(self, userid: str, external_userid: str) -> dict:
        return self.call("POST", f"members/{userid}/confirm_add", {"external_userid": external_userid})

    def member_edit_customer(self, userid: str, external_userid: str, **changes: Any) -> dict:
        return self.call("POST", f"members/{userid}/edit_customer", {"external_userid": external_userid, **changes})

    def console_add_tags(self, group_name: str, names: list[str]) -> dict:
        return self.call("POST", "corp_tags", {"group_name": group_name, "tag": names})

    def console_delete_tag(self, tag_or_group_id: str) -> dict:
        return self.call("POST", f"corp_tags/{tag_or_group_id}/delete")

    def dismiss_groupchat(self, chat_id: str) -> dict:
        return self.call("POST", f"groupchats/{chat_id}/dismiss")

    def add_shopper(self, name: str, **fields: Any) -> dict:
        return self.call("POST", "shoppers", {"name": name, **fields})

    def scan_contact_way(self, eid: str, config_id: str | None = None, state: str | None = None) -> dict:
        return self.call("POST", f"shoppers/{eid}/scan_contact_way", {"config_id": config_id, "state": state})

    def delete_staff(self, eid: str, userid: str) -> dict:
        return self.call("POST", f"shoppers/{eid}/delete_staff", {"userid": userid})

    def refuse_transfer(self, eid: str) -> dict:
        return self.call("POST", f"shoppers/{eid}/refuse_transfer", {})

    def join_group(self, eid: str, config_id: str | None = None, state: str | None = None,
                   qr_code: str | None = None) -> dict:
        return self.call("POST", f"shoppers/{eid}/join_group",
                         {"config_id": config_id, "state": state, "qr_code": qr_code})

    def leave_group(self, eid: str, chat_id: str) -> dict:
        return self.call("POST", f"shoppers/{eid}/leave_group", {"chat_id": chat_id})

    def inbox(self, eid: str) -> list[dict]:
        return self.call("GET", f"shoppers/{eid}/inbox")["messages"]

    def open_link(self, eid: str, url: str, method: str = "GET", data: dict | None = None) -> dict:
        return self.call("POST", f"shoppers/{eid}/open_link", {"url": url, "method": method, "data": data})

    def create_groupchat(self, owner: str, name: str = "") -> dict:
        return self.call("POST", "groupchats", {"owner": owner, "name": name})

    def confirm_groupmsg(self, msgid: str, userids: list[str] | None = None) -> dict:
        return self.call("POST", f"groupmsg/{msgid}/confirm", {"userids": userids} if userids else {})

    # --- clock, faults, tokens, stats, callbacks --------------------------------------------------
    def deliveries(self, ref: list[str] | str | None = None, text: str | None = None, since: float | None = None,
                   kind: str | None = None) -> dict:
        """{delivered, shoppers, duplicates} of the inbox messages matching (admin/deliveries)."""
        query = {"ref": ",".join(ref) if isinstance(ref, list) else ref, "text": text, "since": since, "kind": kind}
        return self.call("GET", "deliveries?" + urlencode({k: v for k, v in query.items() if v is not None}))

    def clock(self) -> float:
        return self.call("GET", "clock")["now"]

    def advance(self, seconds: float) -> float:
        return self.call("POST", "clock/advance", {"seconds": seconds})["now"]

    def fault(self, path: str, kind: str, rate: float | None = None, count: int | None = None,
              delay_ms: int | None = None) -> dict:
        body = {"path": path, "kind": kind, "rate": rate, "count": count, "delay_ms": delay_ms}
        return self.call("POST", "faults", {k: v for k, v in body.items() if v is not None})

    def clear_faults(self) -> dict:
        return self.call("DELETE", "faults")

    def revoke_tokens(self) -> dict:
        return self.call("POST", "tokens/revoke")

    def stats(self) -> dict:
        return self.call("GET", "stats")

    def drain(self, timeout: float = 10.0) -> dict:
        return self.call("POST", "callbacks/drain", {"timeout": timeout}, timeout=timeout + 10)

    def callbacks(self) -> list[dict]:
        return self.call("GET", "callbacks")["callbacks"]

    def verify_url(self) -> dict:
        return self.call("POST", "callbacks/verify_url")

    def run_scenario(self, seed: int, customers: int, state: str | None = None, **options: Any) -> dict:
        return self.call("POST", "scenario/run", {"seed": seed, "customers": customers, "state": state, **options},
                         timeout=max(self.timeout, 300))

    def redpacks(self) -> dict:
        return self.call("GET", "pay/redpacks")

    def receive_redpack(self, billno: str) -> dict:
        return self.call("POST", f"pay/redpacks/{billno}/receive")
