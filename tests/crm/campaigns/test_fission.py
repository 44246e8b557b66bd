"""Fission: a red packet unlocked by N friends new to the brand, added through the customer's personal invite QR
(a WeCom contact way in the simulator), counted from the add callbacks; progress on the customer's page."""

from __future__ import annotations

import pytest

from crm.models import FissionInvite, FissionReferral
from crm.services import redpackets as rp
from crm.services.contact_events import contact_add_from_callback
from crm.services.redpackets import claim_url
from tests.crm.campaigns.conftest import befriend, later, make_staff

pytestmark = pytest.mark.django_db(transaction=True)


def test_friends_new_to_the_brand_unlock_the_packet_once_each(sim, client, monkeypatch):
    # The adds are applied by hand below, to read each one's outcome. The simulator also delivers each add's
    # callback to the live server, whose drain a session worker would apply first (CI once saw Friend 2 "already
    # counted" by it): no drain is asked for in this test.
    from crm.tasks.callbacks import drain_callbacks

    monkeypatch.setattr(drain_callbacks, "delay", lambda *args, **kwargs: None)
    sim.member("grace")
    staff = make_staff("grace")
    inviter = befriend(sim, staff, "Inviter")
    regular = befriend(sim, staff, "Regular")  # a customer already, before any invite
    pool = rp.redpacket_pool_create(campaign_id=None, budget_fen=600, count=2, mode="fixed",
                                    expires_at=later(hours=2), gate_friends=2)  # fmt: skip
    rp.redpacket_pool_activate(pool.id)
    assert rp.redpacket_claim(pool_id=pool.id, contact_id=inviter.id).status == "locked"

    path = "/m/rp/" + claim_url(pool.id, inviter.id).split("/m/rp/")[1]
    page = client.get(path + "?format=json").json()
    assert page["status"] == "locked" and page["invite"]["needed"] == 2 and page["invite"]["friends"] == 0
    assert page["invite"]["qr_code"]
    invite = FissionInvite.objects.get(pool=pool, inviter=inviter)
    assert invite.state == f"fx{pool.id}-{inviter.id}"

    def add_through_invite(external_userid: str) -> str:
        sim.call("POST", f"shoppers/{external_userid}/scan_contact_way", config_id=invite.config_id)
        return contact_add_from_callback(userid="grace", external_userid=external_userid, state=invite.state)

    assert "own invite, not counted" in add_through_invite(inviter.external_userid)
    assert "not new to the brand" in add_through_invite(regular.external_userid)
    first = sim.shopper("Friend 1")
    assert "friend counted" in add_through_invite(first)
    assert "already counted" in contact_add_from_callback(userid="grace", external_userid=first, state=invite.state)
    assert client.get(path + "?format=json").json()["invite"]["friends"] == 1
    html = client.get(path).content.decode()
    assert 'data-friends="1"' in html and 'data-needed="2"' in html and "invite-qr" in html
    assert rp.redpacket_claim(pool_id=pool.id, contact_id=inviter.id).status == "locked"

    assert "friend counted" in add_through_invite(sim.shopper("Friend 2"))
    assert FissionReferral.objects.filter(pool=pool).count() == 2
    outcome = rp.redpacket_claim(pool_id=pool.id, contact_id=inviter.id)
    assert outcome.status == "claimed" and outcome.amount_fen == 300
    assert rp.redpacket_reconcile(pool.id)["balanced"]


def test_gate_friends_is_validated(sim):
    with pytest.raises(rp.ApplicationError) as bad:
        rp.redpacket_pool_create(campaign_id=None, budget_fen=600, count=2, mode="fixed", expires_at=later(hours=2),
                                 gate_friends=500)  # fmt: skip
    assert bad.value.field == "gate_friends"
