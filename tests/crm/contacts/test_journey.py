"""The journey's thin slice over real HTTP: channel QR -> shopper scans -> encrypted callback -> worker ->
company-owned contact, follow relation, channel, timeline and the welcome with the card link in the inbox."""

from __future__ import annotations

import pytest

from crm.models import CallbackEvent, Contact, FollowRelation
from crm.models.contacts import ContactEvent, WelcomeMessage
from crm.services import callback_routing
from crm.services.channels import channel_create
from crm.services.welcome import welcome_send
from tests.conftest import wait_for

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.worker]


def _welcomes(sim, eid):
    return [m for m in sim.inbox(eid) if m["kind"] == "welcome"]


def test_scan_to_owned_contact_with_welcome(staffed, celery_worker):
    sim = staffed
    channel = channel_create(name="Shanghai 1", state="store-sh-001", staff_userids=["alice"],
                             welcome_text="Welcome to our Shanghai store!")
    eid = sim.shopper("Mei", gender=2)
    sim.scan(eid, "store-sh-001")

    welcome = wait_for(
        lambda: WelcomeMessage.objects.filter(follow__contact__external_userid=eid)
        .exclude(status__in=["pending", "sending"]).first(),
        timeout=30, message="welcome sent",
    )
    assert welcome.status == WelcomeMessage.Status.SENT, (welcome.errcode, welcome.errmsg)
    contact = Contact.objects.get(external_userid=eid)
    assert contact.name == "Mei" and contact.gender == Contact.Gender.FEMALE
    assert contact.channel == channel
    assert contact.first_added_at is not None
    follow = FollowRelation.objects.get(contact=contact)
    assert follow.staff.userid == "alice" and follow.state == "store-sh-001" and follow.added_at
    kinds = set(contact.events.values_list("kind", flat=True))
    assert {ContactEvent.Kind.ADDED, ContactEvent.Kind.CHANNEL, ContactEvent.Kind.WELCOME} <= kinds

    messages = wait_for(lambda: _welcomes(sim, eid), message="welcome in the shopper's inbox")
    assert len(messages) == 1
    assert messages[0]["text"] == "Welcome to our Shanghai store!"
    links = [a["link"]["url"] for a in messages[0]["attachments"] if a["msgtype"] == "link"]
    assert len(links) == 1 and "/m/card/" in links[0]
    # The link is the customer's own card page and it answers.
    opened = sim.post(f"shoppers/{eid}/open_link", {"url": links[0]})
    assert opened["status"] == 200


def test_redelivered_add_event_never_sends_twice(staffed, celery_worker, settings):
    sim = staffed
    channel_create(name="Beijing", state="store-bj-001", staff_userids=["bob"])
    eid = sim.shopper("Lei")
    sim.scan(eid, "store-bj-001")
    wait_for(lambda: WelcomeMessage.objects.filter(status="sent").exists(), timeout=30, message="first welcome")
    event = CallbackEvent.objects.get(payload__ExternalUserID=eid, payload__ChangeType="add_external_contact")

    # The same event again (WeCom retries, or the sweep re-runs it): re-read, nothing new, no second send.
    settings.CELERY_TASK_ALWAYS_EAGER = True
    result = callback_routing.apply_event(dict(event.payload))
    assert "welcome" not in result
    assert WelcomeMessage.objects.count() == 1
    assert FollowRelation.objects.count() == 1
    assert Contact.objects.get(external_userid=eid).events.filter(kind=ContactEvent.Kind.ADDED).count() == 1
    assert len(_welcomes(sim, eid)) == 1


def test_expired_welcome_code_is_recorded_not_retried(staffed, celery_worker):
    sim = staffed
    channel_create(name="Late", state="late-1", staff_userids=["carol"])
    eid = sim.shopper("Yun")
    sim.scan(eid, "late-1")
    welcome = wait_for(lambda: WelcomeMessage.objects.filter(status="sent").first(), timeout=30, message="welcome")

    # Resending with the same (used) code: WeCom answers 41051, recorded as already sent, nothing delivered.
    WelcomeMessage.objects.filter(pk=welcome.pk).update(status="pending")
    assert welcome_send(welcome.pk) == "already sent"
    assert WelcomeMessage.objects.get(pk=welcome.pk).status == WelcomeMessage.Status.ALREADY_SENT
    assert len(_welcomes(sim, eid)) == 1



def test_welcome_code_expired_before_send_is_recorded_not_retried(staffed, celery_worker):
    sim = staffed
    channel_create(name="Slow", state="slow-1", staff_userids=["carol"])
    # WeCom is slow to answer this one send; meanwhile 30 s pass on its clock: the 20 s code expires (41050).
    sim.post("faults", {"path": "externalcontact/send_welcome_msg", "kind": "slow", "delay_ms": 3000, "count": 1})
    eid = sim.shopper("Jun")
    sim.scan(eid, "slow-1")
    wait_for(lambda: WelcomeMessage.objects.filter(status="sending").exists(), timeout=30, message="send in flight")
    sim.advance(30)
    welcome = wait_for(
        lambda: WelcomeMessage.objects.exclude(status__in=["pending", "sending"]).first(), timeout=30,
        message="welcome outcome",
    )
    assert welcome.status == WelcomeMessage.Status.EXPIRED and welcome.errcode == 41050
    assert _welcomes(sim, eid) == []
    # Recorded on the timeline, and not retried: the row stays expired.
    assert welcome.follow.contact.events.filter(kind=ContactEvent.Kind.WELCOME, data__status="expired").exists()
    assert welcome_send(welcome.pk) == "nothing to send"
