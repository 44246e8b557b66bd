"""crm_contact.tag_ids (PostgreSQL): the trigger keeps it equal to ContactTag on every write path, and segments
resolved through it select exactly what the EXISTS form selects. SQLite has neither (CI runs on PostgreSQL)."""

from __future__ import annotations

import random
from datetime import UTC, datetime

import pytest
from django.db import connection

from crm.models import Channel, ConsentRecord, Contact, ContactTag, FollowRelation, Staff, Tag, TagGroup
from crm.services import segments
from crm.services.consent import contacts_consenting
from crm.services.tags import contact_tag_add, contact_tag_remove, contacts_bulk_tag

pytestmark = [
    pytest.mark.django_db,
    pytest.mark.skipif(connection.vendor != "postgresql", reason="crm_contact.tag_ids exists on PostgreSQL only"),
]


def _array(contact: Contact) -> list[int]:
    with connection.cursor() as cur:
        cur.execute("SELECT tag_ids FROM crm_contact WHERE id = %s", [contact.pk])
        return sorted(cur.fetchone()[0])


def _rows(contact: Contact) -> list[int]:
    return sorted(ContactTag.objects.filter(contact=contact).values_list("tag_id", flat=True))


def _all_in_step() -> None:
    for contact in Contact.objects.all():
        assert _array(contact) == _rows(contact), contact


@pytest.fixture
def tags():
    group = TagGroup.objects.create(name="G")
    return [Tag.objects.create(group=group, name=f"t{i}") for i in range(4)]


def test_every_write_path_keeps_the_array_equal_to_the_contact_tag_rows(tags):
    a, b, c, d = tags
    ann, bob = (Contact.objects.create(external_userid=f"wm{n}") for n in ("ann", "bob"))
    assert _array(ann) == []

    assert contact_tag_add(ann, a) and not contact_tag_add(ann, a)  # the repeat adds nothing, twice nothing
    contact_tag_add(ann, b)
    assert _array(ann) == sorted([a.pk, b.pk])
    contact_tag_remove(ann, a)
    assert _array(ann) == [b.pk]

    contacts_bulk_tag(contact_ids=[ann.pk, bob.pk], tag_ids=[c.pk, d.pk])
    ContactTag.objects.bulk_create([ContactTag(contact=bob, tag=a)])  # what the WeCom sync does
    _all_in_step()
    assert _array(bob) == sorted([a.pk, c.pk, d.pk])

    ContactTag.objects.filter(contact=bob, tag=a).update(tag=b)  # a row moved to another tag
    ContactTag.objects.filter(contact=ann, tag=c).update(contact=bob, tag=a)  # ... and to another contact
    _all_in_step()
    assert _array(ann) == sorted([b.pk, d.pk])

    d.delete()  # cascades to its ContactTag rows
    _all_in_step()
    contacts_bulk_tag(contact_ids=[bob.pk], tag_ids=[c.pk], remove=True)
    _all_in_step()
    assert _array(bob) == sorted([a.pk, b.pk])


def test_a_stale_contact_save_does_not_write_an_old_array_back(tags):
    ann = Contact.objects.create(external_userid="wmann")
    stale = Contact.objects.get(pk=ann.pk)
    contact_tag_add(ann, tags[0])
    stale.name = "Ann"
    stale.save()
    assert _array(ann) == [tags[0].pk]


@pytest.fixture
def world(tags):
    """A small random contact base: tags, channels, follows (some deleted, some by resigned staff), consent."""
    rng = random.Random(20261122)
    group = tags[0].group
    tags = [*tags, Tag.objects.create(group=group, name="VIP")]
    channels = [Channel.objects.create(name=f"c{i}", state=f"s{i}") for i in range(3)]
    staff = [
        Staff.objects.create(userid="s0"),
        Staff.objects.create(userid="s1"),
        Staff.objects.create(userid="s2", status=Staff.Status.RESIGNED),
    ]
    for i in range(80):
        contact = Contact.objects.create(external_userid=f"wm{i}", channel=rng.choice([None, *channels]))
        for tag in rng.sample(tags, rng.randint(0, 4)):
            ContactTag.objects.create(contact=contact, tag=tag)
        for member in rng.sample(staff, rng.randint(0, 2)):
            deleted = datetime(2026, 1, 1, tzinfo=UTC) if rng.random() < 0.3 else None
            FollowRelation.objects.create(staff=member, contact=contact, deleted_by_staff_at=deleted)
        if rng.random() < 0.5:
            ConsentRecord.objects.create(
                contact=contact, purpose="marketing", version=1, granted=True, source="card_page",
                recorded_at=datetime(2026, 1, 1, tzinfo=UTC),
            )
    return rng, tags, channels, staff


def _random_segment(rng, tags, channels, staff) -> dict:
    segment: dict = {}
    if rng.random() < 0.7:
        segment["tags"] = [t.pk for t in rng.sample(tags, rng.randint(1, 3))]
        segment["tags_match"] = rng.choice(["any", "all"])
    if rng.random() < 0.5:
        segment["exclude_tags"] = [t.pk for t in rng.sample(tags, rng.randint(1, 2))]
    if rng.random() < 0.3:
        segment["channels"] = [c.pk for c in rng.sample(channels, rng.randint(1, 2))]
    if rng.random() < 0.3:
        segment["staff"] = [s.userid for s in rng.sample(staff, rng.randint(1, 2))]
    if rng.random() < 0.3:
        segment["vip"] = True
    return segments.segment_validate(segment)


def test_segments_through_the_array_select_what_the_exists_form_selects(world):
    rng, tags, channels, staff = world
    nonempty = 0
    for _ in range(150):
        segment = _random_segment(rng, tags, channels, staff)
        expected = list(segments.resolve(segment, use_tag_array=False).values_list("id", flat=True))
        got = segments.resolve(segment)
        assert list(got.values_list("id", flat=True)) == expected, segment
        assert got.count() == len(expected), segment
        # Nested as a subquery (Django renames the contact table's alias there), as consent filtering does.
        nested = Contact.objects.filter(pk__in=got.values("pk")).order_by("pk").values_list("id", flat=True)
        assert list(nested) == expected, segment
        nonempty += bool(expected)
    assert nonempty > 30  # the comparison was not between empty sets


def test_campaign_recipients_filter_on_top_of_the_array_segment(world):
    _, tags, _, _ = world
    segment = segments.segment_validate({"tags": [tags[0].pk], "exclude_tags": [tags[1].pk]})
    via_array = contacts_consenting("marketing", segments.resolve(segment))
    via_exists = contacts_consenting("marketing", segments.resolve(segment, use_tag_array=False))
    expected = sorted(via_exists.values_list("id", flat=True))
    assert expected  # consenting contacts with tag 0 and without tag 1 exist in this world
    assert sorted(via_array.values_list("id", flat=True)) == expected
