"""The product's journey end to end, driven the way its users drive it.

Marketing staff act through the CRM's services (as the admin does); shoppers act in the simulated WeCom world
through the simulator's admin API (scan a channel QR, open links in their WeChat inbox, join a group, claim a
red packet); the cashier scans cards through the till API over HTTP. Everything between (callbacks, workers,
WeCom calls) is the product itself. Used by `manage.py simulate`, `manage.py seed_demo` and the e2e test.

This lives in `loyalty` because it is the top of the dependency chain: it may use both crm and loyalty.
"""

from __future__ import annotations

import random
import re
import time
from dataclasses import dataclass, field
from datetime import timedelta
from html import unescape

import requests
from django.conf import settings
from django.db.models import Sum
from django.utils import timezone

from crm.models import (
    CampaignRecipient,
    ConsentRecord,
    Contact,
    CustomerGroup,
    GroupMember,
    RedPacketClaim,
)
from crm.services.channels import channel_create
from crm.services.consent import contacts_consenting
from crm.services.groups import group_mark_vip, group_sync, groups_sync_all
from crm.services.redpackets import redpacket_reconcile
from crm.services.staff import staff_sync
from loyalty.models import Card, PointsLedger, Purchase
from loyalty.services import cashier_ensure, store_upsert, tiers_ensure_defaults
from loyalty.sim_admin import SimAdmin

DEMO_STAFF = [("lili", "Li Li"), ("wangwei", "Wang Wei"), ("zhangmin", "Zhang Min")]
STORE_CODE, STORE_NAME = "SH001", "Shanghai Jing'an"
CASHIER = "till-sh001"
VIP_GROUP_OWNER = "lili"
VIP_GROUP_NAME = "VIP 1"
_QR_TOKEN = re.compile(r'data-qr-token="([^"]+)"')
_CONSENT_BOX = re.compile(r'data-consent-url="([^"]+)" data-policy-version="([^"]*)"')
_SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗"
_GIVEN = ["伟", "芳", "娜", "敏", "静", "丽", "强", "磊", "洋", "艳", "杰", "娟", "涛", "明", "超", "霞", "平", "刚"]


class JourneyError(RuntimeError):
    pass


