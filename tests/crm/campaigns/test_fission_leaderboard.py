"""The fission leaderboard (selector, API, roles): inviters ranked by friends counted, who passed the gate, and the
state of their claim."""

from __future__ import annotations

import pytest

from crm.selectors.fission import fission_leaderboard, fission_totals
from crm.services import redpackets as rp
from crm.services.fission import fission_invite, fission_record_add
from crm.services.roles import MARKETING, STORE_MANAGER, user_role_set
from tests.crm.campaigns.conftest import later, make_contact, make_staff

pytestmark = pytest.mark.django_db(transaction=True)


def _gated_pool(friends: int = 2):
    pool = rp.redpacket_pool_create(campaign_id=None, budget_fen=900, count=3, mode="fixed",
                                    expires_at=later(hours=2), gate_friends=friends)  # fmt: skip
    return rp.redpacket_pool_activate(pool.id)


def _bring(invite, n: int) -> None:
    for _ in range(n):
        assert "friend counted" in fission_record_add(state=invite.state, contact=make_contact())


def test_leaderboard_ranks_inviters_and_shows_who_unlocked_and_claimed(sim):
    sim.member("grace")
    staff = make_staff("grace")
    pool = _gated_pool(friends=2)
    ann, bo, cy = (make_contact(staff, name=n) for n in ("Ann", "Bo", "Cy"))
    invites = {c.name: fission_invite(pool.id, c.id) for c in (ann, bo, cy)}
    _bring(invites["Bo"], 3)
    _bring(invites["Ann"], 1)
    # A self-invite never counts, so it never moves the board.
    assert "own invite" in fission_record_add(state=invites["Cy"].state, contact=cy)
    assert rp.redpacket_claim(pool_id=pool.id, contact_id=bo.id).status == "claimed"

    rows = fission_leaderboard(pool)
    assert [(r["rank"], r["name"], r["friends"], r["unlocked"]) for r in rows] == [
        (1, "Bo", 3, True), (2, "Ann", 1, False), (3, "Cy", 0, False)]
    assert rows[0]["claim_status"] == "received" and rows[1]["claim_status"] == ""
    assert fission_totals(pool) == {"inviters": 3, "friends": 4, "unlocked": 1}
    assert [r["name"] for r in fission_leaderboard(pool, limit=1)] == ["Bo"]


def test_leaderboard_api_owner_role_and_bad_input(sim, client, django_user_model):
    sim.member("grace")
    staff = make_staff("grace")
    pool = _gated_pool(friends=1)
    ann = make_contact(staff, name="Ann")
    _bring(fission_invite(pool.id, ann.id), 2)
    url = f"/api/redpacket-pools/{pool.id}/fission-leaderboard"

    manager = django_user_model.objects.create_user("mgr", password="pw", is_staff=True)
    user_role_set(manager, STORE_MANAGER)
    client.force_login(manager)
    assert client.get(url).status_code == 403

    marketer = django_user_model.objects.create_user("mkt", password="pw", is_staff=True)
    user_role_set(marketer, MARKETING)
    client.force_login(marketer)
    body = client.get(url).json()
    assert body["gate_friends"] == 1 and body["inviters"] == 1 and body["friends"] == 2 and body["unlocked"] == 1
    assert body["rows"][0]["name"] == "Ann" and body["rows"][0]["unlocked"] is True

    bad = client.get(url + "?limit=0")
    assert bad.status_code == 400 and "limit" in bad.content.decode()
    assert client.get(url + "?limit=99999999999999999999").status_code == 400
    assert client.get("/api/redpacket-pools/999999/fission-leaderboard").status_code == 404
    plain = rp.redpacket_pool_create(campaign_id=None, budget_fen=300, count=1, mode="fixed", expires_at=later(hours=1))
    no_gate = client.get(f"/api/redpacket-pools/{plain.id}/fission-leaderboard")
    assert no_gate.status_code == 400 and no_gate.json()["error"]["code"] == "no_fission_gate"
