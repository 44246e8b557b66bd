"""Segments and launch: recipient rows (one per customer), senders, batches; launching again creates nothing."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest
from django.db import connection
from django.utils import timezone

from crm.errors import ApplicationError
from crm.models import (
    Campaign,
    CampaignRecipient,
    Channel,
    ContactEvent,
    ContactTag,
    MassMessage,
    RedPacketPool,
    Staff,
    Tag,
    TagGroup,
)
from crm.services import campaign_runs, run_control, segments
from crm.services import campaigns as svc
from crm.services.consent import consent_record
from crm.services.pushes import mass_message_send
from crm.services.redpackets import parse_claim_token
from tests.crm.campaigns.conftest import later, make_contact, make_staff


def _tag(name: str) -> Tag:
    group, _ = TagGroup.objects.get_or_create(name="G")
    return Tag.objects.create(group=group, name=name)


@pytest.mark.django_db
def test_segment_filters_combine():
    alice, bob = make_staff("alice"), make_staff("bob")
    vip, gold, spam = _tag("VIP"), _tag("gold"), _tag("spam")
    channel = Channel.objects.create(name="Store", state="store-1")
    c1 = make_contact(alice, channel=channel)
    c2 = make_contact(bob)
    c3 = make_contact(alice)
    for contact, tags in ((c1, [vip, gold]), (c2, [vip]), (c3, [gold, spam])):
        for tag in tags:
            ContactTag.objects.create(contact=contact, tag=tag)

    def ids(seg):
        return set(segments.resolve(segments.segment_validate(seg)).values_list("id", flat=True))

    assert ids({}) == {c1.id, c2.id, c3.id}
    assert ids({"tags": [vip.id, gold.id]}) == {c1.id, c2.id, c3.id}
    assert ids({"tags": [vip.id, gold.id], "tags_match": "all"}) == {c1.id}
    assert ids({"tags": [gold.id], "exclude_tags": [spam.id]}) == {c1.id}
    assert ids({"channels": [channel.id]}) == {c1.id}
    assert ids({"staff": ["bob"]}) == {c2.id}
    assert ids({"vip": True}) == {c1.id, c2.id}


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("segment", "field"),
    [([1], "segment"), ({"tags": [999999]}, "segment.tags"), ({"tags": "x"}, "segment.tags"),
     ({"staff": ["nobody"]}, "segment.staff"), ({"colour": 1}, "segment.colour"),
     ({"tags_match": "some"}, "segment.tags_match"), ({"channels": [424242]}, "segment.channels")],
)
def test_bad_segment_names_the_field(segment, field):
    with pytest.raises(ApplicationError) as err:
        svc.campaign_create(name="x", text="hi", segment=segment)
    assert err.value.field == field
    assert not Campaign.objects.exists()


@pytest.mark.django_db
def test_launch_picks_an_active_follow_staff_and_batches_per_sender():
    alice, bob = make_staff("alice"), make_staff("bob")
    gone = make_staff("gone", status=Staff.Status.RESIGNED)
    a1, a2 = make_contact(alice), make_contact(alice)
    b1 = make_contact(bob)
    orphan = make_contact(gone)  # only followed by a resigned member
    lonely = make_contact()  # followed by nobody
    make_contact(alice, marketing=False)  # never agreed to offers
    withdrew = make_contact(bob)
    consent_record(contact_id=withdrew.id, purpose="marketing", granted=False, source="card_page")
    campaign = svc.campaign_create(name="11.11", text="Hello", scheduled_at=later(minutes=5))
    queued = campaign_runs.campaign_launch(campaign.id, enqueue=False)

    campaign.refresh_from_db()
    assert campaign.status == Campaign.Status.RUNNING
    recipients = {r.contact_id: r for r in CampaignRecipient.objects.filter(campaign=campaign)}
    assert set(recipients) == {a1.id, a2.id, b1.id, orphan.id, lonely.id}
    assert recipients[a1.id].sender_id == alice.id and recipients[b1.id].sender_id == bob.id
    assert recipients[orphan.id].status == recipients[lonely.id].status == CampaignRecipient.Status.NO_SENDER
    messages = MassMessage.objects.filter(campaign=campaign)
    assert sorted(queued) == sorted(m.id for m in messages)
    assert {(m.sender.userid, m.recipients.count()) for m in messages} == {("alice", 2), ("bob", 1)}
    assert len({m.idempotency_key for m in messages}) == 2


@pytest.mark.django_db(transaction=True)
def test_launching_again_and_concurrently_creates_each_recipient_once():
    staff = make_staff()
    contacts = [make_contact(staff) for _ in range(25)]
    campaign = svc.campaign_create(name="again", text="Hi")

    def launch(_):
        try:
            return campaign_runs.campaign_launch(campaign.id, enqueue=False)
        finally:
            connection.close()

    with ThreadPoolExecutor(6) as ex:
        results = list(ex.map(launch, range(6)))
    assert CampaignRecipient.objects.filter(campaign=campaign).count() == 25
    assert MassMessage.objects.filter(campaign=campaign).count() == 1
    assert all(r == results[0] for r in results)
    # A contact added after launch is not swept into a relaunch.
    make_contact(staff)
    campaign_runs.campaign_launch(campaign.id, enqueue=False)
    assert CampaignRecipient.objects.filter(campaign=campaign).count() == len(contacts)


@pytest.mark.django_db
def test_red_packet_campaign_gives_each_recipient_their_own_link(settings):
    settings.CUSTOMER_LINKS = "signed"  # the fallback: signed per-customer links, one task each
    staff = make_staff()
    contacts = [make_contact(staff) for _ in range(3)]
    campaign = svc.campaign_create(
        name="rp", text="Lucky money!",
        red_packet={"budget_fen": 1000, "count": 5, "mode": "lucky", "expires_at": later(hours=2)},
    )
    campaign_runs.campaign_launch(campaign.id, enqueue=False)
    pool = RedPacketPool.objects.get(campaign=campaign)
    assert pool.status == RedPacketPool.Status.ACTIVE and sum(pool.amounts) == 1000
    messages = list(MassMessage.objects.filter(campaign=campaign))
    assert len(messages) == 3
    seen = set()
    for message in messages:
        recipient = message.recipients.get()
        url = message.text.split("\n")[-1]
        token = url.rstrip("/").rsplit("/", 1)[-1]
        assert "/m/rp/" in url
        assert parse_claim_token(token) == (pool.id, recipient.contact_id)
        seen.add(recipient.contact_id)
    assert seen == {c.id for c in contacts}


@pytest.mark.django_db
def test_schedule_cancel_and_due_launch():
    staff = make_staff()
    make_contact(staff)
    due = svc.campaign_create(name="due", text="a")
    svc.campaign_schedule(due.id, timezone.now())
    future = svc.campaign_create(name="future", text="b", scheduled_at=later(hours=1))
    cancelled = svc.campaign_create(name="cancelled", text="c", scheduled_at=later(seconds=1))
    run_control.campaign_cancel(cancelled.id)
    Campaign.objects.filter(id=cancelled.id).update(scheduled_at=timezone.now())

    launched = campaign_runs.campaign_launch_due(now=later(seconds=2))
    assert launched == [due.id]
    assert Campaign.objects.get(id=future.id).status == Campaign.Status.SCHEDULED
    assert Campaign.objects.get(id=cancelled.id).status == Campaign.Status.CANCELLED
    with pytest.raises(ApplicationError) as err:
        svc.campaign_schedule(due.id, later(hours=1))
    assert err.value.status_code == 409
    with pytest.raises(ApplicationError) as err:
        svc.campaign_schedule(future.id, later(hours=-1))
    assert err.value.field == "scheduled_at"


@pytest.mark.django_db
def test_a_red_packet_recipient_who_withdraws_before_the_send_is_skipped_and_told_why(settings):
    settings.CUSTOMER_LINKS = "signed"  # one task per recipient: the withdrawn one's task sends nothing
    staff = make_staff()
    stays, leaves = make_contact(staff), make_contact(staff)
    campaign = svc.campaign_create(
        name="rp", text="Lucky money!",
        red_packet={"budget_fen": 1000, "count": 5, "mode": "lucky", "expires_at": later(hours=2)},
    )
    campaign_runs.campaign_launch(campaign.id, enqueue=False)
    assert CampaignRecipient.objects.filter(campaign=campaign).count() == 2
    # Withdrawn after the launch built the recipients, before the worker sends the message.
    consent_record(contact_id=leaves.id, purpose="marketing", granted=False, source="card_page")
    message = MassMessage.objects.get(campaign=campaign, recipients__contact=leaves)

    assert mass_message_send(message.id) == MassMessage.Status.DONE  # nothing left to send: WeCom is not called
    recipient = CampaignRecipient.objects.get(campaign=campaign, contact=leaves)
    # Excluded at send time with the reason, on the recipient and on the timeline (docs/campaign-engine.md 4).
    assert (recipient.status, recipient.reason) == ("excluded", "consent_withdrawn")
    reason = leaves.events.get(kind=ContactEvent.Kind.CAMPAIGN_EXCLUDED).data
    assert reason == {"reason": "consent_withdrawn", "campaign_id": campaign.id, "run_id": message.run_id,
                      "mass_message_id": message.id, "sender": staff.userid}
    assert CampaignRecipient.objects.get(campaign=campaign, contact=stays).status == CampaignRecipient.Status.PENDING
    assert not stays.events.filter(kind=ContactEvent.Kind.CAMPAIGN_EXCLUDED).exists()


@pytest.mark.django_db
def test_a_campaign_whose_every_recipient_withdrew_finishes():
    staff = make_staff()
    contact = make_contact(staff)
    campaign = svc.campaign_create(name="nobody left", text="Hi")
    [message_id] = campaign_runs.campaign_launch(campaign.id, enqueue=False)
    consent_record(contact_id=contact.id, purpose="marketing", granted=False, source="admin")
    assert mass_message_send(message_id) == MassMessage.Status.DONE
    assert Campaign.objects.get(id=campaign.id).status == Campaign.Status.DONE