def wait_until(predicate, timeout: float, what: str, interval: float = 0.2, tick=None):
    """Poll predicate() until truthy; `tick` runs between polls (e.g. what beat would enqueue)."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise JourneyError(f"timed out after {timeout:.0f}s waiting for {what}")
        if tick:
            tick()
        time.sleep(interval)


@dataclass
class Journey:
    base_url: str  # the CRM (customer pages, till API)
    sim_url: str = ""  # the simulator, when served apart from the CRM (make run); defaults to base_url
    seed: int = 1
    timeout: float = 120.0
    rng: random.Random = field(init=False)
    sim: SimAdmin = field(init=False)
    till: requests.Session = field(init=False)
    shoppers: list[str] = field(default_factory=list)  # external_userids created by this run

    def __post_init__(self) -> None:
        self.rng = random.Random(self.seed)
        self.sim = SimAdmin(self.sim_url or self.base_url, settings.WECOM_SIM["ADMIN_KEY"])
        self.till = requests.Session()

    def clone(self) -> Journey:
        """The same journey with HTTP sessions of its own (a requests.Session per thread)."""
        other = Journey(base_url=self.base_url, sim_url=self.sim_url, seed=self.seed, timeout=self.timeout)
        other.till.headers.update(self.till.headers)
        return other

    # --- the brand's setup ------------------------------------------------------------------
    def setup_brand(self) -> None:
        """Staff exist in WeCom and in the CRM, tiers and the store exist, the till has its token, and the
        VIP group exists (in production a staff member creates it in the WeCom client)."""
        for userid, name in DEMO_STAFF:  # an upsert in the simulated directory
            self.sim.post("members", {"userid": userid, "name": name})
        staff_sync()
        tiers_ensure_defaults()
        store_upsert(code=STORE_CODE, name=STORE_NAME, city="Shanghai")
        _user, token = cashier_ensure(username=CASHIER, store_codes=[STORE_CODE])
        self.till.headers["Authorization"] = f"Token {token}"
        if not CustomerGroup.objects.filter(is_vip=True, status=CustomerGroup.Status.ACTIVE).exists():
            # A run killed between creating the group in WeCom and marking it left a "VIP 1" there: read the
            # groups WeCom lists before making another.
            groups_sync_all()
            group = CustomerGroup.objects.filter(name=VIP_GROUP_NAME, status=CustomerGroup.Status.ACTIVE).first()
            if group is None:
                chat_id = self.sim.post("groupchats", {"owner": VIP_GROUP_OWNER, "name": VIP_GROUP_NAME})["chat_id"]
                group_sync(chat_id)
                group = CustomerGroup.objects.get(chat_id=chat_id)
            group_mark_vip(group)

    def channel(self, state: str, name: str, staff_userids: list[str] | None = None) -> str:
        from crm.models import Channel

        if not Channel.objects.filter(state=state).exists():
            channel_create(
                name=name,
                state=state,
                staff_userids=staff_userids or [u for u, _ in DEMO_STAFF],
                welcome_text="欢迎加入！Open your membership card:",
            )
        return state

    # --- the simulated clock ------------------------------------------------------------------
    def clock_offset(self) -> float:
        """Seconds the simulated WeCom clock runs ahead of real time (negative: behind)."""
        return self.sim.get("clock")["now"] - time.time()

    def set_clock_offset(self, offset: float, current: float | None = None) -> float:
        """Move the simulated clock so that it runs `offset` seconds from real time; returns the new offset."""
        current = self.clock_offset() if current is None else current
        return self.sim.post("clock/advance", {"seconds": offset - current})["now"] - time.time()

    # --- shoppers -------------------------------------------------------------------------
    def add_shoppers(self, count: int, state: str) -> list[str]:
        """Shoppers scan the channel QR and add a staff member; the CRM learns of it only by callback."""
        new = []
        for _ in range(count):
            name = self.rng.choice(_SURNAMES) + "".join(self.rng.choice(_GIVEN) for _ in range(self.rng.randint(1, 2)))
            shopper = self.sim.post("shoppers", {"name": name, "gender": self.rng.choice([1, 2])})
            self.sim.post(f"shoppers/{shopper['external_userid']}/scan_contact_way", {"state": state})
            new.append(shopper["external_userid"])
        self.shoppers.extend(new)
        wait_until(
            lambda: Contact.objects.filter(external_userid__in=new).count() == len(new),
            self.timeout,
            f"{len(new)} contacts created from add_external_contact callbacks",
        )
        return new

    def inbox_links(self, eid: str, needle: str) -> list[str]:
        links = []
        for message in self.sim.get(f"shoppers/{eid}/inbox").get("messages", []):
            for attachment in message.get("attachments") or []:
                url = (attachment.get("link") or {}).get("url", "")
                if needle in url:
                    links.append(url)
            links.extend(re.findall(r"https?://\S+", message.get("text") or ""))
        return [u for u in dict.fromkeys(links) if needle in u]

    def red_packet_links(self, eid: str) -> list[str]:
        """The red-packet link of a campaign message: the pool's page for everyone (WeChat OAuth identifies the
        shopper), or a signed per-customer link where CUSTOMER_LINKS is "signed"."""
        return [u for u in self.inbox_links(eid, "/m/") if "/m/pool/" in u or "/m/rp/" in u]

    def card_page(self, eid: str) -> str:
        """The shopper taps the card link from the welcome message; the page's HTML."""
        links = wait_until(lambda: self.inbox_links(eid, "/m/card/"), self.timeout, f"welcome message for {eid}")
        return self.open_page(eid, links[0])

    def open_page(self, eid: str, url: str) -> str:
        """The shopper opens a link in their WeChat browser; the page's HTML."""
        page = self.sim.post(f"shoppers/{eid}/open_link", {"url": url, "method": "GET"})
        if page.get("status") != 200:
            raise JourneyError(f"{url} for {eid} answered {page.get('status')}")
        return page.get("body", "")

    def open_card(self, eid: str) -> str:
        """The shopper opens the card page; returns the QR token it shows."""
        return qr_token_on(self.card_page(eid), eid)

    def decide_consent(self, eid: str, page: str, **choices: bool) -> str:
        """The shopper presses the consent buttons on the card page (e.g. marketing=True); the page shown after."""
        box = _CONSENT_BOX.search(page)
        if not box:
            raise JourneyError(f"card page for {eid} shows no consent choices")
        url, version = (unescape(g) for g in box.groups())
        url = url if url.startswith("http") else f"{self.base_url}{url}"
        for purpose, granted in choices.items():
            data = {"purpose": purpose, "granted": "true" if granted else "false", "policy_version": version}
            answer = self.sim.post(f"shoppers/{eid}/open_link", {"url": url, "method": "POST", "data": data})
            if answer.get("status") != 200:
                raise JourneyError(f"consent {purpose}={granted} for {eid} answered {answer.get('status')}")
            page = answer.get("body", "")
        return page

    def till_scan(self, qr_token: str, amount_fen: int, receipt: str = "") -> dict:
        """The till posts a scan; a receipt id that was posted before is a harmless retry (same amount)."""
        receipt = receipt or f"R{self.seed}-{self.rng.randrange(10**9):09d}"
        response = self.till.post(
            f"{self.base_url}/api/loyalty/scans",
            json={
                "qr_token": qr_token,
                "receipt_id": receipt,
                "store": STORE_CODE,
                "amount_fen": amount_fen,
                "items": [{"sku": "TEA-001", "name": "Oolong tea gift box", "qty": 1, "amount_fen": amount_fen}],
            },
            timeout=30,
        )
        if response.status_code not in (200, 201):
            raise JourneyError(f"till scan answered {response.status_code}: {response.text[:300]}")
        return response.json()

    def shop(self, eids: list[str], vip_share: float = 0.4) -> list[str]:
        """Every shopper buys once; some buy enough for a VIP tier. Returns those expected to become VIP."""
        vip_points = min(t.min_points for t in _vip_tiers())
        big = []
        for eid in eids:
            page = self.card_page(eid)
            # Shoppers opt in on the card page; nothing is granted by adding staff. All take the offers (so
            # campaign figures stay comparable), about half also agree to behavioural personalisation.
            page = self.decide_consent(eid, page, marketing=True, behaviour=self.rng.random() < 0.5)
            token = qr_token_on(page, eid)
            if self.rng.random() < vip_share:
                amount = (vip_points + self.rng.randint(0, 2000)) * settings.LOYALTY_FEN_PER_POINT
                big.append(eid)
            else:
                amount = self.rng.randint(30, 800) * 100
            self.till_scan(token, amount)
        return big

    def join_vip_groups(self, eids: list[str]) -> int:
        """VIP shoppers find the invite in their inbox and scan the group QR."""
        from crm.models import GroupJoinWay

        qr_code = ""
        for eid in eids:
            # The invite carries the VIP join way's group QR; the shopper scans that.
            qr_code = qr_code or wait_until(
                lambda: (
                    GroupJoinWay.objects.filter(is_vip=True)
                    .exclude(qr_code="")
                    .values_list("qr_code", flat=True)
                    .first()
                ),
                self.timeout,
                "the VIP group join way",
            )
            links = wait_until(
                lambda e=eid, q=qr_code: self.inbox_links(e, q), self.timeout, f"VIP group invite for {eid}"
            )
            self.sim.post(f"shoppers/{eid}/join_group", {"qr_code": links[0]})
        wait_until(
            lambda: vip_members(eids) == len(eids),
            self.timeout,
            "VIP group memberships from change_external_chat",
        )
        return len(eids)

    # --- campaign -------------------------------------------------------------------------
    def campaign(self, *, budget_fen: int, packets: int, delay_seconds: float = 1.0):
        from crm.services.campaigns import campaign_create

        return campaign_create(
            name=f"VIP flash sale #{self.seed}-{int(time.time())}",
            text="双十一 VIP 专享：今晚 20:00 开抢！Tap for your red packet:",
            segment={"vip": True},
            scheduled_at=timezone.now() + timedelta(seconds=delay_seconds),
            red_packet={
                "budget_fen": budget_fen,
                "count": packets,
                "mode": "lucky",
                "expires_at": timezone.now() + timedelta(hours=24),
                "act_name": "VIP red packet",
            },
        )

    def run_campaign(self, campaign, recipients: list[str]) -> int:
        """Beat's ticks (launch due campaigns, poll results) until every recipient's message is delivered."""
        from crm.tasks.campaigns import launch_due_campaigns, poll_mass_message_results

        wait_until(lambda: timezone.now() >= campaign.scheduled_at, 30, "the campaign's scheduled time")
        launch_due_campaigns.delay()
        last_poll = [0.0]

        def beat_tick() -> None:
            if time.monotonic() - last_poll[0] > 1.0:
                last_poll[0] = time.monotonic()
                poll_mass_message_results.delay()

        delivered = CampaignRecipient.objects.filter(
            campaign=campaign, contact__external_userid__in=recipients, status=CampaignRecipient.Status.DELIVERED
        )
        wait_until(
            lambda: delivered.count() == len(recipients),
            self.timeout,
            "campaign messages delivered",
            interval=0.3,
            tick=beat_tick,
        )
        return len(recipients)

    def claim_red_packets(self, campaign, eids: list[str]) -> int:
        """Recipients tap the link in the campaign message and press Claim; payouts go through the worker."""
        claimed = 0
        for eid in eids:
            links = wait_until(lambda e=eid: self.red_packet_links(e), self.timeout, f"campaign message for {eid}")
            for _tap in range(CLAIM_TAPS):  # a page that failed to answer (WeCom or pay down a moment): tap again
                result = self.sim.post(f"shoppers/{eid}/open_link", {"url": links[0], "method": "POST", "data": {}})
                if result.get("status") == 200:
                    claimed += 1
                    break
                time.sleep(0.5)
        pool = campaign.red_packet_pool
        wait_until(
            lambda: (
                not RedPacketClaim.objects.filter(pool=pool)
                .exclude(status__in=[RedPacketClaim.Status.PAID, RedPacketClaim.Status.FAILED])
                .exists()
            ),
            self.timeout,
            "red-packet payouts",
        )
        return claimed

    # --- figures --------------------------------------------------------------------------
    def figures(self, campaign=None) -> dict:
        contacts = Contact.objects.filter(external_userid__in=self.shoppers)
        cards = Card.objects.filter(contact__in=contacts)
        out = {
            "customers": len(self.shoppers),
            "contacts": contacts.count(),
            "cards": cards.count(),
            "scans": Purchase.objects.filter(card__in=cards).count(),
            "points_credited": PointsLedger.objects.filter(card__in=cards, delta__gt=0).aggregate(s=Sum("delta"))["s"]
            or 0,
            "vip_members": vip_members(self.shoppers),
            "marketing_consents": len(marketing_consenting(self.shoppers)),
            "messages_delivered": 0,
            "red_packets_claimed": 0,
            "red_packets_paid_fen": 0,
            "reconciled": False,
        }
        if campaign is not None:
            out["messages_delivered"] = CampaignRecipient.objects.filter(
                campaign=campaign, status=CampaignRecipient.Status.DELIVERED
            ).count()
            pool = campaign.red_packet_pool
            claims = RedPacketClaim.objects.filter(pool=pool)
            out["red_packets_claimed"] = claims.count()
            out["red_packets_paid_fen"] = (
                claims.filter(status=RedPacketClaim.Status.PAID).aggregate(s=Sum("amount_fen"))["s"] or 0
            )
            reconciliation = redpacket_reconcile(pool.id)
            out["red_packet_budget_fen"] = pool.budget_fen
            out["reconciliation"] = reconciliation
            out["reconciled"] = bool(reconciliation.get("balanced"))
        return out


