"""The staff contacts API: list with filters, detail with timeline, bulk tag, CSV export, channel create."""

from __future__ import annotations

import csv
import io
from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.utils import timezone

from crm.models import Channel, Contact, ContactTag, FollowRelation, Staff, Tag, TagGroup
from crm.models.consent import ConsentRecord
from crm.models.contacts import ContactEvent
from crm.services.contacts import contact_set_phone, phone_decrypt
from crm.services.timeline import timeline_add

pytestmark = pytest.mark.django_db


@pytest.fixture
def api(client):
    user = get_user_model().objects.create_superuser("admin", password="pw")
    client.force_login(user)
    return client


@pytest.fixture
def world():
    alice = Staff.objects.create(userid="alice", name="Alice")
    bob = Staff.objects.create(userid="bob", name="Bob")
    channel = Channel.objects.create(name="Shanghai", state="store-sh-001")
    vip = Tag.objects.create(group=TagGroup.objects.create(name="Tier"), name="VIP")
    now = timezone.now()
    mei = Contact.objects.create(external_userid="wmMEI", name="Mei", channel=channel, first_added_at=now)
    lei = Contact.objects.create(external_userid="wmLEI", name="Lei", first_added_at=now - timedelta(days=10))
    FollowRelation.objects.create(staff=alice, contact=mei, remark="likes tea", added_at=now)
    FollowRelation.objects.create(staff=bob, contact=lei, remark="", added_at=now - timedelta(days=10))
    ContactTag.objects.create(contact=mei, tag=vip)
    contact_set_phone(lei, "+86 138-0013-8000")
    timeline_add(mei, ContactEvent.Kind.ADDED, staff=alice, data={"state": "store-sh-001"})
    ConsentRecord.objects.create(contact=mei, purpose="marketing", version=1, granted=True, source="t",
                                 recorded_at=now)
    ConsentRecord.objects.create(contact=lei, purpose="marketing", version=1, granted=True, source="t",
                                 recorded_at=now)
    ConsentRecord.objects.create(contact=lei, purpose="marketing", version=2, granted=False, source="t",
                                 recorded_at=now)
    return {"mei": mei, "lei": lei, "vip": vip, "channel": channel}


def _ids(response) -> set[str]:
    assert response.status_code == 200, response.content
    return {row["external_userid"] for row in response.json()["results"]}


def test_list_filters(api, world):
    url = "/api/contacts/"
    assert _ids(api.get(url)) == {"wmMEI", "wmLEI"}
    assert _ids(api.get(url, {"tag": world["vip"].id})) == {"wmMEI"}
    assert _ids(api.get(url, {"tier": "vip"})) == {"wmMEI"}
    assert _ids(api.get(url, {"channel": world["channel"].id})) == {"wmMEI"}
    assert _ids(api.get(url, {"staff": "bob"})) == {"wmLEI"}
    assert _ids(api.get(url, {"q": "mei"})) == {"wmMEI"}
    assert _ids(api.get(url, {"q": "tea"})) == {"wmMEI"}  # remark
    assert _ids(api.get(url, {"q": "13800138000"})) == {"wmLEI"}  # phone, matched by keyed hash
    assert _ids(api.get(url, {"consent": "marketing"})) == {"wmMEI"}  # Lei withdrew in version 2
    since = (timezone.now() - timedelta(days=1)).isoformat()
    assert _ids(api.get(url, {"added_from": since})) == {"wmMEI"}
    bad = api.get(url, {"added_from": "yesterday"})
    assert bad.status_code == 400 and bad.json()["error"]["field"] == "added_from"


def test_phone_is_encrypted_at_rest(world):
    lei = Contact.objects.get(external_userid="wmLEI")
    assert "13800138000" not in lei.phone_encrypted
    assert phone_decrypt(lei.phone_encrypted) == "13800138000"
    assert len(lei.phone_hash) == 64


def test_detail_with_timeline(api, world):
    response = api.get(f"/api/contacts/{world['mei'].id}/")
    assert response.status_code == 200
    body = response.json()
    assert body["channel"]["state"] == "store-sh-001"
    assert body["follows"][0]["staff"] == "alice" and body["follows"][0]["remark"] == "likes tea"
    assert body["timeline"][0]["kind"] == "added" and body["timeline"][0]["staff"] == "alice"
    assert body["tags"] == ["Tier/VIP"]
    assert api.get("/api/contacts/999999/").status_code == 404


