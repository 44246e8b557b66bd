"""Tags both ways (issue 14): untagging in WeCom leaves the segments, WeCom's console renames and deletes come back
by change_external_tag, and the CRM's renames and deletes (service, API, console) are pushed to WeCom first."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model

from crm.models import CallbackEvent, Contact, ContactTag, FollowRelation, Tag
from crm.models.contacts import ContactEvent
from crm.services.channels import channel_create
from crm.services.roles import MARKETING, user_role_set
from crm.services.segments import resolve, segment_validate
from crm.services.sync import reconcile
from crm.services.tags import tag_delete, tag_rename, tags_sync_from_wecom
from crm.wecom.client import get_client
from tests.conftest import wait_for
from tests.crm.contacts.conftest import settle

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.worker]


@pytest.fixture
def tagged(staffed, celery_worker, redis_client):
    """Mei follows Alice and Bob; WeCom's console made Interest/Tea, the CRM's app made Tier/Gold; Alice tagged Mei
    with both in her client."""
    sim = staffed
    channel_create(name="A", state="qr-a", staff_userids=["alice"])
    channel_create(name="B", state="qr-b", staff_userids=["bob"])
    tea = sim.post("corp_tags", {"group_name": "Interest", "tag": ["Tea"]})["tag"][0]["id"]
    gold = get_client().add_corp_tag([{"name": "Gold"}], group_name="Tier")["tag_group"]["tag"][0]["id"]
    eid = sim.shopper("Mei")
    sim.scan(eid, "qr-a")
    sim.scan(eid, "qr-b")
    sim.post("members/alice/edit_customer", {"external_userid": eid, "add_tag": [tea, gold]})
    _quiet(sim, redis_client)
    contact = Contact.objects.get(external_userid=eid)
    assert _company(contact) == {"Tea", "Gold"}
    return {"sim": sim, "redis": redis_client, "eid": eid, "contact": contact, "tea": tea, "gold": gold}


def _quiet(sim, redis_client) -> None:
    sim.drain(timeout=20)
    wait_for(lambda: not CallbackEvent.objects.exclude(status="applied").exists(), timeout=60,
             message="callbacks processed")
    settle(sim, redis_client)


def _company(contact: Contact) -> set[str]:
    return set(ContactTag.objects.filter(contact=contact).values_list("tag__name", flat=True))


def _wecom_tags(eid: str, userid: str = "alice") -> set[str]:
    follows = get_client().externalcontact_get(eid)["follow_user"]
    return {t["tag_name"] for f in follows if f["userid"] == userid for t in f.get("tags") or []}


def _in_segment(tag: Tag, contact: Contact) -> bool:
    definition = {"field": "tags", "op": "any", "value": [tag.pk]}
    return resolve(segment_validate(definition)).filter(pk=contact.pk).exists()


def test_untagging_in_wecom_leaves_the_company_view_and_the_segment(tagged):
    sim, contact, eid = tagged["sim"], tagged["contact"], tagged["eid"]
    gold = Tag.objects.get(wecom_id=tagged["gold"])
    assert _in_segment(gold, contact)
    # Bob carries Gold too; Alice takes it off: Bob's relation still carries it, so the contact does.
    sim.post("members/bob/edit_customer", {"external_userid": eid, "add_tag": [tagged["gold"]]})
    sim.post("members/alice/edit_customer", {"external_userid": eid, "remove_tag": [tagged["gold"]]})
    _quiet(sim, tagged["redis"])
    assert _company(contact) == {"Tea", "Gold"}
    # Bob deletes the customer: the last relation carrying Gold is gone, so is the tag (and the segment).
    sim.post("members/bob/delete_customer", {"external_userid": eid})
    _quiet(sim, tagged["redis"])
    assert _company(contact) == {"Tea"}
    assert not _in_segment(gold, contact)
    untagged = contact.events.filter(kind=ContactEvent.Kind.UNTAGGED).first()
    assert untagged.data == {"tag": "Tier/Gold", "source": "wecom"}


def test_lost_untag_callback_is_repaired_by_the_reconcile(tagged):
    sim, contact, eid = tagged["sim"], tagged["contact"], tagged["eid"]
    sim.call("PATCH", "corp", {"drop_rate": 1.0})
    sim.post("members/alice/edit_customer", {"external_userid": eid, "remove_tag": [tagged["tea"]],
                                             "remark": "likes tea", "description": "VIP since 2024"})
    _quiet(sim, tagged["redis"])
    assert _company(contact) == {"Tea", "Gold"}  # the callback was lost
    report = reconcile()
    assert report["contacts"]["counts"]["contacts_untagged"] == 1
    assert _company(contact) == {"Gold"}
    follow = FollowRelation.objects.get(contact=contact, staff__userid="alice")
    assert (follow.remark, follow.description, follow.wecom_tag_ids) == ("likes tea", "VIP since 2024",
                                                                         [tagged["gold"]])


def test_wecom_console_rename_and_delete_come_back(tagged):
    sim, contact = tagged["sim"], tagged["contact"]
    sim.post(f"corp_tags/{tagged['tea']}/edit", {"name": "Green tea"})
    _quiet(sim, tagged["redis"])
    assert Tag.objects.get(wecom_id=tagged["tea"]).name == "Green tea"
    sim.post(f"corp_tags/{tagged['tea']}/delete")
    _quiet(sim, tagged["redis"])
    tea = Tag.objects.get(wecom_id=tagged["tea"])
    assert tea.deleted_at is not None  # kept, marked deleted
    assert _company(contact) == {"Gold"}
    assert tagged["tea"] not in FollowRelation.objects.get(contact=contact, staff__userid="alice").wecom_tag_ids


def test_crm_rename_and_delete_are_pushed_to_wecom(tagged):
    eid, contact = tagged["eid"], tagged["contact"]
    gold = Tag.objects.get(wecom_id=tagged["gold"])
    change = tag_rename(gold, "Platinum")
    assert change.wecom == "pushed"
    assert _wecom_tags(eid) == {"Tea", "Platinum"}
    assert tags_sync_from_wecom()["renamed"] == 0  # WeCom and the CRM agree
    change = tag_delete(gold)
    assert change.wecom == "pushed"
    assert _wecom_tags(eid) == {"Tea"}
    listed = get_client().get_corp_tag_list(tag_id=[tagged["gold"]])["tag_group"][0]["tag"][0]
    assert listed["deleted"] is True
    assert _company(contact) == {"Tea"}
    assert contact.events.filter(kind=ContactEvent.Kind.UNTAGGED, data__source="crm").exists()


def test_a_console_made_tag_cannot_be_renamed_from_the_crm(tagged):
    from crm.errors import ApplicationError

    tea = Tag.objects.get(wecom_id=tagged["tea"])
    with pytest.raises(ApplicationError) as exc:
        tag_rename(tea, "Oolong")
    assert exc.value.code == "wecom_not_owner" and exc.value.status_code == 409
    assert Tag.objects.get(pk=tea.pk).name == "Tea"


def test_tag_api_rename_and_delete(tagged, client):
    marketer = get_user_model().objects.create_user("mkt", password="pw", is_staff=True)
    user_role_set(marketer, MARKETING)
    client.force_login(marketer)
    gold = Tag.objects.get(wecom_id=tagged["gold"])
    tea = Tag.objects.get(wecom_id=tagged["tea"])
    response = client.patch(f"/api/tags/{gold.pk}/", {"name": "Platinum"}, content_type="application/json")
    assert response.status_code == 200, response.content
    assert response.json()["wecom"] == "pushed" and response.json()["tag"]["name"] == "Platinum"
    assert _wecom_tags(tagged["eid"]) == {"Tea", "Platinum"}
    response = client.patch(f"/api/tags/{gold.pk}/", {"name": "x" * 31}, content_type="application/json")
    assert response.status_code == 400 and response.json()["error"]["field"] == "name"
    response = client.patch(f"/api/tags/{tea.pk}/", {"name": "Oolong"}, content_type="application/json")
    assert response.status_code == 409 and response.json()["error"]["code"] == "wecom_not_owner"
    assert client.delete(f"/api/tags/{gold.pk}/").status_code == 403  # marketing renames; deleting is the admin's
    assert client.patch("/api/tags/999999/", {"name": "y"}, content_type="application/json").status_code == 404

    admin = get_user_model().objects.create_superuser("boss", password="pw")
    client.force_login(admin)
    response = client.delete(f"/api/tags/{gold.pk}/")
    assert response.status_code == 200 and response.json()["wecom"] == "pushed"
    assert _wecom_tags(tagged["eid"]) == {"Tea"}
    assert client.get("/api/tags/").json() == [
        {"id": tea.pk, "name": "Tea", "group": {"id": tea.group_id, "name": "Interest", "wecom_id": tea.group.wecom_id,
                                                 "deleted_at": None}, "wecom_id": tagged["tea"], "deleted_at": None}
    ]


def test_a_relation_made_again_after_the_customer_deleted_the_member_is_two_way(tagged):
    sim, eid = tagged["sim"], tagged["eid"]
    sim.post(f"shoppers/{eid}/delete_staff", {"userid": "bob"})
    _quiet(sim, tagged["redis"])
    follow = FollowRelation.objects.get(contact=tagged["contact"], staff__userid="bob")
    assert follow.deleted_by_customer_at is not None
    sim.advance(5)
    sim.scan(eid, "qr-b")  # the customer adds Bob back
    _quiet(sim, tagged["redis"])
    follow.refresh_from_db()
    assert follow.deleted_by_customer_at is None and follow.is_active


def test_tag_group_rename_and_delete_are_pushed(tagged, client):
    from crm.models import TagGroup

    client.force_login(get_user_model().objects.create_superuser("boss", password="pw"))
    tier = TagGroup.objects.get(name="Tier")
    response = client.patch(f"/api/tag-groups/{tier.pk}/", {"name": "Level"}, content_type="application/json")
    assert response.status_code == 200 and response.json()["wecom"] == "pushed", response.content
    groups = {g["group_id"]: g["group_name"] for g in get_client().get_corp_tag_list()["tag_group"]}
    assert groups[tier.wecom_id] == "Level"
    response = client.delete(f"/api/tag-groups/{tier.pk}/")
    assert response.status_code == 200 and response.json()["wecom"] == "pushed"
    assert tier.wecom_id not in {g["group_id"] for g in get_client().get_corp_tag_list()["tag_group"]}
    assert Tag.objects.get(wecom_id=tagged["gold"]).deleted_at is not None
    assert _company(tagged["contact"]) == {"Tea"}
    interest = TagGroup.objects.get(name="Interest")  # WeCom's console made it: refused, unchanged
    response = client.patch(f"/api/tag-groups/{interest.pk}/", {"name": "Hobby"}, content_type="application/json")
    assert response.status_code == 409 and response.json()["error"]["code"] == "wecom_not_owner"


def test_console_delete_goes_through_the_service_and_says_what_wecom_did(tagged, client):
    client.force_login(get_user_model().objects.create_superuser("boss", password="pw"))
    gold = Tag.objects.get(wecom_id=tagged["gold"])
    response = client.post(f"/admin/crm/tag/{gold.pk}/delete/", {"post": "yes"}, follow=True)
    assert response.status_code == 200
    assert "Deleted. WeCom was updated too." in [str(m) for m in response.context["messages"]]
    gold.refresh_from_db()
    assert gold.deleted_at is not None  # kept, marked deleted; WeCom's is gone and the contact lost it
    assert get_client().get_corp_tag_list(tag_id=[tagged["gold"]])["tag_group"][0]["tag"][0]["deleted"] is True
    assert _company(tagged["contact"]) == {"Tea"}
    assert client.get(f"/admin/crm/tag/{gold.pk}/delete/").status_code == 403  # a deleted tag is read-only
