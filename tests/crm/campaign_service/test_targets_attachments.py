"""Targets and their audience (consenting customers of a segment, chosen groups, VIP groups), the chat-bubble
preview, and attachments: the image uploaded to the simulator over HTTP (media/upload), its media id in the body
of the send, uploaded again after WeCom's 3 days."""

from __future__ import annotations

import hashlib
from datetime import timedelta

import pytest
from django.utils import timezone

from crm.models import Campaign, ContactTag, MassMessage, Segment
from crm.services import campaign_runs
from crm.services import campaigns as svc
from crm.services.pushes import mass_message_send
from crm.wecom.client import get_client
from crm.wecom.errors import WeComError
from tests.crm.campaign_service.conftest import JPG, PNG, befriend, make_contact, make_group, make_staff, make_tag

APPID = "wx1234567890abcdef"


@pytest.fixture
def people(db):
    staff = make_staff("alice")
    tag = make_tag("Coffee")
    fans = [make_contact(staff) for _ in range(2)]
    shy = make_contact(staff, marketing=False)  # tagged, but never agreed to marketing
    make_contact(staff)  # consents, untagged
    for contact in (*fans, shy):
        ContactTag.objects.create(contact=contact, tag=tag)
    make_group("wrA", owner=staff)
    make_group("wrB", owner=staff, vip=True)
    make_group("wrC", owner=staff, vip=True)
    make_group("wrGONE", owner=staff, vip=True, status="dismissed")
    return {"staff": staff, "tag": tag, "definition": {"field": "tags", "op": "any", "value": [tag.id]}}


@pytest.mark.django_db
def test_audience_of_each_target(people, admin_client):
    definition = people["definition"]
    segment = svc.campaign_create(name="s", text="hi", segment=definition)
    assert svc.campaign_audience(segment) == {"count": 2, "kind": "customers"}  # consent applied
    assert svc.campaign_audience(svc.campaign_create(name="all", text="hi")) == {"count": 3, "kind": "customers"}
    saved = Segment.objects.create(name="coffee", definition=definition)
    by_saved = svc.campaign_create(name="saved", text="hi", saved_segment_id=saved.id)
    assert by_saved.saved_segment_id == saved.id and by_saved.segment == {}
    assert svc.campaign_audience(by_saved)["count"] == 2
    groups = svc.campaign_create(name="g", text="hi", target="groups", group_chat_ids=["wrA", "wrB", "wrA"])
    assert groups.group_chat_ids == ["wrA", "wrB"] and groups.segment == {}
    assert svc.campaign_audience(groups) == {"count": 2, "kind": "groups"}
    vip = svc.campaign_create(name="v", text="hi", target="vip_groups")
    assert svc.campaign_audience(vip) == {"count": 2, "kind": "groups"}  # the dismissed one is not counted

    assert admin_client.get(f"/api/campaigns/{segment.id}/audience/").json() == {"count": 2, "kind": "customers"}
    for body, expected in [({"segment": definition}, 2), ({"saved_segment_id": saved.id}, 2), ({}, 3),
                           ({"target": "groups", "group_chat_ids": ["wrC"]}, 1), ({"target": "vip_groups"}, 2)]:
        response = admin_client.post("/api/campaigns/audience/", body, content_type="application/json")
        assert response.status_code == 200 and response.json()["count"] == expected, (body, response.content)
    response = admin_client.post("/api/campaigns/audience/", {"segment": {"field": "tags", "op": "any"}},
                                 content_type="application/json")
    assert response.status_code == 400 and response.json()["error"]["field"] == "segment.value"