CLAIM_TAPS = 5  # a customer taps again when the page did not answer; the claim is once per customer anyway


def qr_token_on(page: str, eid: str) -> str:
    """The QR token a card page shows (what the till scans)."""
    match = _QR_TOKEN.search(page)
    if not match:
        raise JourneyError(f"card page for {eid} shows no QR")
    return unescape(match.group(1))


def marketing_consenting(external_userids: list[str]) -> list[str]:
    """Those of these shoppers whose marketing consent is in force (the only ones a campaign may reach)."""
    contacts = contacts_consenting(
        ConsentRecord.Purpose.MARKETING, Contact.objects.filter(external_userid__in=external_userids)
    )
    found = set(contacts.values_list("external_userid", flat=True))
    return [eid for eid in external_userids if eid in found]


def vip_members(external_userids: list[str]) -> int:
    return (
        GroupMember.objects.filter(
            group__is_vip=True, contact__external_userid__in=external_userids, left_at__isnull=True
        )
        .values("contact")
        .distinct()
        .count()
    )


def _vip_tiers():
    from loyalty.models import Tier

    tiers = list(Tier.objects.filter(is_vip=True))
    if not tiers:
        raise JourneyError("no VIP tier is configured")
    return tiers


# What `simulate --faults RATE` injects: WeCom's API (every cgi-bin path, the OAuth code exchange) answers with
# one of these kinds, the pay API with one of its own (SYSTEMERROR there comes *after* the packet was paid).
API_FAULT_KINDS = ("45009", "42001", "5xx", "timeout", "slow")
PAY_FAULT_KINDS = ("5xx", "timeout", "slow", "SYSTEMERROR")


