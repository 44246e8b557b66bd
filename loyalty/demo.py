"""The demo data of `make run` as a target state: `DemoSeed.converge()` brings the world to it from wherever a
previous (perhaps killed) run left it.

The demo is a fixed plan: N shoppers with stable external_userids, each with the channel and day they added the
brand, their consent choices and their receipts. Every step looks at what is already there (in the CRM, or in
WeCom when the CRM may not have heard yet) and does only what is missing, the way the product's users would:
shoppers scan channel QRs, open links and press buttons in the simulated WeChat, the till posts scans, marketing
schedules campaigns through the services. Nothing is written around the services.

Adds are spread over the last 30 days by moving the simulator's clock back (WeCom stamps the add, its callback
and the follow relation's createtime with it), newest first, so the clock only ever goes back while welcome
codes are in flight and none of them expires on the way; the clock is put back afterwards."""

from __future__ import annotations

import hashlib
import logging
import random
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

from django.db import connection
from django.db.models import Q
from django.utils import timezone

from crm.models import (
    Campaign,
    CampaignRecipient,
    Channel,
    ConsentRecord,
    Contact,
    FollowRelation,
    GroupJoinWay,
    GroupMember,
    RedPacketClaim,
    VipInvite,
    WelcomeMessage,
)
from crm.services.contacts import GONE_ERRCODES, contact_refresh
from crm.services.customer_links import card_url
from crm.wecom.client import get_client
from crm.wecom.errors import WeComError
from loyalty.journey import DEMO_STAFF, VIP_GROUP_OWNER, Journey, JourneyError, qr_token_on, wait_until
from loyalty.models import Purchase, TierChange
from loyalty.sim_admin import SimAdminError

logger = logging.getLogger(__name__)

SHANGHAI = ZoneInfo("Asia/Shanghai")
DEMO_SEED = 2026
DEMO_DAYS = 30
DEMO_CUSTOMERS = 48
FINISHED_CAMPAIGN = "Demo: Double 12 warm-up for VIPs"
TONIGHT_CAMPAIGN = "Demo: VIP evening flash sale"
# How long a step waits on in-flight work (a welcome being sent, a VIP invite) before taking the other way.
GRACE_SECONDS = 20.0
# Shoppers visiting their card page at the same time (each a few HTTP round trips through the simulator).
CARD_VISITS_AT_ONCE = 4


@dataclass(frozen=True)
class DemoChannel:
    state: str
    name: str
    staff: tuple[str, ...]
    weight: int
    recent_only: bool = False  # a campaign channel that opened in the last week


CHANNELS = (
    DemoChannel("store-sh-001", "Shanghai Jing'an store", tuple(u for u, _ in DEMO_STAFF), 4),
    DemoChannel("store-bj-001", "Beijing Sanlitun store", ("wangwei", "zhangmin"), 3),
    DemoChannel("article-tea-guide", "WeChat article: autumn tea guide", ("lili",), 2),
    DemoChannel("live-double12", "Live stream: Double 12 preview", ("zhangmin", "lili"), 3, recent_only=True),
)

_SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗"
_GIVEN = "伟芳娜敏静丽强磊洋艳杰娟涛明超霞平刚"


@dataclass(frozen=True)
class DemoShopper:
    index: int
    external_userid: str
    name: str
    gender: int
    state: str
    days_ago: int
    seconds_into_day: int  # Shanghai time of day of the add
    amounts_fen: tuple[int, ...]  # one receipt each
    marketing: bool  # grants offers on the card page (else declines)
    behaviour: bool  # also grants behavioural personalisation
    vip: bool
    claims: bool  # taps the red packet of the finished campaign
    leaves_after_days: int | None = None  # deletes the staff member this many days after adding (never opens the card)

    def receipt(self, k: int) -> str:
        return f"DEMO-{self.index:03d}-{k + 1}"

    def added_at(self, now: datetime) -> datetime:
        """When this shopper adds the brand: days_ago days before now, at their time of day (before now)."""
        today = now.astimezone(SHANGHAI).replace(hour=0, minute=0, second=0, microsecond=0)
        moment = today - timedelta(days=self.days_ago) + timedelta(seconds=self.seconds_into_day)
        latest = now - timedelta(minutes=2)
        return moment if moment <= latest else latest - timedelta(seconds=(self.index * 613) % 5400)

    def left_at(self, now: datetime) -> datetime:
        added = self.added_at(now)
        return min(added + timedelta(days=self.leaves_after_days or 0, hours=2), now - timedelta(minutes=1))