@pytest.mark.django_db
def test_api_create_and_switch_targets(people, admin_client):
    body = {"name": "groups", "text": "Group deal", "target": "groups", "group_chat_ids": ["wrA"],
            "attachment": "link", "link_title": "Deal", "link_url": "https://shop.example.com/deal",
            "link_desc": "Today only"}
    response = admin_client.post("/api/campaigns/", body, content_type="application/json")
    assert response.status_code == 201, response.content
    data = response.json()
    assert (data["target"], data["group_chat_ids"], data["attachment"], data["link_title"]) == (
        "groups", ["wrA"], "link", "Deal")
    assert data["created_at"].endswith("+08:00")
    cid = data["id"]
    # Back to a segment: the groups are dropped; to a mini program: the link fields are.
    response = admin_client.patch(f"/api/campaigns/{cid}/", {"target": "segment", "segment": people["definition"]},
                                  content_type="application/json")
    assert response.status_code == 200 and response.json()["group_chat_ids"] == []
    response = admin_client.patch(f"/api/campaigns/{cid}/", {
        "attachment": "miniprogram", "miniprogram_appid": APPID, "miniprogram_page": "pages/deal",
        "miniprogram_title": "Deal"}, content_type="application/json")
    assert response.status_code == 200, response.content
    assert response.json()["link_url"] == "" and response.json()["miniprogram_appid"] == APPID


@pytest.mark.django_db
def test_preview_is_the_chat_bubble(people, admin_client, media_root):
    link = svc.campaign_create(name="l", text="周五上新", attachment="link", link_title="New in",
                               link_url="https://shop.example.com/new", link_desc="20 styles")
    preview = admin_client.get(f"/api/campaigns/{link.id}/preview/").json()
    assert preview == {"chat_type": "single", "text": "周五上新", "text_bytes": 12, "max_text_bytes": 4000,
                       "attachment": {"type": "link", "title": "New in", "desc": "20 styles",
                                      "url": "https://shop.example.com/new", "host": "shop.example.com"},
                       "link_appended": ""}
    image = svc.campaign_create(name="i", text="look", image=JPG, target="vip_groups")
    assert image.attachment == "image" and image.image.name.endswith(".jpg")
    preview = svc.campaign_preview(image)
    assert preview["chat_type"] == "group"
    assert preview["attachment"] == {"type": "image", "image_url": f"/api/campaigns/{image.id}/image/"}
    mini = svc.campaign_create(name="m", text="shop", attachment="miniprogram", miniprogram_appid=APPID,
                               miniprogram_page="pages/index", miniprogram_title="Shop", image=PNG)
    assert mini.attachment == "miniprogram"
    assert svc.campaign_preview(mini)["attachment"]["cover_url"] == f"/api/campaigns/{mini.id}/image/"
    pool = svc.campaign_create(name="rp", text="red packet", red_packet={
        "budget_fen": 5000, "count": 10, "expires_at": timezone.now() + timedelta(days=1)})
    assert svc.campaign_preview(pool)["max_text_bytes"] == 3600
    assert svc.campaign_preview(pool)["link_appended"] == "red_packet"


def _sim_media(media_id: str):
    from wecom_sim.models import SimMedia  # the simulator's own record (same database as the live server)

    return SimMedia.objects.filter(media_id=media_id).first()


@pytest.mark.django_db(transaction=True)
def test_image_uploaded_to_the_simulator_and_its_media_id_sent(sim, media_root):
    sim.call("PATCH", "corp", confirm_delay_seconds=None)
    sim.member("alice")
    alice = make_staff("alice")
    fang = befriend(sim, alice, "Fang")
    campaign = svc.campaign_create(name="img", text="New arrivals", image=PNG)

    media_id = svc.campaign_image_media_id(campaign)
    stored = _sim_media(media_id)
    assert stored.type == "image" and stored.size == len(PNG)
    assert stored.sha256 == hashlib.sha256(PNG).hexdigest()  # the very bytes, over multipart HTTP
    assert svc.campaign_image_media_id(Campaign.objects.get(id=campaign.id)) == media_id  # reused: no upload
    from wecom_sim.models import SimMedia

    assert SimMedia.objects.count() == 1

    pending = campaign_runs.campaign_launch(campaign.id, enqueue=False)
    assert len(pending) == 1
    mass_message_send(pending[0])
    message = MassMessage.objects.get(id=pending[0])
    assert message.msgid, message.last_error
    from wecom_sim.models import SimMassMessage

    sent = SimMassMessage.objects.get(msgid=message.msgid)
    assert sent.attachments == [{"msgtype": "image", "image": {"media_id": media_id}}]
    assert sent.text == {"content": "New arrivals"}
    sim.call("POST", f"groupmsg/{message.msgid}/confirm")
    inbox = sim.call("GET", f"shoppers/{fang.external_userid}/inbox")
    assert any(media_id in str(item) for item in (inbox if isinstance(inbox, list) else inbox.get("messages", [])))


