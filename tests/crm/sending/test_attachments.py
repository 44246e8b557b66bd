"""The send carries the campaign's attachment: a link, a mini program (cover uploaded as media), an image whose
stored media id WeCom refuses (40007) is uploaded again within the same claim and sent once."""

from __future__ import annotations

import pytest
from django.utils import timezone

from crm.models import Campaign, MassMessage
from crm.services import campaign_runs
from crm.services import campaigns as svc
from crm.services.pushes import mass_message_send
from tests.crm.campaign_service.conftest import PNG, media_root  # noqa: F401 (fixture)
from tests.crm.sending.conftest import add_calls, world

pytestmark = [pytest.mark.django_db(transaction=True)]


def _sent(campaign: Campaign) -> dict:
    from wecom_sim.models import SimMassMessage

    campaign_runs.campaign_launch(campaign.id, enqueue=False)
    message = MassMessage.objects.get(campaign=campaign)
    assert mass_message_send(message.id) == "created", MassMessage.objects.get(id=message.id).last_error
    sent = SimMassMessage.objects.get(msgid=MassMessage.objects.get(id=message.id).msgid)
    return {"text": sent.text, "attachments": sent.attachments}


def test_link_attachment(sim):
    world(["lin"], 1)
    campaign = svc.campaign_create(name="l", text="New in", attachment="link", link_title="20 styles",
                                   link_url="https://shop.example.com/new", link_desc="This week")
    assert _sent(campaign) == {"text": {"content": "New in"}, "attachments": [{"msgtype": "link", "link": {
        "title": "20 styles", "url": "https://shop.example.com/new", "desc": "This week"}}]}


def test_miniprogram_attachment(sim, media_root):  # noqa: F811
    world(["min"], 1)
    campaign = svc.campaign_create(name="m", text="Shop", attachment="miniprogram",
                                   miniprogram_appid="wx1234567890abcdef", miniprogram_page="pages/index",
                                   miniprogram_title="Shop now", image=PNG)
    sent = _sent(campaign)
    [item] = sent["attachments"]
    assert item["msgtype"] == "miniprogram"
    assert {k: v for k, v in item["miniprogram"].items() if k != "pic_media_id"} == {
        "title": "Shop now", "appid": "wx1234567890abcdef", "page": "pages/index"}
    assert item["miniprogram"]["pic_media_id"] == Campaign.objects.get(id=campaign.id).image_media_id != ""


def test_a_refused_media_id_is_uploaded_again_and_sent_once(sim, media_root):  # noqa: F811
    world(["img"], 2)
    campaign = svc.campaign_create(name="i", text="Look", image=PNG)
    # A media id the CRM believes fresh, which WeCom does not know (expired early): 40007.
    Campaign.objects.filter(id=campaign.id).update(image_media_id="stale-media", image_media_at=timezone.now())
    before = add_calls(sim)
    sent = _sent(Campaign.objects.get(id=campaign.id))
    fresh = Campaign.objects.get(id=campaign.id).image_media_id
    assert fresh != "stale-media"
    assert sent["attachments"] == [{"msgtype": "image", "image": {"media_id": fresh}}]
    assert add_calls(sim) - before == 2  # refused once (nothing created), then sent
    from wecom_sim.models import SimMassMessage

    assert SimMassMessage.objects.count() == 1
