"""Fixtures for the WeChat OAuth tests: a launched red-packet pool whose customers exist both in the simulator
(as WeChat users befriended by a member) and in the CRM, and a browser that is a given shopper's WeChat client."""

from __future__ import annotations

import re
from html import unescape

import pytest
import requests

from crm.models import Contact, RedPacketPool, Staff
from crm.services import campaign_runs
from crm.services import campaigns as svc
from tests.crm.campaigns.conftest import befriend, later, make_contact, make_staff
from tests.crm.campaigns.conftest import sim as sim  # the fixture, re-exported


def launched_pool(count: int = 2, budget: int = 600) -> RedPacketPool:
    if not Contact.objects.exists():  # a campaign needs an audience
        make_contact(make_staff())
    campaign = svc.campaign_create(
        name="Singles Day", text="Grab it",
        red_packet={"budget_fen": budget, "count": count, "mode": "fixed", "expires_at": later(hours=1),
                    "act_name": "11.11 red packet"},
    )
    campaign_runs.campaign_launch(campaign.id, enqueue=False)
    return RedPacketPool.objects.get(campaign=campaign)


def wechat_browser(base: str, eid: str, language: str = "zh-CN,zh;q=0.9") -> requests.Session:
    """A browser that the simulator takes for `eid`'s WeChat client (its cookie), in the shopper's language."""
    browser = requests.Session()
    browser.headers["Accept-Language"] = language
    browser.get(f"{base}/wecom-sim/oauth/wechat_client", params={"shopper": eid, "next": "/"}, allow_redirects=False,
                timeout=10)
    assert browser.cookies.get("wxsim_shopper") == eid
    return browser


def csrf_token(html: str) -> str:
    return unescape(re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', html).group(1))


@pytest.fixture
def staff(sim):
    # get_or_create: the session's worker may still be applying an earlier test's add callback (it makes the
    # staff member it names) after that test's tables were emptied.
    member = Staff.objects.filter(userid="alice").first() or make_staff("alice")
    sim.member("alice")
    return member


@pytest.fixture
def customer(sim, staff):
    return befriend(sim, staff, "Lin")