def demo_plan(count: int = DEMO_CUSTOMERS, seed: int = DEMO_SEED) -> list[DemoShopper]:
    """The demo's shoppers: the same every run (ids, days, receipts), so a re-run finds the ones it made."""
    rng = random.Random(seed)
    plan = []
    for i in range(count):
        # Adds grow towards today: position i of count, bent so that recent days hold more of them.
        days_ago = min(DEMO_DAYS - 1, int(DEMO_DAYS * (1 - ((i + 0.5) / count) ** 0.8)))
        channels = [c for c in CHANNELS if days_ago <= 6 or not c.recent_only]
        state = rng.choices(channels, weights=[c.weight for c in channels])[0].state
        vip = i % 4 == 1
        if i % 16 == 1:  # Platinum (20,000 points)
            amounts = tuple(100 * (base + rng.randint(0, 2000)) for base in (9000, 7000, 5000))
        elif vip:  # Gold (5,000 points)
            amounts = tuple(100 * rng.randint(2600, 4500) for _ in range(2))
        elif i % 5 == 4 or i % 10 == 7:  # added, has not bought yet (or left again)
            amounts = ()
        else:
            amounts = tuple(100 * rng.randint(30, 800) for _ in range(1 + i % 3))
        marketing = i % 7 != 3
        plan.append(
            DemoShopper(
                index=i,
                external_userid="wm" + hashlib.sha256(f"crm-demo-shopper:{seed}:{i}".encode()).hexdigest()[:30],
                name=rng.choice(_SURNAMES) + "".join(rng.choice(_GIVEN) for _ in range(rng.randint(1, 2))),
                gender=rng.choice([1, 2]),
                state=state,
                days_ago=days_ago,
                seconds_into_day=rng.randint(9 * 3600, 21 * 3600 + 1800),
                amounts_fen=amounts,
                marketing=marketing,
                behaviour=rng.random() < 0.5,
                vip=vip,
                claims=vip and marketing and i % 3 != 0,
                leaves_after_days=min(3, days_ago) if i % 10 == 7 and not vip else None,
            )
        )
    return plan


def _wecom_customers(userids: list[str]) -> set[str]:
    """Every external_userid these members have as customers in WeCom (externalcontact/list)."""
    client = get_client()
    found: set[str] = set()
    for userid in userids:
        try:
            found.update(client.externalcontact_list(userid).get("external_userid") or [])
        except WeComError as exc:
            if exc.errcode not in GONE_ERRCODES:  # 84061: this member has no customer yet
                raise
    return found


def next_evening(hour: int = 20) -> datetime:
    now = timezone.now().astimezone(SHANGHAI)
    target = now.replace(hour=hour, minute=0, second=0, microsecond=0)
    return target if target > now + timedelta(minutes=5) else target + timedelta(days=1)


class Ticker:
    """What beat would enqueue while the seed waits (beat runs under `make run`, not in every caller)."""

    def __init__(self, every: float, *tasks) -> None:
        self.every, self.tasks, self.last = every, tasks, 0.0

    def __call__(self) -> None:
        if time.monotonic() - self.last >= self.every:
            self.last = time.monotonic()
            for task in self.tasks:
                task.delay()


