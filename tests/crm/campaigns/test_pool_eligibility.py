"""Who may claim a pool (a saved segment's definition) and when claims open: checked at the claim, shown on the
customer's page, validated at creation with the field named."""

from __future__ import annotations

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from crm.models import ContactTag, RedPacketClaim, RedPacketPool, Tag, TagGroup
from crm.services import redpackets as rp
from crm.services.redpackets import claim_url
from crm.services.saved_segments import segment_create
from tests.crm.campaigns.conftest import later, make_contact, make_staff

pytestmark = pytest.mark.django_db(transaction=True)


def _vip_world():
    staff = make_staff()
    vip_tag = Tag.objects.create(group=TagGroup.objects.create(name="Level"), name="VIP")
    vip, other = make_contact(staff), make_contact(staff)
    ContactTag.objects.create(contact=vip, tag=vip_tag)
    vips = segment_create(name="VIPs", definition={"field": "tags", "op": "any", "value": [vip_tag.pk]})
    return vip, other, vips


def test_only_eligible_customers_claim_and_claims_open_at_the_start(client):
    vip, other, vips = _vip_world()
    pool = rp.redpacket_pool_create(
        campaign_id=None, budget_fen=600, count=2, mode="fixed", expires_at=later(hours=2),
        starts_at=later(minutes=30), eligibility={"field": "segment", "op": "in", "value": vips.pk},
    )  # fmt: skip
    assert pool.eligibility == {"field": "segment", "op": "in", "value": [vips.pk]}  # normalised
    rp.redpacket_pool_activate(pool.id)
    assert rp.redpacket_claim(pool_id=pool.id, contact_id=vip.id).status == "not_started"

    RedPacketPool.objects.filter(id=pool.id).update(starts_at=timezone.now())
    assert rp.redpacket_claim(pool_id=pool.id, contact_id=other.id).status == "not_eligible"
    # Nothing reserved for them: the whole budget is still there.
    assert rp.redpacket_reconcile(pool.id)["claimable_fen"] == 600
    assert rp.redpacket_claim(pool_id=pool.id, contact_id=vip.id).status == "claimed"
    assert list(RedPacketClaim.objects.filter(pool=pool).values_list("contact_id", flat=True)) == [vip.id]

    # Their page says so before they tap (customer pages speak Chinese by default).
    path = "/m/rp/" + claim_url(pool.id, other.id).split("/m/rp/")[1]
    page = client.get(path + "?format=json").json()
    assert page["status"] == "not_eligible" and page["message"]
    assert 'data-status="not_eligible"' in client.get(path).content.decode()


def test_bad_eligibility_or_window_is_a_400_naming_the_field(django_user_model):
    user = django_user_model.objects.create_user("boss", password="pw", is_staff=True, is_superuser=True)
    api = APIClient()
    api.force_authenticate(user)
    make_contact(make_staff())
    base = {"name": "x", "text": "Red packet:", "segment": {}}
    packet = {"budget_fen": 600, "count": 2, "mode": "fixed", "expires_at": later(hours=2).isoformat()}
    bad_field = api.post("/api/campaigns/", {**base, "red_packet": {**packet, "eligibility": {"field": "nope"}}},
                         format="json")  # fmt: skip
    assert bad_field.status_code == 400
    assert bad_field.json()["error"]["field"].startswith("red_packet.eligibility")
    late = {**packet, "starts_at": later(hours=3).isoformat()}
    late_start = api.post("/api/campaigns/", {**base, "red_packet": late}, format="json")
    assert late_start.status_code == 400 and late_start.json()["error"]["field"] == "red_packet.starts_at"
    assert not RedPacketPool.objects.exists()
    _, _, vips = _vip_world()
    good = {**packet, "starts_at": later(hours=1).isoformat(), "eligibility": {"field": "segment", "op": "in",
                                                                                "value": [vips.pk]}}  # fmt: skip
    ok = api.post("/api/campaigns/", {**base, "red_packet": good}, format="json")
    assert ok.status_code == 201, ok.content
    assert ok.json()["red_packet"]["starts_at"] and ok.json()["red_packet"]["eligibility"]["field"] == "segment"
