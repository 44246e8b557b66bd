"""A red-packet campaign with the link for everyone, end to end with a real worker: one add_msg_template task for
the sender's recipients (one confirmation), every shopper's message carries the same link, each shopper opens it in
WeChat, is identified by OAuth and paid once."""

from __future__ import annotations

import re

import pytest

from crm.models import CampaignRecipient, MassMessage, RedPacketClaim, RedPacketPool
from crm.services import campaign_runs
from crm.services import campaigns as svc
from crm.services.customer_links import pool_link
from crm.tasks.campaigns import poll_mass_message_results
from tests.conftest import wait_for
from tests.crm.campaigns.conftest import befriend, later, make_staff

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.worker]


def test_one_task_one_link_each_shopper_identified_and_paid_once(sim, celery_worker, settings):
    settings.CUSTOMER_LINKS = "oauth"
    sim.call("PATCH", "corp", confirm_delay_seconds=0)
    sim.member("grace")
    staff = make_staff("grace")
    shoppers = [befriend(sim, staff, f"Shopper {i}") for i in range(3)]
    campaign = svc.campaign_create(name="11.11 red packets", text="A red packet for you:", red_packet={
        "budget_fen": 900, "count": 3, "mode": "fixed", "expires_at": later(hours=2)})
    campaign_runs.campaign_launch(campaign.id)
    message = wait_for(lambda: MassMessage.objects.filter(campaign=campaign, status="created").first(),
                       message="the mass message created")
    assert MassMessage.objects.filter(campaign=campaign).count() == 1  # one task, one confirmation

    def delivered():
        poll_mass_message_results.delay()
        return set(CampaignRecipient.objects.filter(campaign=campaign).values_list("status", flat=True)) == {
            "delivered"}

    wait_for(delivered, timeout=30, interval=0.5, message="messages delivered")
    links = set()
    for contact in shoppers:
        inbox = sim.call("GET", f"shoppers/{contact.external_userid}/inbox")["messages"]
        texts = [m["text"] for m in inbox if m["kind"] == "mass"]
        assert len(texts) == 1, inbox
        links.add(re.search(r"https?://\S+/m/pool/\d+/", texts[0]).group(0))
    assert len(links) == 1  # the same link for everyone
    link = links.pop()
    assert link in message.text and link == pool_link(RedPacketPool.objects.get(campaign=campaign).id)

    for contact in shoppers:
        answer = sim.call("POST", f"shoppers/{contact.external_userid}/open_link", url=link, method="POST",
                          data={"claim": "1"})
        assert answer["status"] == 200 and f'data-contact-id="{contact.id}"' in answer["body"]
        assert 'data-amount-fen="300"' in answer["body"]
    again = sim.call("POST", f"shoppers/{shoppers[0].external_userid}/open_link", url=link, method="POST",
                     data={"claim": "1"})
    assert 'data-status="already_claimed"' in again["body"]

    wait_for(lambda: RedPacketClaim.objects.filter(status="paid").count() == 3, timeout=40, message="claims paid")
    assert sorted(RedPacketClaim.objects.values_list("contact_id", flat=True)) == sorted(c.id for c in shoppers)
    packs = sim.call("GET", "pay/redpacks")["redpacks"]
    assert len(packs) == 3 and {p["total_amount"] for p in packs} == {300}