class DemoSeed:
    def __init__(self, journey: Journey, plan: list[DemoShopper], say: Callable[[str], None] = print) -> None:
        self.journey = journey
        self.sim = journey.sim
        self.plan = plan
        self.say = say
        self.eids = [s.external_userid for s in plan]
        self.figures: dict[str, int] = {}

    def converge(self) -> dict:
        steps = {}
        steps_in_order = (
            self.brand,
            self.adds,
            self.leaves,
            self.cards,
            self.vips,
            self.finished_campaign,
            self.tonight_campaign,
        )
        for step in steps_in_order:
            started = time.monotonic()
            step()
            steps[step.__name__] = round(time.monotonic() - started, 1)
        return {**self.summary(), "step_seconds": steps}

    # --- the brand -----------------------------------------------------------------------------
    def brand(self) -> None:
        self.journey.setup_brand()
        for channel in CHANNELS:
            self.journey.channel(channel.state, channel.name, list(channel.staff))

    # --- adds ----------------------------------------------------------------------------------
    def _ready(self) -> set[str]:
        """Shoppers the CRM owns as contacts with their channel (the full add was applied)."""
        return set(
            Contact.objects.filter(external_userid__in=self.eids, channel__isnull=False).values_list(
                "external_userid", flat=True
            )
        )

    def adds(self) -> None:
        missing = [s for s in self.plan if s.external_userid not in self._ready()]
        offset = self.journey.clock_offset()
        home = max(offset, 0.0)  # a clock left behind real time is a killed seed's: put it back
        try:
            if missing:
                offset = self._scan(missing, offset)
                self._await_contacts(missing)
        finally:
            if abs(offset - home) > 1:
                self.journey.set_clock_offset(home, offset)

    def leaves(self) -> None:
        """A few shoppers delete the staff member again a few days after adding (the dashboard's losses)."""
        leavers = {s.external_userid: s for s in self.plan if s.leaves_after_days is not None}
        staying = FollowRelation.objects.filter(
            contact__external_userid__in=leavers, deleted_by_customer_at__isnull=True, deleted_by_staff_at__isnull=True
        )
        todo = list(staying.select_related("contact", "staff"))
        if todo:
            offset = self.journey.clock_offset()
            home = max(offset, 0.0)
            now = timezone.now()
            try:
                for follow in sorted(todo, key=lambda f: leavers[f.contact.external_userid].left_at(now), reverse=True):
                    moment = leavers[follow.contact.external_userid].left_at(now)
                    offset = self.journey.set_clock_offset(moment.timestamp() - time.time(), offset)
                    try:
                        self.sim.post(
                            f"shoppers/{follow.contact.external_userid}/delete_staff", {"userid": follow.staff.userid}
                        )
                    except SimAdminError as exc:
                        if "not_friends" not in str(exc):  # deleted by an earlier run: its callback is on the way
                            raise
            finally:
                self.journey.set_clock_offset(home, offset)
            wait_until(lambda: not staying.exists(), self.journey.timeout, "del_follow_user callbacks")
            self.say(f"{len(todo)} shoppers deleted the staff member again a few days after adding")
        self._recount_days()

    def _recount_days(self) -> None:
        """The dashboard's daily rollup counts a closed day once (beat recounts only yesterday and today); adds
        backdated into days it already counted are recounted here, as after any import of past adds."""
        from crm.models import DailyContactStat
        from crm.selectors.dashboard import WINDOW_DAYS, follow_daily_live, window
        from crm.services.rollups import contact_stats_refresh

        days = window(WINDOW_DAYS)
        stored = {
            (row.day, row.state): [row.adds, row.deletes]
            for row in DailyContactStat.objects.filter(day__gte=days[0], day__lte=days[-1])
        }
        counted = {day for day, _ in stored}
        live = follow_daily_live(days[0], days[-1])
        if any(stored.get(key) != value for key, value in live.items() if key[0] in counted):
            contact_stats_refresh(days[0], days[-1])

    def _scan(self, missing: list[DemoShopper], offset: float) -> float:
        known = set(
            Contact.objects.filter(external_userid__in=[s.external_userid for s in missing]).values_list(
                "external_userid", flat=True
            )
        )
        # A shopper WeCom already lists was added by an earlier run; its callback is on the way (or stored and
        # waiting for a worker): scanning again would add another staff member (the QR hands out round robin).
        in_wecom = _wecom_customers([u for u, _ in DEMO_STAFF]) if len(known) < len(missing) else set()
        todo = [s for s in missing if s.external_userid not in known | in_wecom]
        configs = dict(Channel.objects.values_list("state", "config_id"))
        now = timezone.now()
        # Newest first: the clock only goes back while welcome codes are in flight, so none of them expires.
        for shopper in sorted(todo, key=lambda s: s.added_at(now), reverse=True):
            offset = self.journey.set_clock_offset(shopper.added_at(now).timestamp() - time.time(), offset)
            self.sim.post(
                "shoppers", {"name": shopper.name, "gender": shopper.gender, "external_userid": shopper.external_userid}
            )
            self.sim.post(f"shoppers/{shopper.external_userid}/scan_contact_way", {"config_id": configs[shopper.state]})
        if todo:
            self.say(f"{len(todo)} shoppers added the brand over the last {DEMO_DAYS} days")
        if len(todo) < len(missing):
            self.say(f"{len(missing) - len(todo)} shoppers WeCom already had: waiting for their callbacks")
        return offset

    def _await_contacts(self, missing: list[DemoShopper]) -> None:
        eids = [s.external_userid for s in missing]
        timeout = self.journey.timeout
        try:
            wait_until(lambda: set(eids) <= self._ready(), min(timeout, 45.0), "contacts from add callbacks")
        except JourneyError:
            # Callbacks still not applied (a worker backlog, a lost task): read those customers from WeCom, as
            # the CRM's sync does. A callback arriving later finds the contact and changes nothing.
            late = [e for e in eids if e not in self._ready()]
            for eid in late:
                contact_refresh(eid, source="demo seed sync")
            self.say(f"{len(late)} contacts read from WeCom (their add callbacks had not been applied)")
            wait_until(lambda: set(eids) <= self._ready(), timeout, "contacts read from WeCom")
        # Give welcomes in flight the time to go out before the clock moves on (their codes would expire).
        in_flight = WelcomeMessage.objects.filter(
            follow__contact__external_userid__in=eids,
            status__in=[WelcomeMessage.Status.PENDING, WelcomeMessage.Status.SENDING],
        )
        try:
            wait_until(lambda: not in_flight.exists(), GRACE_SECONDS, "welcome messages")
        except JourneyError:
            self.say(f"{in_flight.count()} welcome messages still in flight: their card links go out 1:1")

    # --- card page: consent and purchases -------------------------------------------------------
    def _card_link(self, contact: Contact, journey: Journey) -> tuple[str, bool]:
        """The card link the shopper taps: the welcome message's, or (welcome expired, failed or never sent)
        the one staff send in a 1:1 chat. -> (url, from the welcome)."""
        welcome = WelcomeMessage.objects.filter(follow__contact=contact).order_by("-id").first()
        if welcome is not None and welcome.status in (WelcomeMessage.Status.SENT, WelcomeMessage.Status.ALREADY_SENT):
            links = journey.inbox_links(contact.external_userid, "/m/card/")
            if links:
                return links[0], True
        # The signed link itself, on the CRM this seed talks to (PUBLIC_BASE_URL may name another host).
        return self.journey.base_url.rstrip("/") + urlsplit(card_url(contact.id)).path, False

    def cards(self) -> None:
        contacts = {c.external_userid: c for c in Contact.objects.filter(external_userid__in=self.eids)}
        decided = set(
            ConsentRecord.objects.filter(
                contact__external_userid__in=self.eids,
                purpose=ConsentRecord.Purpose.MARKETING,
            ).values_list("contact__external_userid", flat=True)
        )
        receipts = set(
            Purchase.objects.filter(card__contact__external_userid__in=self.eids).values_list("receipt_id", flat=True)
        )
        work = []
        for shopper in self.plan:
            todo = [k for k in range(len(shopper.amounts_fen)) if shopper.receipt(k) not in receipts]
            decide = shopper.external_userid not in decided
            if (decide or todo) and shopper.leaves_after_days is None:
                work.append((shopper, contacts[shopper.external_userid], decide, todo))
        if not work:
            return
        local = threading.local()

        def visit(item) -> tuple[bool, bool, int]:
            # Shoppers are independent: a few at a time, each thread with its own HTTP sessions and connection.
            shopper, contact, decide, todo = item
            if not hasattr(local, "journey"):
                local.journey = self.journey.clone()
            journey, eid = local.journey, shopper.external_userid
            try:
                url, from_welcome = self._card_link(contact, journey)
                page = journey.open_page(eid, url)
                if decide:
                    # Marketing last: its record is what says "decided" to the next run.
                    choices = {"behaviour": True} if shopper.behaviour else {}
                    page = journey.decide_consent(eid, page, **choices, marketing=shopper.marketing)
                for n, k in enumerate(todo):
                    # A QR token pays for one receipt: the shopper shows the card again for the next one.
                    if n:
                        page = journey.open_page(eid, url)
                    # A fixed receipt id: if an earlier run posted it and lost the answer, this is a harmless retry.
                    journey.till_scan(qr_token_on(page, eid), shopper.amounts_fen[k], receipt=shopper.receipt(k))
            finally:
                connection.close()
            return from_welcome, decide, len(todo)

        with ThreadPoolExecutor(max_workers=CARD_VISITS_AT_ONCE) as pool:
            done = list(pool.map(visit, work))
        by_staff = sum(1 for from_welcome, _, _ in done if not from_welcome)
        self.say(
            f"{len(done)} shoppers opened their card ({by_staff} through a link staff sent, their welcome "
            f"having expired or failed): {sum(d for _, d, _ in done)} consent decisions, "
            f"{sum(n for _, _, n in done)} till scans"
        )

    # --- VIPs in the VIP group -----------------------------------------------------------------
    def _vip_members(self) -> set[str]:
        return set(
            GroupMember.objects.filter(
                group__is_vip=True,
                left_at__isnull=True,
                contact__external_userid__in=self.eids,
            ).values_list("contact__external_userid", flat=True)
        )

    def vips(self) -> None:
        from crm.services.groups import group_sync
        from crm.tasks.contacts import send_vip_invite
        from loyalty.tasks import vip_invite

        vips = [s.external_userid for s in self.plan if s.vip]
        if set(vips) <= self._vip_members():
            return
        started = time.monotonic()
        requeued: set[tuple[str, int]] = set()
        joined: dict[str, tuple[str, str, float]] = {}  # eid -> (how, chat_id, when)

        def join(eid: str, qr_code: str, how: str) -> None:
            chat_id = self.sim.post(f"shoppers/{eid}/join_group", {"qr_code": qr_code})["chat_id"]
            joined[eid] = (how, chat_id, time.monotonic())

        def step() -> bool:
            members = self._vip_members()
            grace_over = time.monotonic() - started > GRACE_SECONDS
            for eid in vips:
                if eid in members:
                    continue
                if eid in joined:
                    _how, chat_id, when = joined[eid]
                    if time.monotonic() - when > GRACE_SECONDS and ("sync", eid) not in requeued:
                        # The change_external_chat callback has not been applied: read the group, as a sync does.
                        requeued.add(("sync", eid))
                        group_sync(chat_id)
                    continue
                invite = VipInvite.objects.filter(contact__external_userid=eid).first()
                if invite is None:
                    # Entering the tier queues the invite; a worker killed with the task loses it (until its
                    # visibility timeout): queue it again, as the product's own retry would.
                    change = TierChange.objects.filter(
                        card__contact__external_userid=eid, to_tier__is_vip=True, vip_invite_sent_at__isnull=True
                    ).first()
                    if change is not None and grace_over and ("tier", change.pk) not in requeued:
                        requeued.add(("tier", change.pk))
                        vip_invite.delay(change.pk)
                    continue
                if invite.status == VipInvite.Status.PENDING:
                    if grace_over and ("invite", invite.pk) not in requeued:
                        requeued.add(("invite", invite.pk))
                        send_vip_invite.delay(invite.pk)  # its task was lost with a killed worker
                    continue
                way = GroupJoinWay.objects.filter(is_vip=True).exclude(qr_code="").first()
                if invite.status in (VipInvite.Status.SENT, VipInvite.Status.JOINED) and way is not None:
                    links = self.journey.inbox_links(eid, way.qr_code)
                    if links:
                        join(eid, links[0], "invite")
                        continue
                if invite.status == VipInvite.Status.FAILED or grace_over:
                    # Never reached the inbox (failed, or its worker died mid-send: sent at most once, it stays
                    # unsent): staff share the VIP group's QR in a 1:1 chat instead.
                    from crm.services.vip import vip_join_way_ensure

                    join(eid, (way or vip_join_way_ensure(VIP_GROUP_OWNER)).qr_code, "staff")
            return set(vips) <= self._vip_members()

        wait_until(step, self.journey.timeout, "VIP shoppers in the VIP group", interval=0.3)
        by_staff = sum(1 for how, _, _ in joined.values() if how == "staff")
        self.say(
            f"{len(joined)} VIP shoppers joined the VIP group"
            + (f" ({by_staff} through the group QR staff shared)" if by_staff else "")
        )

    # --- campaigns -----------------------------------------------------------------------------
    def finished_campaign(self) -> None:
        from crm.services.campaigns import campaign_create
        from crm.tasks.campaigns import launch_due_campaigns, poll_mass_message_results
        from crm.tasks.redpackets import refund_expired_pools

        campaign = Campaign.objects.filter(name=FINISHED_CAMPAIGN).first()
        if campaign is None:
            now = timezone.now()
            campaign = campaign_create(
                name=FINISHED_CAMPAIGN,
                text="双十二 VIP 预热：会员专享红包已到账！Your VIP red packet is here:",
                segment={"vip": True},
                scheduled_at=now + timedelta(seconds=1),
                # More packets than VIPs and three days to claim: the pool stays live with budget left.
                red_packet={
                    "budget_fen": 24 * 888,
                    "count": 24,
                    "mode": "lucky",
                    "expires_at": now + timedelta(days=3),
                    "act_name": "Double 12 VIP red packet",
                },
            )
            self.say(f"launched {FINISHED_CAMPAIGN!r}")
        if campaign.status != Campaign.Status.DONE:
            beat = Ticker(1.0, launch_due_campaigns, poll_mass_message_results)
            wait_until(
                lambda: Campaign.objects.filter(pk=campaign.pk, status=Campaign.Status.DONE).exists(),
                self.journey.timeout,
                f"{FINISHED_CAMPAIGN!r} to finish",
                interval=0.3,
                tick=beat,
            )
        delivered = set(
            CampaignRecipient.objects.filter(
                campaign=campaign,
                status=CampaignRecipient.Status.DELIVERED,
            ).values_list("external_userid", flat=True)
        )
        pool = campaign.red_packet_pool
        claimed = set(RedPacketClaim.objects.filter(pool=pool).values_list("contact__external_userid", flat=True))
        claimers = [s.external_userid for s in self.plan if s.claims and s.external_userid in delivered]
        for eid in claimers:
            if eid in claimed:
                continue
            links = wait_until(
                lambda e=eid: self.journey.red_packet_links(e), self.journey.timeout, f"campaign message for {eid}"
            )
            answer = self.sim.post(f"shoppers/{eid}/open_link", {"url": links[0], "method": "POST", "data": {}})
            if answer.get("status") != 200:
                raise JourneyError(f"red-packet claim for {eid} answered {answer.get('status')}")
        open_claims = RedPacketClaim.objects.filter(pool=pool).exclude(
            status__in=[RedPacketClaim.Status.PAID, RedPacketClaim.Status.FAILED]
        )
        if open_claims.exists():
            wait_until(
                lambda: not open_claims.exists(),
                self.journey.timeout,
                "red-packet payouts",
                interval=0.3,
                tick=Ticker(5.0, refund_expired_pools),
            )
        if len(claimed) < len(claimers):
            self.say(f"{len(claimers) - len(claimed)} customers claimed their red packet")

    def tonight_campaign(self) -> None:
        from crm.services.campaigns import campaign_create

        if Campaign.objects.filter(name=TONIGHT_CAMPAIGN).exists():
            return
        when = next_evening()
        campaign_create(
            name=TONIGHT_CAMPAIGN,
            text="VIP 专享闪购：今晚 20:00 开抢！Tap for your red packet:",
            segment={"vip": True},
            scheduled_at=when,
            red_packet={
                "budget_fen": 50_000,
                "count": 100,
                "mode": "lucky",
                "expires_at": when + timedelta(hours=24),
                "act_name": "VIP red packet",
            },
        )
        self.say(f"scheduled {TONIGHT_CAMPAIGN!r} for {when:%Y-%m-%d %H:%M} Asia/Shanghai")

    # --- figures -------------------------------------------------------------------------------
    def summary(self) -> dict:
        contacts = Contact.objects.filter(external_userid__in=self.eids)
        welcomes = WelcomeMessage.objects.filter(follow__contact__in=contacts)
        finished = Campaign.objects.filter(name=FINISHED_CAMPAIGN).first()
        return {
            "shoppers": contacts.count(),
            "channels": contacts.values("channel").distinct().count(),
            "days": len(
                {
                    timezone.localtime(c.first_added_at, SHANGHAI).date()
                    for c in contacts.exclude(first_added_at=None).only("first_added_at")
                }
            ),
            "welcomes_sent": welcomes.filter(status=WelcomeMessage.Status.SENT).count(),
            "welcomes_expired_or_failed": welcomes.filter(
                Q(status=WelcomeMessage.Status.EXPIRED) | Q(status=WelcomeMessage.Status.FAILED)
            ).count(),
            "left_again": FollowRelation.objects.filter(
                contact__in=contacts, deleted_by_customer_at__isnull=False
            ).count(),
            "purchases": Purchase.objects.filter(card__contact__in=contacts).count(),
            "vip_in_group": len(self._vip_members()),
            "campaign_delivered": CampaignRecipient.objects.filter(
                campaign=finished, status=CampaignRecipient.Status.DELIVERED
            ).count()
            if finished
            else 0,
            "red_packets_claimed": RedPacketClaim.objects.filter(pool__campaign=finished).count() if finished else 0,
        }


__all__ = ["CHANNELS", "DemoSeed", "DemoShopper", "demo_plan", "next_evening"]