def test_bulk_tag_all_or_nothing(api, world):
    tag = Tag.objects.create(group=world["vip"].group, name="Gold")
    ids = [world["mei"].id, world["lei"].id]
    bad = api.post("/api/contacts/bulk-tag/", {"contact_ids": ids, "tag_ids": [tag.id, 424242]},
                   content_type="application/json")
    assert bad.status_code == 400 and bad.json()["error"]["field"] == "tag_ids"
    assert not ContactTag.objects.filter(tag=tag).exists()

    ok = api.post("/api/contacts/bulk-tag/", {"contact_ids": ids, "tag_ids": [tag.id]},
                  content_type="application/json")
    assert ok.json() == {"changed": 2}
    assert ContactTag.objects.filter(tag=tag).count() == 2
    assert ContactEvent.objects.filter(kind="tagged", data__source="bulk").count() == 2
    again = api.post("/api/contacts/bulk-tag/", {"contact_ids": ids, "tag_ids": [tag.id]},
                     content_type="application/json")
    assert again.json() == {"changed": 0}
    untag = api.post("/api/contacts/bulk-tag/", {"contact_ids": ids, "tag_ids": [tag.id], "action": "untag"},
                     content_type="application/json")
    assert untag.json() == {"changed": 2} and not ContactTag.objects.filter(tag=tag).exists()


def test_csv_export_respects_filters(api, world):
    response = api.get("/api/contacts/export.csv", {"staff": "alice"})
    assert response.status_code == 200 and response["Content-Type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert [r["external_userid"] for r in rows] == ["wmMEI"]
    assert rows[0]["channel_state"] == "store-sh-001" and rows[0]["tags"] == "Tier/VIP"


def test_channel_create_refusal_names_field(api, world):
    response = api.post("/api/channels/", {"name": "X", "state": "y" * 40, "staff_userids": ["alice"]},
                        content_type="application/json")
    assert response.status_code == 400 and response.json()["error"]["field"] == "state"
    response = api.post("/api/channels/", {"name": "X", "state": "ok-1", "staff_userids": ["ghost"]},
                        content_type="application/json")
    assert response.status_code == 400 and response.json()["error"]["field"] == "staff_userids"
    assert Channel.objects.count() == 1


def test_channel_daily_stats(api, world):
    follow = FollowRelation.objects.get(contact=world["mei"])
    follow.state = "store-sh-001"
    follow.save()
    today = timezone.localdate()
    response = api.get(f"/api/channels/{world['channel'].id}/stats/", {"start": today.isoformat(),
                                                                      "end": today.isoformat()})
    assert response.json() == [{"day": today.isoformat(), "adds": 1, "deletions": 0, "net": 1}]
    bad = api.get(f"/api/channels/{world['channel'].id}/stats/", {"start": today.isoformat(), "end": "2000-01-01"})
    assert bad.status_code == 400 and bad.json()["error"]["field"] == "end"


def test_api_needs_staff_user(client, world):
    assert client.get("/api/contacts/").status_code in (401, 403)


@pytest.mark.django_db(transaction=True)
def test_handover_api_validates_and_reports(api, world, sim):
    # Starting a resigned handover asks WeCom whether the leaver has really left (else nothing would move).
    sim.member("alice", "Alice")
    sim.member("bob", "Bob")
    sim.post("members/alice/resign")
    Staff.objects.filter(userid="alice").update(status="resigned")
    bad = api.post("/api/handovers/", {"kind": "resigned", "handover_userid": "alice", "takeover_userids": ["zed"]},
                   content_type="application/json")
    assert bad.status_code == 400 and bad.json()["error"]["field"] == "takeover_userids"
    bad = api.post("/api/handovers/", {"kind": "later", "handover_userid": "alice", "takeover_userids": ["bob"]},
                   content_type="application/json")
    assert bad.status_code == 400 and bad.json()["error"]["field"] == "kind"
    ok = api.post("/api/handovers/", {"kind": "resigned", "handover_userid": "alice", "takeover_userids": ["bob"]},
                  content_type="application/json")
    assert ok.status_code == 202 and ok.json()["status"] == "submitting" and ok.json()["from"] == "alice"
    assert api.get(f"/api/handovers/{ok.json()['handover']}/").json()["kind"] == "resigned"
    assert api.get("/api/handovers/999/").status_code == 404


@pytest.mark.django_db(transaction=True)
def test_handover_start_says_when_wecom_cannot_be_reached(api, world, settings):
    """WeCom unreachable while the leaver is checked: a 503 the console and API users can act on, not a 500."""
    settings.WECOM_API_BASE_URL = "http://127.0.0.1:9/cgi-bin"  # nothing listens on the discard port
    settings.WECOM_MAX_RETRIES = 0
    Staff.objects.filter(userid="alice").update(status="resigned")
    answer = api.post("/api/handovers/", {"kind": "resigned", "handover_userid": "alice", "takeover_userids": ["bob"]},
                      content_type="application/json")
    assert answer.status_code == 503, answer.content
    assert answer.json()["error"]["code"] == "wecom_unavailable"