def inject_faults(sim: SimAdmin, rate: float, client_timeout: float) -> list[dict]:
    """About `rate` of WeCom and pay calls fail, split evenly between the kinds. A "timeout" answers only after
    the client gave up (client_timeout, seconds); a "slow" one stays well inside it."""
    sim.delete("faults")
    timeout_ms = int(client_timeout * 1000) + 500
    slow_ms = max(50, int(client_timeout * 400))
    delays = {"timeout": timeout_ms, "slow": slow_ms}
    rules = []
    for path, kinds in (("*", API_FAULT_KINDS), ("mch/*", PAY_FAULT_KINDS)):
        for kind in kinds:
            body = {"path": path, "kind": kind, "rate": rate / len(kinds), "delay_ms": delays.get(kind)}
            rules.append(sim.post("faults", body))
    return rules


def run(base_url: str, customers: int, seed: int, timeout: float = 120.0, faults: float = 0.0) -> dict:
    """The whole journey for `customers` new shoppers; returns the figures."""
    journey = Journey(base_url=base_url, seed=seed, timeout=timeout)
    if faults:
        inject_faults(journey.sim, faults, float(settings.WECOM_HTTP_TIMEOUT))
    journey.setup_brand()
    state = journey.channel(f"sim-{seed}-{int(time.time()) % 10**8}", f"Simulated store #{seed}")
    eids = journey.add_shoppers(customers, state)
    vips = journey.shop(eids)
    journey.join_vip_groups(vips)
    campaign = None
    recipients = marketing_consenting(vips)  # the campaign reaches only VIPs who agreed to offers
    if recipients:
        # One packet per recipient, every one claimed: what is paid is the whole budget, the same in every run of a
        # seed with or without faults (the lucky split itself is drawn with a secure RNG, by design not from a seed).
        packets = len(recipients)
        campaign = journey.campaign(budget_fen=1288 * packets, packets=packets)
        journey.run_campaign(campaign, recipients)
        journey.claim_red_packets(campaign, recipients)
    return journey.figures(campaign)


__all__ = ["Journey", "JourneyError", "qr_token_on", "run"]
