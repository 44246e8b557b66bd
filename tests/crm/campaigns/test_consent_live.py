"""Consent end to end over real HTTP: a shopper who withdraws marketing consent on the card page after the campaign
was launched, but before its mass message is sent, is not in the task the simulator receives; one who never
agreed is not a recipient at all."""

from __future__ import annotations

import re
from html import unescape

import pytest

from crm.models import Campaign, CampaignRecipient, ConsentRecord, MassMessage
from crm.services import campaign_runs
from crm.services import campaigns as svc
from crm.services.customer_links import card_url
from crm.tasks.campaigns import poll_mass_message_results, send_mass_message
from crm.wecom.client import get_client
from tests.conftest import wait_for
from tests.crm.campaigns.conftest import befriend, make_staff

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.worker]


def _withdraw_on_card_page(sim, contact) -> None:
    """The shopper opens the card page in WeChat and taps "Turn off" on offers (the simulator's browser)."""
    eid = contact.external_userid
    page = sim.call("POST", f"shoppers/{eid}/open_link", url=card_url(contact.id), method="GET")
    assert page["status"] == 200
    form = re.search(r'<form class="consent" method="post" action="([^"]+)" data-purpose="marketing".*?</form>',
                     page["body"], re.S)
    fields = dict(re.findall(r'<input type="hidden" name="(\w+)" value="([^"]*)"', form.group(0)))
    assert fields["granted"] == "false"  # shown as on, with the button that turns it off
    action = unescape(form.group(1))
    answer = sim.call("POST", f"shoppers/{eid}/open_link", url=card_url(contact.id).split("/m/")[0] + action,
                      method="POST", data=fields)
    assert answer["status"] == 200  # back on the card page (in Chinese: WeChat's browser sends no other language)
    after = re.search(r'<form class="consent" method="post" action="[^"]+" data-purpose="marketing".*?</form>',
                      answer["body"], re.S)
    assert 'name="granted" value="true"' in after.group(0)  # now off, with the button that turns it on
    assert "自" in after.group(0) and "起已关闭" in after.group(0)  # "Off since <time>"


def test_withdrawal_on_the_card_page_before_the_send_keeps_the_shopper_out_of_the_task(sim, celery_worker):
    sim.call("PATCH", "corp", confirm_delay_seconds=0)
    sim.member("mia")
    mia = make_staff("mia")
    stays = befriend(sim, mia, "Stays")
    leaves = befriend(sim, mia, "Leaves")
    never = befriend(sim, mia, "Never", marketing=False)

    campaign = svc.campaign_create(name="consent", text="Offers for those who asked")
    [message_id] = campaign_runs.campaign_launch(campaign.id, enqueue=False)  # built at launch, not yet sent
    built = set(CampaignRecipient.objects.filter(campaign=campaign).values_list("contact_id", flat=True))
    assert built == {stays.id, leaves.id}  # never agreed: not a recipient

    _withdraw_on_card_page(sim, leaves)
    latest = ConsentRecord.objects.filter(contact=leaves, purpose="marketing").order_by("-version").first()
    assert (latest.version, latest.granted, latest.source) == (2, False, "card_page")

    send_mass_message.delay(message_id)
    wait_for(lambda: MassMessage.objects.get(id=message_id).status == "created", message="task created")
    message = MassMessage.objects.get(id=message_id)
    # What WeCom (the simulator) was asked to send: only the shopper still consenting.
    sent_to = {r["external_userid"] for r in get_client().iter_groupmsg_send_result(message.msgid, "mia")}
    assert sent_to == {stays.external_userid}

    def delivered():
        poll_mass_message_results.delay()
        return CampaignRecipient.objects.get(campaign=campaign, contact=stays).status == "delivered"

    wait_for(delivered, timeout=30, interval=0.5, message="delivered to the consenting shopper")
    left_out = CampaignRecipient.objects.get(campaign=campaign, contact=leaves)
    assert (left_out.status, left_out.reason) == ("excluded", "consent_withdrawn")
    assert leaves.events.filter(data__reason="consent_withdrawn", data__campaign_id=campaign.id).exists()
    for contact, expected in ((stays, ["Offers for those who asked"]), (leaves, []), (never, [])):
        inbox = sim.call("GET", f"shoppers/{contact.external_userid}/inbox")["messages"]
        assert [m["text"] for m in inbox if m["kind"] == "mass"] == expected
    wait_for(lambda: Campaign.objects.get(id=campaign.id).status == "done", message="campaign done")
