"""A deterministic scenario engine: from a seed, shoppers add staff, join groups, leave, delete staff,
refuse transfers, open the links they received (real HTTP, as their WeChat browser) and claim red packets.

Used by tests, the lead's `simulate` command (through admin/scenario/run), benchmarks and the Django admin."""

from __future__ import annotations

import hashlib
import random
from html.parser import HTMLParser
from urllib.parse import urljoin

from wecom_sim import world
from wecom_sim.corp import get_corp
from wecom_sim.models import SimCorp, SimShopper

SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗"
GIVEN = "伟芳娜敏静丽强磊洋艳勇军杰娟涛明超秀霞平刚桂"


class _Forms(HTMLParser):
    """Collects <form action method> and its named inputs, as a browser would submit them."""

    def __init__(self) -> None:
        super().__init__()
        self.forms: list[dict] = []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "form":
            self.forms.append({"action": attrs.get("action") or "", "method": (attrs.get("method") or "GET").upper(),
                               "data": {}})
        elif tag in ("input", "button", "textarea", "select") and self.forms and attrs.get("name"):
            if tag == "input" and attrs.get("type") in ("checkbox", "radio") and "checked" not in attrs:
                return
            self.forms[-1]["data"][attrs["name"]] = attrs.get("value") or ""


def page_forms(html: str) -> list[dict]:
    parser = _Forms()
    parser.feed(html)
    return parser.forms


class Scenario:
    """Drives the simulated world from a seed; the same seed gives the same people and the same choices."""

    def __init__(self, seed: int = 1, corp: SimCorp | None = None) -> None:
        self.seed = seed
        self.rng = random.Random(seed)
        self.corp = corp or get_corp()

    def shopper(self, index: int) -> SimShopper:
        digest = hashlib.sha1(f"{self.corp.corpid}:{self.seed}:{index}".encode()).hexdigest()
        name = SURNAMES[int(digest[:4], 16) % len(SURNAMES)] + GIVEN[int(digest[4:8], 16) % len(GIVEN)]
        return world.create_shopper(self.corp, name, gender=1 + int(digest[8], 16) % 2,
                                    unionid="o" + digest[10:37], external_userid="wm" + digest[:30])

    def run(self, customers: int = 10, state: str | None = None, config_id: str | None = None,
            join_state: str | None = None, join_config_id: str | None = None, delete_staff_rate: float = 0.0,
            leave_rate: float = 0.0, open_links: bool = False, claim: bool = False, start: int = 0) -> dict:
        added, joined, deleted, left, opened, claims, eids = [], [], [], [], [], [], []
        for index in range(start, start + customers):
            shopper = self.shopper(index)
            eids.append(shopper.external_userid)
            if state or config_id:
                added.append(world.scan_contact_way(self.corp, shopper, config_id, state))
            if join_state or join_config_id:
                chat = world.join_group(self.corp, shopper, join_config_id, join_state)
                joined.append(chat["chat_id"])
                if self.rng.random() < leave_rate:
                    world.leave_group(self.corp, shopper, chat["chat_id"])
                    left.append(shopper.external_userid)
            if added and self.rng.random() < delete_staff_rate:
                world.delete_staff(self.corp, shopper, added[-1]["userid"])
                deleted.append(shopper.external_userid)
            if open_links or claim:
                for link in self.inbox_links(shopper):
                    opened.append(self.open(shopper, link))
                    if claim:
                        claims.extend(self.submit_forms(shopper, link, opened[-1]))
        return {"external_userids": eids, "added": added, "joined": joined, "deleted_staff": deleted, "left": left,
                "opened": [{"url": o["url"], "status": o["status"]} for o in opened],
                "claims": [{"url": c["url"], "status": c["status"]} for c in claims]}

    def inbox_links(self, shopper: SimShopper) -> list[str]:
        links = []
        for message in shopper.inbox.order_by("id"):
            links += [a["link"]["url"] for a in message.attachments if a.get("msgtype") == "link" and a.get("link")]
        return links

    def open(self, shopper: SimShopper, url: str, method: str = "GET", data: dict | None = None) -> dict:
        from wecom_sim.admin_api import open_link

        return open_link(shopper.external_userid, url, method, data)

    def submit_forms(self, shopper: SimShopper, url: str, page: dict) -> list[dict]:
        """Submit the page's POST forms (e.g. "claim the red packet"), as the shopper tapping the button."""
        results = []
        if "html" not in page.get("content_type", ""):
            return results
        for form in page_forms(page["body"]):
            if form["method"] == "POST":
                target = urljoin(page.get("url") or url, form["action"] or url)
                results.append(self.open(shopper, target, "POST", form["data"]))
        return results
