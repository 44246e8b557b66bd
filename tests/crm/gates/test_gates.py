"""Gates on a red packet: the signed mini-game, a purchase since the pool opened, an add of our staff through a
channel, and "completed another pool's gate" as eligibility. Each shows on the customer's page; a claim before
they are passed is a 403 gate_incomplete naming them, and nothing is reserved."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import IntegrityError, transaction
from django.utils import timezone
from rest_framework.test import APIClient

from crm.models import Channel, Contact, DataSource, GameSession, RedPacketClaim, SourceOrderLine
from crm.services import redpackets as rp
from crm.services.contact_events import contact_add_from_callback
from crm.services.game_gate import GAME_MIN_SECONDS, result_signature
from crm.services.redpackets import claim_url
from crm.wecom.client import get_client
from loyalty.models import Card, Purchase, Store
from tests.crm.campaigns.conftest import later, make_contact, make_staff

pytestmark = pytest.mark.django_db(transaction=True)


def _path(pool_id: int, contact_id: int) -> str:
    return "/m/rp/" + claim_url(pool_id, contact_id).split("/m/rp/")[1]


def _pool(**gates):
    pool = rp.redpacket_pool_create(campaign_id=None, budget_fen=600, count=2, mode="fixed",
                                    expires_at=later(hours=2), **gates)  # fmt: skip
    return rp.redpacket_pool_activate(pool.id)


def _backdate(nonce: str) -> None:
    GameSession.objects.filter(nonce=nonce).update(
        started_at=timezone.now() - timedelta(seconds=GAME_MIN_SECONDS + 1)
    )


def test_a_signed_game_unlocks_the_packet_and_forged_results_do_not(client):
    staff = make_staff()
    player, other = make_contact(staff), make_contact(staff)
    pool = _pool(gate_game=True)
    path = _path(pool.id, player.id)
    page = client.get(path + "?format=json").json()
    assert page["status"] == "locked" and page["gates"] == [{"gate": "game", "done": False}]
    assert 'id="game"' in client.get(path).content.decode()

    refused = client.post(path + "?format=json")
    assert refused.status_code == 403
    assert refused.json()["error"]["code"] == "gate_incomplete" and refused.json()["error"]["details"]["gates"] == [
        "game"]
    assert rp.redpacket_reconcile(pool.id)["claimable_fen"] == 600  # nothing reserved

    session = client.post(path + "game/start/").json()
    result = path + "game/result/"

    def post(url=result, **body):
        return client.post(url, body, content_type="application/json")

    good_sig = result_signature(session["key"], session["nonce"], 12)
    too_fast = post(nonce=session["nonce"], score=12, sig=good_sig)
    assert too_fast.status_code == 403 and too_fast.json()["error"]["details"]["reason"] == "too_fast"
    _backdate(session["nonce"])
    bad_sig = post(nonce=session["nonce"], score=13, sig=good_sig)  # the score changed after signing
    assert bad_sig.status_code == 403 and bad_sig.json()["error"]["code"] == "forged_game_result"
    assert bad_sig.json()["error"]["details"]["reason"] == "bad_signature"
    wrong = post(_path(pool.id, other.id) + "game/result/", nonce=session["nonce"], score=12, sig=good_sig)
    assert wrong.status_code == 403 and wrong.json()["error"]["details"]["reason"] == "wrong_contact"
    huge_sig = result_signature(session["key"], session["nonce"], 5000)
    assert post(nonce=session["nonce"], score=5000, sig=huge_sig).json()["error"]["details"]["reason"] == (
        "score_out_of_bounds")
    assert post(nonce="0" * 32, score=12, sig=good_sig).json()["error"]["details"]["reason"] == "unknown_session"
    assert client.post(result, "[1]", content_type="application/json").status_code == 400
    assert not GameSession.objects.filter(finished_at__isnull=False).exists()
    assert rp.redpacket_claim(pool_id=pool.id, contact_id=player.id).status == "locked"

    assert post(nonce=session["nonce"], score=12, sig=good_sig).json() == {"status": "played", "score": 12}
    replay = post(nonce=session["nonce"], score=12, sig=good_sig)
    assert replay.status_code == 409 and replay.json()["error"]["code"] == "game_replayed"
    assert client.post(path + "game/start/").json()["error"]["code"] == "game_replayed"
    # One completion per contact and pool, whatever the code path: the database says so.
    with pytest.raises(IntegrityError), transaction.atomic():
        GameSession.objects.create(pool=pool, contact=player, nonce="x" * 32, started_at=timezone.now(),
                                   finished_at=timezone.now(), score=1)  # fmt: skip

    page = client.get(path + "?format=json").json()
    assert page["status"] == "open" and page["gates"] == [{"gate": "game", "done": True}]
    claimed = client.post(path + "?format=json").json()
    assert claimed["status"] == "claimed" and claimed["amount_fen"] == 300
    assert rp.redpacket_claim(pool_id=pool.id, contact_id=other.id).status == "locked"
    assert rp.redpacket_reconcile(pool.id)["balanced"]


def test_purchases_since_the_pool_opened_count_towards_the_purchase_gate(client):
    staff = make_staff()
    buyer = make_contact(staff)
    store = Store.objects.create(code="g1", name="G1")
    card = Card.objects.create(contact=buyer, number=f"{buyer.pk:016d}")
    before = Purchase.objects.create(store=store, receipt_id="r0", card=card, amount_fen=90000)
    Purchase.objects.filter(id=before.id).update(scanned_at=timezone.now() - timedelta(days=1))  # before the pool
    pool = _pool(gate_purchase_fen=5000)
    Purchase.objects.create(store=store, receipt_id="r1", card=card, amount_fen=3000)
    path = _path(pool.id, buyer.id)
    page = client.get(path + "?format=json").json()
    assert page["status"] == "locked"
    assert page["gates"] == [{"gate": "purchase", "done": False, "spent_fen": 3000, "needed_fen": 5000}]
    assert "¥30.00" in client.get(path).content.decode() and "¥50.00" in client.get(path).content.decode()
    refused = client.post(path + "?format=json").json()["error"]
    assert refused["code"] == "gate_incomplete" and refused["details"]["gates"] == ["purchase"]

    tmall = DataSource.objects.get_or_create(code="tmall", defaults={"name": "Tmall", "openness": "semi_open"})[0]
    SourceOrderLine.objects.create(source=tmall, order_id="o1", phone_hash="h", contact=buyer, sku="X",
                                   amount_fen=2000, ordered_at=timezone.now())  # fmt: skip
    assert client.get(path + "?format=json").json()["status"] == "open"
    assert rp.redpacket_claim(pool_id=pool.id, contact_id=buyer.id).status == "claimed"


def test_adding_our_staff_through_the_channel_unlocks(sim, client):
    sim.member("ivy")
    make_staff("ivy")
    channel = Channel.objects.create(name="Store SH", state="store-sh-1")
    pool = _pool(gate_channel=channel)
    eid = sim.shopper("Walk-in")

    def add(userid: str, state: str) -> None:  # the shopper scans a contact way; WeCom calls back with its state
        way = get_client().add_contact_way(type=1, scene=2, user=[userid], state=state, skip_verify=True)
        sim.call("POST", f"shoppers/{eid}/scan_contact_way", config_id=way["config_id"])
        contact_add_from_callback(userid=userid, external_userid=eid, state=state)

    add("ivy", "other-channel")
    walk_in = Contact.objects.get(external_userid=eid)
    path = _path(pool.id, walk_in.id)
    page = client.get(path + "?format=json").json()
    assert page["status"] == "locked" and page["gates"][0]["gate"] == "staff" and not page["gates"][0]["done"]
    assert "Store SH" in client.get(path, HTTP_ACCEPT_LANGUAGE="en").content.decode()

    sim.member("jack")
    make_staff("jack")
    add("jack", channel.state)
    assert client.get(path + "?format=json").json()["status"] == "open"
    assert rp.redpacket_claim(pool_id=pool.id, contact_id=walk_in.id).status == "claimed"


def test_eligibility_by_a_completed_gate_of_another_pool(client):
    staff = make_staff()
    player, stranger = make_contact(staff), make_contact(staff)
    first = _pool(gate_game=True)
    path = _path(first.id, player.id)
    session = client.post(path + "game/start/").json()
    _backdate(session["nonce"])
    client.post(path + "game/result/", {"nonce": session["nonce"], "score": 3,
                                        "sig": result_signature(session["key"], session["nonce"], 3)},
                content_type="application/json")  # fmt: skip
    second = _pool(eligibility={"field": "gate_passed", "op": "in", "value": first.id})
    assert second.eligibility == {"field": "gate_passed", "op": "in", "value": [first.id]}
    assert rp.redpacket_claim(pool_id=second.id, contact_id=stranger.id).status == "not_eligible"
    assert rp.redpacket_claim(pool_id=second.id, contact_id=player.id).status == "claimed"
    assert list(RedPacketClaim.objects.filter(pool=second).values_list("contact_id", flat=True)) == [player.id]


def test_bad_gate_fields_are_a_400_naming_the_field(django_user_model):
    with pytest.raises(rp.ApplicationError) as bad:
        _pool(gate_purchase_fen=-5)
    assert bad.value.field == "gate_purchase_fen"
    with pytest.raises(rp.ApplicationError) as bad:
        _pool(gate_channel=987654)
    assert bad.value.field == "gate_channel"

    user = django_user_model.objects.create_user("boss", password="pw", is_staff=True, is_superuser=True)
    api = APIClient()
    api.force_authenticate(user)
    make_contact(make_staff())
    channel = Channel.objects.create(name="Store BJ", state="store-bj-1")
    packet = {"budget_fen": 600, "count": 2, "mode": "fixed", "expires_at": later(hours=2).isoformat(),
              "gate_game": True, "gate_purchase_fen": 5000, "gate_channel": channel.id}  # fmt: skip
    base = {"name": "x", "text": "Red packet:", "segment": {}}
    bad_channel = api.post("/api/campaigns/", {**base, "red_packet": {**packet, "gate_channel": 987654}},
                           format="json")  # fmt: skip
    assert bad_channel.status_code == 400 and bad_channel.json()["error"]["field"] == "red_packet.gate_channel"
    ok = api.post("/api/campaigns/", {**base, "red_packet": packet}, format="json")
    assert ok.status_code == 201, ok.content
    out = ok.json()["red_packet"]
    assert (out["gate_game"], out["gate_purchase_fen"], out["gate_channel"]) == (True, 5000, channel.id)