@pytest.mark.django_db(transaction=True)
def test_media_uploaded_again_after_three_days(sim, media_root):
    sim.member("alice")
    fang = befriend(sim, make_staff("alice"), "Fang")
    campaign = svc.campaign_create(name="img", text="hi", image=PNG)
    first = svc.campaign_image_media_id(campaign)

    def send(media_id: str) -> dict:
        return get_client().add_msg_template(chat_type="single", external_userid=[fang.external_userid],
                                             text={"content": "hi"},
                                             attachments=[{"msgtype": "image", "image": {"media_id": media_id}}])

    assert send(first)["msgid"]
    sim.call("POST", "clock/advance", seconds=3 * 86400 + 60)  # WeCom's 3 days are over
    with pytest.raises(WeComError) as expired:
        send(first)
    assert expired.value.errcode == 40007
    # The CRM's own clock says the same: past MEDIA_REUSE the image is uploaded again.
    Campaign.objects.filter(id=campaign.id).update(image_media_at=timezone.now() - timedelta(days=3))
    second = svc.campaign_image_media_id(Campaign.objects.get(id=campaign.id))
    assert second != first and send(second)["msgid"]
    # Clocks that disagree: WeCom refused an id the CRM thought fresh, so the sender forces a new upload.
    sim.call("POST", "clock/advance", seconds=3 * 86400 + 60)
    campaign = Campaign.objects.get(id=campaign.id)
    assert svc.campaign_attachments(campaign)[0]["image"]["media_id"] == second  # still fresh to the CRM
    forced = svc.campaign_attachments(campaign, force_upload=True)
    third = forced[0]["image"]["media_id"]
    assert third not in (first, second) and send(third)["msgid"]
    assert Campaign.objects.get(id=campaign.id).image_media_id == third


@pytest.mark.django_db(transaction=True)
def test_mini_program_cover_is_the_uploaded_image(sim, media_root):
    sim.member("alice")
    fang = befriend(sim, make_staff("alice"), "Fang")
    campaign = svc.campaign_create(name="mini", text="Shop now", attachment="miniprogram", miniprogram_appid=APPID,
                                   miniprogram_page="pages/index", miniprogram_title="Shop", image=JPG)
    attachments = svc.campaign_attachments(campaign)
    cover = attachments[0]["miniprogram"]["pic_media_id"]
    assert _sim_media(cover).type == "image"
    sent = get_client().add_msg_template(chat_type="single", external_userid=[fang.external_userid],
                                         text={"content": "Shop now"}, attachments=attachments)
    assert sent["msgid"] and sent["fail_list"] == []


@pytest.mark.django_db(transaction=True)
def test_an_image_of_exactly_10_mb_is_accepted_end_to_end(sim, media_root):
    import time

    big = PNG + b"\x00" * (svc.MAX_IMAGE_BYTES - len(PNG))  # WeCom's limit, to the byte
    campaign = svc.campaign_create(name="big", text="hi", image=big)
    started = time.monotonic()
    media_id = svc.campaign_image_media_id(campaign)
    elapsed = time.monotonic() - started
    assert _sim_media(media_id).size == svc.MAX_IMAGE_BYTES
    print(f"media/upload of 10 MB over HTTP to the simulator: {elapsed * 1000:.0f} ms")


@pytest.mark.django_db(transaction=True)
def test_upload_retried_through_a_gateway_error_and_a_revoked_token(sim, media_root, settings):
    """The multipart upload goes through the client's own retry and token handling: the file is sent again."""
    settings.WECOM_RETRY_BASE_DELAY = settings.WECOM_RETRY_MAX_DELAY = 0.01
    campaign = svc.campaign_create(name="retry", text="hi", image=PNG)
    get_client().access_token()
    sim.call("POST", "tokens/revoke")  # the cached token is now refused (40014): refreshed, call repeated
    sim.call("POST", "faults", path="media/upload", kind="5xx", count=1)
    media_id = svc.campaign_image_media_id(campaign)
    stored = _sim_media(media_id)
    assert stored is not None and stored.sha256 == hashlib.sha256(PNG).hexdigest()
    assert sim.call("GET", "faults")["faults"] == []  # the 502 was answered, and the upload came again after it
