"""Deletions from either side and corp tag sync: the relation is kept and marked, the timeline records it."""

from __future__ import annotations

import pytest

from crm.models import Contact, FollowRelation, Tag, TagGroup
from crm.models.contacts import ContactEvent
from crm.services.channels import channel_create
from crm.services.tags import tags_sync_from_wecom
from crm.wecom.client import get_client
from tests.conftest import wait_for

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.worker]


def test_deletions_keep_the_contact_and_mark_the_relation(staffed, celery_worker):
    sim = staffed
    channel_create(name="Store", state="store-1", staff_userids=["alice", "bob"])
    one, two = sim.shopper("One"), sim.shopper("Two")
    sim.scan(one, "store-1")
    sim.scan(two, "store-1")
    wait_for(lambda: FollowRelation.objects.count() == 2, timeout=30, message="two relations")
    f1 = FollowRelation.objects.get(contact__external_userid=one)
    f2 = FollowRelation.objects.get(contact__external_userid=two)

    sim.post(f"members/{f1.staff.userid}/delete_customer", {"external_userid": one})
    sim.post(f"shoppers/{two}/delete_staff", {"userid": f2.staff.userid})
    wait_for(lambda: FollowRelation.objects.get(pk=f1.pk).deleted_by_staff_at is not None, timeout=30,
             message="deleted by staff")
    wait_for(lambda: FollowRelation.objects.get(pk=f2.pk).deleted_by_customer_at is not None, timeout=30,
             message="deleted by customer")
    f2.refresh_from_db()
    assert f2.deleted_by_staff_at is None  # one-way now: still the staff member's customer in WeCom
    assert Contact.objects.filter(external_userid__in=[one, two]).count() == 2  # the company keeps them
    assert Contact.objects.get(external_userid=one).events.filter(kind=ContactEvent.Kind.DELETED_BY_STAFF).exists()
    assert Contact.objects.get(external_userid=two).events.filter(
        kind=ContactEvent.Kind.DELETED_BY_CUSTOMER).exists()


def test_corp_tags_sync_from_wecom(staffed):
    client = get_client()
    created = client.add_corp_tag([{"name": "Gold"}, {"name": "Silver"}], group_name="Tier")["tag_group"]
    counts = tags_sync_from_wecom()
    assert counts["tags"] == 2
    group = TagGroup.objects.get(wecom_id=created["group_id"])
    assert group.name == "Tier"
    assert set(Tag.objects.filter(group=group).values_list("name", flat=True)) == {"Gold", "Silver"}
    gold = next(t for t in created["tag"] if t["name"] == "Gold")
    client.del_corp_tag(tag_id=[gold["id"]])
    tags_sync_from_wecom()
    assert Tag.objects.get(wecom_id=gold["id"]).deleted_at is not None  # kept, marked deleted
    assert Tag.objects.get(name="Silver").deleted_at is None


def test_company_tags_are_pushed_to_wecom_relations(staffed, celery_worker):
    from crm.services.tags import contacts_bulk_tag, tag_ensure

    sim = staffed
    channel_create(name="Store", state="store-1", staff_userids=["alice"])
    eid = sim.shopper("Tagged")
    sim.scan(eid, "store-1")
    contact = wait_for(lambda: Contact.objects.filter(external_userid=eid).first(), timeout=30, message="contact")
    gold = tag_ensure("Tier", "Gold")

    def wecom_tags():
        follow = get_client().externalcontact_get(eid)["follow_user"][0]
        return sorted(t["tag_name"] for t in follow.get("tags") or [])

    contacts_bulk_tag(contact_ids=[contact.id], tag_ids=[gold.id])
    wait_for(lambda: wecom_tags() == ["Gold"], timeout=30, message="tag marked in WeCom")
    gold.refresh_from_db()
    assert gold.wecom_id and gold.group.wecom_id  # created as a corp tag once
    contacts_bulk_tag(contact_ids=[contact.id], tag_ids=[gold.id], remove=True)
    wait_for(lambda: wecom_tags() == [], timeout=30, message="tag removed in WeCom")
