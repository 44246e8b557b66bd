"""The console's contact page: profile, follows, tags (add/remove through the tag service), consent with its
history, loyalty's panel (registered by loyalty, not imported by crm), the timeline newest first and paginated."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest
from django.test import Client
from django.urls import reverse

from crm.console.panels import contact_panels
from crm.errors import ApplicationError
from crm.models import Contact, ContactTag, FollowRelation, Staff, Tag, TagGroup
from crm.models.consent import ConsentRecord
from crm.models.contacts import ContactEvent
from crm.services.consent import consent_record
from crm.services.timeline import timeline_add
from loyalty.models import Card, Purchase, PurchaseLine, Store, Tier, TierPolicy
from tests.conftest import wait_for
from tests.crm.console.conftest import make_user
from tests.crm.contacts.conftest import sim, staffed  # noqa: F401  (the live simulator world, for tag pushes)

pytestmark = pytest.mark.django_db


@pytest.fixture
def world():
    alice = Staff.objects.create(userid="alice", name="Alice")
    bob = Staff.objects.create(userid="bob", name="Bob", status=Staff.Status.RESIGNED)
    mei = Contact.objects.create(external_userid="wmMEI", name="Mei",
                                 first_added_at=datetime(2026, 3, 1, 16, 30, tzinfo=UTC))
    FollowRelation.objects.create(staff=alice, contact=mei, remark="VIP Mei", state="store-sh-001",
                                  added_at=datetime(2026, 3, 1, 16, 30, tzinfo=UTC))
    FollowRelation.objects.create(staff=bob, contact=mei, added_at=datetime(2026, 2, 1, tzinfo=UTC),
                                  deleted_by_customer_at=datetime(2026, 2, 10, tzinfo=UTC))
    group = TagGroup.objects.create(name="Interest")
    shoes = Tag.objects.create(group=group, name="Shoes")
    bags = Tag.objects.create(group=group, name="Bags")
    ContactTag.objects.create(contact=mei, tag=shoes)
    consent_record(contact_id=mei.id, purpose="marketing", granted=True, source="card_page", policy_version="2026-01")
    consent_record(contact_id=mei.id, purpose="marketing", granted=False, source="card_page", policy_version="2026-01")
    return {"alice": alice, "bob": bob, "mei": mei, "shoes": shoes, "bags": bags}


def url(contact: Contact) -> str:
    return reverse("console:contact", args=[contact.pk])


def test_admin_sees_profile_follows_tags_consent_and_timeline(admin_client, world):
    mei = world["mei"]
    response = admin_client.get(url(mei))
    assert response.status_code == 200
    html = response.content.decode()
    assert 'data-testid="contact-page"' in html and "wmMEI" in html
    # Rendered in the console's layout (unfold's base), not a bare page.
    assert "unfold/css/styles.css" in html
    # Both follow relations with their staff; the one added at 16:30 UTC shows in Shanghai time (00:30 next day).
    assert html.count('data-testid="follow-row"') == 2
    assert "Alice" in html and "Bob" in html and "VIP Mei" in html
    assert "2026-03-02 00:30" in html
    # Tags: Shoes carried (with a remove form), Bags offered in the add form, Shoes not offered again.
    tags_html = html.split('data-testid="contact-tags"')[1].split("</ul>")[0]
    assert "Shoes" in tags_html and "Bags" not in tags_html
    select = html.split('data-testid="tag-select"')[1].split("</select>")[0]
    assert f'value="{world["bags"].pk}"' in select and f'value="{world["shoes"].pk}"' not in select
    # Consent: marketing withdrawn in force, both versions listed newest first; the other purposes never given.
    marketing = html.split('data-purpose="marketing"')[1].split('data-testid="consent-purpose"')[0]
    assert 'data-granted="0"' in html.split('data-purpose="marketing"')[1][:30]
    assert marketing.index("v2") < marketing.index("v1")
    assert 'data-purpose="behaviour"' in html and 'data-purpose="profiling"' in html
    # The timeline: the consent rows, newest first.
    kinds = re.findall(r'data-testid="timeline-event" data-kind="(\w+)"', html)
    assert kinds == ["consent", "consent"]


def test_timeline_is_newest_first_and_paginated(admin_client, world):
    mei = world["mei"]
    ContactEvent.objects.filter(contact=mei).delete()
    base = datetime(2026, 1, 1, tzinfo=UTC)
    for i in range(30):
        timeline_add(mei, ContactEvent.Kind.EDITED, data={"n": i}, occurred_at=base + timedelta(hours=i))
    first = admin_client.get(url(mei)).content.decode()
    assert first.count('data-testid="timeline-event"') == 25
    numbers = [int(n) for n in re.findall(r'<span class="font-medium">n</span>: (\d+)', first)]
    assert numbers == list(range(29, 4, -1))
    assert 'data-testid="page-nav"' in first
    second = admin_client.get(url(mei), {"page": 2}).content.decode()
    assert [int(n) for n in re.findall(r'<span class="font-medium">n</span>: (\d+)', second)] == [4, 3, 2, 1, 0]
    assert admin_client.get(url(mei), {"page": "zz"}).status_code == 200  # not a number: the first page, no 500


def test_loyalty_panel_is_registered_by_loyalty_and_shows_card_and_purchases(admin_client, world):
    mei = world["mei"]
    assert "loyalty-card" in [p.key for p in contact_panels()]  # registered from LoyaltyConfig.ready()
    html = admin_client.get(url(mei)).content.decode()
    assert 'data-panel="loyalty-card"' in html and 'data-testid="loyalty-no-card"' in html

    # Progress to the next tier counts as the tier rules do; all history here, as this card has no ledger rows.
    TierPolicy.objects.update_or_create(pk=1, defaults={"basis": "points", "window_days": 0})
    gold = Tier.objects.create(name="Gold", min_points=1000, rank=2)
    silver = Tier.objects.create(name="Silver", min_points=0, rank=1)
    card = Card.objects.create(contact=mei, number="800000000018", tier=silver, points_balance=420, lifetime_points=420)
    store = Store.objects.create(code="sh-001", name="Shanghai 1")
    purchase = Purchase.objects.create(store=store, receipt_id="R-77", card=card, amount_fen=12345, points=123)
    PurchaseLine.objects.create(purchase=purchase, sku="SKU-1", name="Sneaker", qty=2, amount_fen=12345)
    html = admin_client.get(url(mei)).content.decode()
    panel = html.split('data-panel="loyalty-card"')[1]
    assert "800000000018" in panel and "Silver" in panel and ">420<" in panel
    assert "R-77" in panel and "¥123.45" in panel and "Sneaker ×2" in panel
    assert gold.name in panel  # the next tier, with the points still to earn
    assert "580" in panel


def test_permissions_gate_the_page_and_its_sections(staff_client_factory, world):
    mei = world["mei"]
    assert staff_client_factory().get(url(mei)).status_code == 403
    viewer = staff_client_factory("crm.view_contact")
    html = viewer.get(url(mei)).content.decode()
    assert 'data-testid="contact-page"' in html
    # Without their own permissions: no tag forms, no consent, no loyalty panel.
    assert 'data-testid="tag-add-form"' not in html and 'data-testid="tag-remove"' not in html
    assert 'data-testid="contact-consents"' not in html and 'data-panel="loyalty-card"' not in html
    response = viewer.post(reverse("console:contact-tag-add", args=[mei.pk]), {"tag": world["bags"].pk})
    assert response.status_code == 403
    assert not ContactTag.objects.filter(contact=mei, tag=world["bags"]).exists()


def test_unknown_contact_is_404_and_anonymous_goes_to_login(admin_client, client, world):
    assert admin_client.get(reverse("console:contact", args=[999999])).status_code == 404
    admin_client.logout()
    response = Client().get(url(world["mei"]))
    assert response.status_code == 302 and "/admin/login/" in response["Location"]


def test_tag_forms_need_csrf(world):
    mei = world["mei"]
    csrf_client = Client(enforce_csrf_checks=True)
    csrf_client.force_login(make_user("csrf", superuser=True))
    refused = csrf_client.post(reverse("console:contact-tag-add", args=[mei.pk]), {"tag": world["bags"].pk})
    assert refused.status_code == 403
    assert not ContactTag.objects.filter(contact=mei, tag=world["bags"]).exists()
    page = csrf_client.get(url(mei))
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.content.decode()).group(1)
    ok = csrf_client.post(reverse("console:contact-tag-add", args=[mei.pk]),
                          {"tag": world["bags"].pk, "csrfmiddlewaretoken": token})
    assert ok.status_code == 302
    assert ContactTag.objects.filter(contact=mei, tag=world["bags"]).exists()


def test_bad_tag_input_is_a_message_not_a_500(admin_client, world):
    mei = world["mei"]
    add = reverse("console:contact-tag-add", args=[mei.pk])
    for bad in ({"tag": "424242"}, {"tag": "x"}, {}, {"tag": world["shoes"].pk}):  # unknown, junk, none, carried
        response = admin_client.post(add, bad, follow=True)
        assert response.status_code == 200
        assert "Tag not added" in response.content.decode()
    assert list(ContactTag.objects.filter(contact=mei).values_list("tag__name", flat=True)) == ["Shoes"]
    assert not ContactEvent.objects.filter(contact=mei, kind=ContactEvent.Kind.TAGGED).exists()
    # Removing a tag the contact does not carry says so.
    response = admin_client.post(reverse("console:contact-tag-remove", args=[mei.pk, world["bags"].pk]), follow=True)
    assert response.status_code == 200 and "does not carry" in response.content.decode()
    assert admin_client.get(add).status_code == 405  # a GET changes nothing


def test_a_refusal_from_the_service_is_shown_as_a_message(admin_client, world, monkeypatch):
    def refuse(*args, **kwargs):
        raise ApplicationError("WeCom does not know this tag any more.", field="tag")

    monkeypatch.setattr("crm.console.contact.contact_tag_add", refuse)
    response = admin_client.post(reverse("console:contact-tag-add", args=[world["mei"].pk]),
                                 {"tag": world["bags"].pk}, follow=True)
    assert response.status_code == 200
    assert "WeCom does not know this tag any more." in response.content.decode()


@pytest.mark.django_db(transaction=True)
@pytest.mark.worker
def test_tag_added_and_removed_on_the_page_reaches_wecom_and_the_timeline(staffed, admin_client,  # noqa: F811
                                                                          celery_worker):
    """Through the page, the same service as the API: timeline row, and the worker pushes it to WeCom."""
    from crm.services.channels import channel_create
    from crm.services.tags import tag_ensure
    from crm.wecom.client import get_client

    world = staffed
    channel_create(name="Store", state="store-page", staff_userids=["alice"])
    eid = world.shopper("Tagged on the page")
    world.scan(eid, "store-page")
    contact = wait_for(lambda: Contact.objects.filter(external_userid=eid).first(), timeout=30, message="contact")
    gold = tag_ensure("Tier", "Gold")

    def wecom_tags():
        follow = get_client().externalcontact_get(eid)["follow_user"][0]
        return sorted(t["tag_name"] for t in follow.get("tags") or [])

    response = admin_client.post(reverse("console:contact-tag-add", args=[contact.pk]), {"tag": gold.pk}, follow=True)
    assert response.status_code == 200 and "Gold" in response.content.decode()
    assert ContactTag.objects.filter(contact=contact, tag=gold).exists()
    assert ContactEvent.objects.filter(contact=contact, kind="tagged", data__source="console").count() == 1
    wait_for(lambda: wecom_tags() == ["Gold"], timeout=30, message="tag marked in WeCom")

    response = admin_client.post(reverse("console:contact-tag-remove", args=[contact.pk, gold.pk]), follow=True)
    assert response.status_code == 200
    assert not ContactTag.objects.filter(contact=contact, tag=gold).exists()
    assert ContactEvent.objects.filter(contact=contact, kind="untagged", data__source="console").count() == 1
    wait_for(lambda: wecom_tags() == [], timeout=30, message="tag removed in WeCom")


def test_consent_history_is_read_only_on_the_page(admin_client, world):
    """The page offers no way to write consent: no form posts to a consent URL."""
    html = admin_client.get(url(world["mei"])).content.decode()
    consent_html = html.split('data-testid="contact-consents"')[1].split('data-testid="contact-timeline"')[0]
    assert "<form" not in consent_html
    assert ConsentRecord.objects.filter(contact=world["mei"]).count() == 2
