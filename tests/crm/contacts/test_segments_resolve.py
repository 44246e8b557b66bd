"""Segment resolution (EXISTS-based, ids looked up first): the edge cases the rewrite must keep."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from crm.models import Contact, ContactTag, FollowRelation, Staff, Tag, TagGroup
from crm.services import segments

pytestmark = pytest.mark.django_db


def _ids(raw: dict) -> list[int]:
    return list(segments.resolve(segments.segment_validate(raw)).values_list("id", flat=True))


def _contact(name: str, tags=(), follows=()) -> Contact:
    contact = Contact.objects.create(external_userid=f"wm{name}", name=name)
    for tag in tags:
        ContactTag.objects.create(contact=contact, tag=tag)
    for staff, deleted in follows:
        FollowRelation.objects.create(
            staff=staff, contact=contact, deleted_by_staff_at=datetime(2026, 1, 1, tzinfo=UTC) if deleted else None
        )
    return contact


@pytest.fixture
def world():
    group, other = TagGroup.objects.create(name="G"), TagGroup.objects.create(name="Tier")
    gold, silver, spam = (Tag.objects.create(group=group, name=n) for n in ("gold", "silver", "spam"))
    vip_a, vip_b = Tag.objects.create(group=group, name="VIP"), Tag.objects.create(group=other, name="VIP")
    alice = Staff.objects.create(userid="alice")
    gone = Staff.objects.create(userid="gone", status=Staff.Status.RESIGNED)
    hidden = Staff.objects.create(userid="hidden", has_customer_contact=False)
    return {
        "tags": (gold, silver, spam, vip_a, vip_b),
        "staff": (alice, gone, hidden),
        "both": _contact("both", [gold, silver, vip_a], [(alice, False), (gone, False)]),
        "gold_spam": _contact("gold_spam", [gold, spam, vip_b], [(alice, True)]),
        "untagged": _contact("untagged", [], [(hidden, False)]),
        "gone_only": _contact("gone_only", [silver], [(gone, False)]),
    }


def test_tags_any_all_and_exclude_give_each_contact_once_in_id_order(world):
    gold, silver, spam, *_ = world["tags"]
    both, gold_spam, untagged, gone_only = (world[k].id for k in ("both", "gold_spam", "untagged", "gone_only"))
    assert _ids({"tags": [gold.id, silver.id]}) == sorted([both, gold_spam, gone_only])  # "both" once
    assert _ids({"tags": [gold.id, silver.id, gold.id], "tags_match": "all"}) == [both]
    assert _ids({"tags": [gold.id, silver.id, spam.id], "tags_match": "all"}) == []
    # A contact without any tag is kept by an exclusion (NOT EXISTS, not NOT IN).
    assert _ids({"exclude_tags": [spam.id]}) == sorted([both, untagged, gone_only])
    assert segments.resolve(segments.segment_validate({"tags": [gold.id, silver.id]})).count() == 3


def test_vip_means_any_tag_named_vip_and_nothing_without_one(world):
    assert _ids({"vip": True}) == sorted([world["both"].id, world["gold_spam"].id])
    Tag.objects.filter(name="VIP").delete()
    assert _ids({"vip": True}) == []


def test_staff_keeps_only_active_relations_of_staff_who_can_send(world):
    assert _ids({"staff": ["alice"]}) == [world["both"].id]  # gold_spam: alice deleted the customer
    assert _ids({"staff": ["gone"]}) == []  # resigned
    assert _ids({"staff": ["hidden"]}) == []  # not in get_follow_user_list
    assert _ids({"staff": ["alice", "gone", "hidden"]}) == [world["both"].id]
    gold = world["tags"][0]
    assert _ids({"staff": ["alice"], "tags": [gold.id], "exclude_tags": [world["tags"][1].id]}) == []
