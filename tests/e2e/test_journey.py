"""The journey end to end on real parts: real HTTP between the CRM and the simulator, real callback crypto,
a real Celery worker process, real Redis. Shoppers act in the simulated WeCom world; the cashier uses the till
API; shoppers opt in to offers on the card page; marketing schedules a campaign with a red packet."""

import pytest

from crm.models import CallbackEvent, CampaignRecipient, ConsentRecord, RedPacketClaim
from crm.services.consent import consent_policy_version
from loyalty import journey
from loyalty.models import Card, PointsLedger

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.worker]


@pytest.mark.timeout(300)
def test_the_whole_journey(live_stack, celery_worker):
    figures = journey.run(live_stack, customers=6, seed=11, timeout=90)

    assert figures["customers"] == 6
    assert figures["contacts"] == 6, "every add reached the CRM by callback and became a company-owned contact"
    assert figures["cards"] == 6 and figures["scans"] == 6
    assert figures["points_credited"] == sum(PointsLedger.objects.values_list("delta", flat=True))
    for card in Card.objects.all():  # balance is the ledger's sum
        assert card.points_balance == sum(card.ledger.values_list("delta", flat=True))
    assert figures["vip_members"] >= 1
    # Every shopper opted in to offers on the card page (nothing is granted by adding staff), so every VIP is
    # a campaign recipient; the grant says where, when and against which policy text it was given.
    assert figures["marketing_consents"] == 6
    grants = ConsentRecord.objects.filter(purpose="marketing")
    assert grants.count() == 6 and set(grants.values_list("source", "version", "granted")) == {("card_page", 1, True)}
    assert set(grants.values_list("policy_version", flat=True)) == {consent_policy_version()}
    assert figures["messages_delivered"] == figures["vip_members"]
    assert figures["red_packets_claimed"] == figures["vip_members"]
    assert figures["red_packets_paid_fen"] == figures["red_packet_budget_fen"] > 0  # a packet each, all claimed
    assert figures["reconciled"] is True
    rec = figures["reconciliation"]
    assert rec["budget_fen"] == rec["paid_fen"] + rec["refunded_fen"] + rec["claimable_fen"]
    assert rec["claimable_fen"] == 0 and rec["paid_fen"] == rec["budget_fen"]

    # Every callback the simulator sent was stored and processed, none twice.
    assert CallbackEvent.objects.exclude(status=CallbackEvent.Status.APPLIED).count() == 0
    # One campaign message per recipient, one claim per customer.
    recipients = CampaignRecipient.objects
    assert recipients.values("campaign", "contact").distinct().count() == recipients.count()
    assert RedPacketClaim.objects.values("pool", "contact").distinct().count() == RedPacketClaim.objects.count()
