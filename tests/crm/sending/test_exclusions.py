"""Exclusions at send time: whoever withdrew consent, deleted the sender, lost the relation or was erased after
the run was planned is left out of add_msg_template, with the reason on the recipient and the timeline."""

from __future__ import annotations

import pytest
from django.utils import timezone

from crm.models import CampaignRecipient, ConsentRecord, Contact, ContactEvent, FollowRelation, MassMessage, Staff
from crm.selectors.runs import run_progress
from crm.services import campaign_runs
from crm.services import campaigns as svc
from crm.services.consent import consent_record, contact_erase
from crm.services.pushes import mass_message_send
from crm.wecom.client import get_client
from tests.crm.sending.conftest import add_calls, world

pytestmark = [pytest.mark.django_db(transaction=True)]


def test_each_exclusion_with_its_reason(sim):
    sim.call("PATCH", "corp", confirm_delay_seconds=None)
    (staff,), eids = world(["ann"], 6)
    ok, withdrawn, deleted, unfollowed, erased, erased_and_withdrawn = (
        Contact.objects.get(external_userid=e) for e in eids)
    campaign = svc.campaign_create(name="exclusions", text="Weekend offer")
    campaign_runs.campaign_launch(campaign.id, enqueue=False)
    message = MassMessage.objects.get(campaign=campaign)
    assert message.recipients.filter(status="pending").count() == 6

    # Between planning and the send:
    consent_record(contact_id=withdrawn.id, purpose=ConsentRecord.Purpose.MARKETING, granted=False, source="card_page")
    FollowRelation.objects.filter(contact=deleted, staff=staff).update(deleted_by_customer_at=timezone.now())
    FollowRelation.objects.filter(contact=unfollowed, staff=staff).update(deleted_by_staff_at=timezone.now())
    contact_erase(erased.id, actor="dpo", reason="customer request")
    consent_record(contact_id=erased_and_withdrawn.id, purpose=ConsentRecord.Purpose.MARKETING, granted=False,
                   source="card_page")
    contact_erase(erased_and_withdrawn.id, actor="dpo", reason="customer request")  # erased wins over the others

    assert mass_message_send(message.id) == "created"
    got = dict(CampaignRecipient.objects.filter(mass_message=message).values_list("contact_id", "reason"))
    statuses = dict(CampaignRecipient.objects.filter(mass_message=message).values_list("contact_id", "status"))
    assert got == {ok.id: "", withdrawn.id: "consent_withdrawn", deleted.id: "contact_deleted",
                   unfollowed.id: "relation_gone", erased.id: "erased", erased_and_withdrawn.id: "erased"}
    assert statuses[ok.id] == "pending" and {s for c, s in statuses.items() if c != ok.id} == {"excluded"}
    # WeCom was asked to send to the one remaining customer only.
    message.refresh_from_db()
    sent_to = {r["external_userid"] for r in get_client().iter_groupmsg_send_result(message.msgid, "ann")}
    assert sent_to == {ok.external_userid}
    # One timeline row per excluded contact, with the reason.
    rows = ContactEvent.objects.filter(kind=ContactEvent.Kind.CAMPAIGN_EXCLUDED)
    assert sorted(rows.values_list("contact_id", "data__reason")) == sorted(
        (c, r) for c, r in got.items() if r)
    assert all(e.data["campaign_id"] == campaign.id and e.data["mass_message_id"] == message.id for e in rows)
    progress = run_progress(message.run)
    assert progress["recipients"]["excluded"] == 5 and progress["excluded_by_reason"] == {
        "consent_withdrawn": 1, "contact_deleted": 1, "relation_gone": 1, "erased": 2}


def test_a_sender_who_left_sends_nothing(sim):
    (leaver,), _eids = world(["leaver"], 3)
    campaign = svc.campaign_create(name="leaver", text="Bye")
    campaign_runs.campaign_launch(campaign.id, enqueue=False)
    message = MassMessage.objects.get(campaign=campaign)
    Staff.objects.filter(id=leaver.id).update(status=Staff.Status.RESIGNED, resigned_at=timezone.now())
    before = add_calls(sim)
    assert mass_message_send(message.id) == "done"  # nobody left: WeCom is not called
    assert add_calls(sim) == before
    assert set(message.recipients.values_list("status", "reason")) == {("excluded", "relation_gone")}
    assert ContactEvent.objects.filter(kind=ContactEvent.Kind.CAMPAIGN_EXCLUDED).count() == 3


def test_exclusions_are_set_based(sim, django_assert_max_num_queries):
    # 600 recipients, 200 of them withdrawn: a handful of statements, not one per recipient.
    (_staff,), eids = world(["bulk"], 600)
    campaign = svc.campaign_create(name="bulk", text="Many")
    campaign_runs.campaign_launch(campaign.id, enqueue=False)
    message = MassMessage.objects.select_related("sender").get(campaign=campaign)
    ids = list(Contact.objects.filter(external_userid__in=eids[:200]).values_list("id", flat=True))
    ConsentRecord.objects.bulk_create([ConsentRecord(contact_id=c, purpose="marketing", version=2, granted=False,
                                                     source="card_page", recorded_at=timezone.now()) for c in ids])
    from crm.services.pushes import _exclude

    with django_assert_max_num_queries(20):
        counts = _exclude(message)
    assert counts == {"consent_withdrawn": 200}
    assert ContactEvent.objects.filter(kind=ContactEvent.Kind.CAMPAIGN_EXCLUDED).count() == 200
