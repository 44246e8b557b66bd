"""Bad input, through the API: each case is a 400 naming the field, and nothing is half-created (no campaign, no
beat row, no stored file)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.utils import timezone
from django_celery_beat.models import ClockedSchedule, PeriodicTask

from crm.models import Campaign, RedPacketPool, Segment
from tests.crm.campaign_service.conftest import GIF, PNG, files_under, make_contact, make_group, make_staff, make_tag

pytestmark = pytest.mark.django_db

OK = {"name": "Friday drop", "text": "New arrivals tonight"}
WEEKLY = {"recurrence": "weekly", "recur_weekday": 4, "recur_time": "20:00"}


def _soon(**kw) -> str:
    return (timezone.now() + timedelta(**kw)).isoformat()


@pytest.fixture
def world(db):
    staff = make_staff("alice")
    make_contact(staff)  # somebody consents, so "everyone" reaches somebody
    tag = make_tag("Nobody")  # carried by no contact
    make_group("wrDISMISSED", owner=staff, status="dismissed")
    return {"tag": tag}


def _post(client, body):
    return client.post("/api/campaigns/", body, content_type="application/json")


def _assert_refused(response, field):
    assert response.status_code == 400, response.content
    error = response.json()["error"]
    assert error["field"] == field, error
    assert error["message"]
    assert not Campaign.objects.exists()
    assert not PeriodicTask.objects.filter(name__startswith="campaign-").exists()
    assert not ClockedSchedule.objects.exists() and not RedPacketPool.objects.exists()


CASES = [
    ({"text": ""}, "text"),  # empty text
    ({"text": "   \n "}, "text"),
    ({"text": "字" * 1334}, "text"),  # 4002 bytes of UTF-8
    ({"scheduled_at": _soon(hours=-1)}, "scheduled_at"),  # a past schedule
    ({"segment": {"field": "no_such_field", "op": "in", "value": [1]}}, "segment.field"),  # an unknown field
    ({"segment": {"all": [{"field": "vip_group", "op": "is", "value": True},
                          {"field": "tags", "op": "sideways", "value": [1]}]}}, "segment.all[1].op"),
    ({"segment": {"field": "tags", "op": "any", "value": "lots"}}, "segment.value"),  # a bad value
    ({"saved_segment_id": 999999}, "saved_segment_id"),
    ({"target": "groups"}, "group_chat_ids"),  # no audience: no groups
    ({"target": "groups", "group_chat_ids": []}, "group_chat_ids"),
    ({"target": "groups", "group_chat_ids": ["wrNOSUCH"]}, "group_chat_ids[0]"),
    ({"target": "groups", "group_chat_ids": ["wrDISMISSED"]}, "group_chat_ids[0]"),
    ({"target": "vip_groups"}, "target"),  # no audience: no VIP group
    ({"target": "everybody"}, "target"),
    ({"attachment": "video"}, "attachment"),  # an attachment of the wrong type
    ({"attachment": "link", "link_url": "https://shop.example.com"}, "link_title"),
    ({"attachment": "link", "link_title": "Shop"}, "link_url"),
    ({"attachment": "link", "link_title": "Shop", "link_url": "ftp://shop.example.com/"}, "link_url"),
    ({"attachment": "link", "link_title": "T" * 129, "link_url": "https://shop.example.com"}, "link_title"),
    ({"attachment": "miniprogram", "miniprogram_appid": "shop", "miniprogram_page": "/i",
      "miniprogram_title": "Shop"}, "miniprogram_appid"),
    ({"attachment": "miniprogram", "miniprogram_appid": "wx1234567890abcdef", "miniprogram_page": "/i"},
     "miniprogram_title"),
    ({"attachment": "image", "scheduled_at": _soon(hours=1)}, "image"),  # scheduled without its image
    ({"recurrence": "daily", "recur_time": "20:00"}, "recurrence"),
    ({"recurrence": "weekly", "recur_time": "20:00"}, "recur_weekday"),
    ({**WEEKLY, "recur_weekday": 7}, "recur_weekday"),
    ({"recurrence": "monthly", "recur_day": 0, "recur_time": "20:00"}, "recur_day"),
    ({"recurrence": "monthly", "recur_day": 11}, "recur_time"),
    ({**WEEKLY, "recur_time": "25:00"}, "recur_time"),
    ({**WEEKLY, "scheduled_at": _soon(hours=1)}, "scheduled_at"),
    ({**WEEKLY, "recur_until": _soon(hours=-1)}, "recur_until"),
    ({**WEEKLY, "red_packet": {"budget_fen": 5000, "count": 10, "expires_at": _soon(days=1)}}, "red_packet"),
]


@pytest.mark.parametrize(("body", "field"), CASES)
def test_bad_input_is_a_400_naming_the_field(admin_client, world, body, field):
    _assert_refused(_post(admin_client, {**OK, **body}), field)


def test_a_segment_that_selects_nobody_is_no_audience(admin_client, world):
    body = {**OK, "segment": {"field": "tags", "op": "any", "value": [world["tag"].id]}}
    _assert_refused(_post(admin_client, body), "segment")
    saved = Segment.objects.create(name="nobody", definition=body["segment"])
    _assert_refused(_post(admin_client, {**OK, "saved_segment_id": saved.id}), "saved_segment_id")
    both = {**OK, "saved_segment_id": saved.id, "segment": {"field": "channel", "op": "in", "value": []}}
    assert _post(admin_client, both).json()["error"]["field"] in ("segment", "segment.value")


def test_the_old_flat_segment_shape_is_still_accepted(admin_client, world):
    response = _post(admin_client, {**OK, "segment": {"exclude_tags": [world["tag"].id]}})
    assert response.status_code == 201, response.content
    assert response.json()["segment"] != {}


def test_bad_update_changes_nothing(admin_client, world):
    created = _post(admin_client, {**OK, **WEEKLY}).json()
    task = PeriodicTask.objects.get(name=f"campaign-{created['id']}")
    for body, field in [({"text": ""}, "text"), ({"recur_weekday": 9}, "recur_weekday"),
                        ({"target": "groups", "group_chat_ids": ["wrNOSUCH"]}, "group_chat_ids[0]"),
                        ({"recurrence": "once", "scheduled_at": _soon(hours=-2)}, "scheduled_at")]:
        response = admin_client.patch(f"/api/campaigns/{created['id']}/", body, content_type="application/json")
        assert response.status_code == 400 and response.json()["error"]["field"] == field, response.content
    campaign = Campaign.objects.get()
    assert (campaign.text, campaign.recurrence, campaign.recur_weekday, campaign.target) == (
        OK["text"], "weekly", 4, "segment")
    task.refresh_from_db()
    assert task.crontab.day_of_week == "5" and task.enabled


def test_image_upload_refuses_other_types_and_sizes(admin_client, world, media_root):
    cid = _post(admin_client, OK).json()["id"]
    url = f"/api/campaigns/{cid}/image/"
    for content, name in [(GIF, "sale.png"), (b"%PDF-1.7" + b"\x00" * 40, "sale.jpg"), (b"\x89PNG", "tiny.png"),
                          (b"\x89PNG\r\n\x1a\n" + b"\x00" * (10 * 1024 * 1024), "huge.png")]:
        response = admin_client.post(url, {"image": SimpleUploadedFile(name, content)})
        assert response.status_code == 400 and response.json()["error"]["field"] == "image", response.content
    response = admin_client.post(url, {"picture": SimpleUploadedFile("a.png", PNG)})
    assert response.status_code == 400 and response.json()["error"]["field"] == "image"
    campaign = Campaign.objects.get()
    assert not campaign.image and campaign.attachment == ""
    assert files_under(media_root) == []
    # A good one is stored; it becomes the attachment.
    response = admin_client.post(url, {"image": SimpleUploadedFile("sale.png", PNG)})
    assert response.status_code == 200, response.content
    assert response.json()["attachment"] == "image" and response.json()["image_url"] == url
    assert b"".join(admin_client.get(url).streaming_content) == PNG
    assert len(files_under(media_root)) == 1


def test_a_refused_create_leaves_no_file(world, media_root):
    from crm.errors import ApplicationError
    from crm.services.campaigns import campaign_create

    with pytest.raises(ApplicationError) as refused:
        campaign_create(name="x", text="hi", attachment="image", image=PNG, recurrence="weekly", recur_weekday=1,
                        recur_time="09:00", red_packet={"budget_fen": 1, "count": 1, "expires_at": timezone.now()})
    assert refused.value.field == "red_packet"
    assert not Campaign.objects.exists() and files_under(media_root) == []
