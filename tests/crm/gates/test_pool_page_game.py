"""The mini-game gate on the shared pool page (/m/pool/<id>/), over real HTTP: the visitor WeChat OAuth identified
plays under the page's own path, with the page's CSRF token (the session is the credential); the result unlocks the
packet. Without an identity, without the token, or for a pool the campaign did not send them: a 4xx, nothing played.
And /m/rp/ tells a group packet's or a members-only pool's outsider "members only", in Chinese and English."""

from __future__ import annotations

import re
from html import unescape

import pytest
import requests

from crm.models import GameSession, RedPacketClaim, RedPacketPool
from crm.services import campaign_runs
from crm.services import campaigns as campaign_svc
from crm.services import group_packets as gp
from crm.services import redpackets as rp
from crm.services.customer_links import pool_link
from crm.services.game_gate import result_signature
from crm.services.redpackets import claim_url
from tests.crm.campaigns.conftest import befriend, later, make_contact, make_staff
from tests.crm.draws.test_draws import _group
from tests.crm.gates.test_gates import _backdate
from tests.crm.oauth.conftest import customer, staff, wechat_browser  # noqa: F401  (fixtures)

pytestmark = pytest.mark.django_db(transaction=True)


def _game_pool() -> RedPacketPool:
    campaign = campaign_svc.campaign_create(
        name="Play for it", text="A game, then a packet",
        red_packet={"budget_fen": 600, "count": 2, "mode": "fixed", "expires_at": later(hours=1), "gate_game": True},
    )  # fmt: skip
    campaign_runs.campaign_launch(campaign.id, enqueue=False)
    return RedPacketPool.objects.get(campaign=campaign)


def test_the_game_is_played_on_the_pool_page_and_unlocks_the_packet(live_stack, customer):  # noqa: F811
    pool = _game_pool()
    link = pool_link(pool.id)
    browser = wechat_browser(live_stack, customer.external_userid)
    page = browser.get(link, timeout=10)
    assert 'data-status="locked"' in page.text and 'id="game"' in page.text
    assert f'data-start-url="/m/pool/{pool.id}/game/start/"' in page.text
    token = unescape(re.search(r'data-csrf="([^"]+)"', page.text).group(1))
    start_url, result_url = f"{link}game/start/", f"{link}game/result/"
    headers = {"X-CSRFToken": token, "Referer": link, "Accept": "application/json"}

    no_token = browser.post(start_url, json={}, timeout=10)
    assert (no_token.status_code, no_token.json()["error"]["code"]) == (403, "csrf")
    stranger = requests.post(start_url, json={}, timeout=10)  # no session: who is playing?
    assert (stranger.status_code, stranger.json()["error"]["code"]) == (401, "identify")
    assert not GameSession.objects.exists()

    session = browser.post(start_url, json={}, headers=headers, timeout=10).json()
    _backdate(session["nonce"])
    forged = browser.post(result_url, json={"nonce": session["nonce"], "score": 9, "sig": "0" * 64},
                          headers=headers, timeout=10)  # fmt: skip
    assert (forged.status_code, forged.json()["error"]["code"]) == (403, "forged_game_result")
    sig = result_signature(session["key"], session["nonce"], 9)
    played = browser.post(result_url, json={"nonce": session["nonce"], "score": 9, "sig": sig}, headers=headers,
                          timeout=10)  # fmt: skip
    assert played.json() == {"status": "played", "score": 9}
    assert GameSession.objects.get(pool=pool, contact=customer).finished_at is not None

    page = browser.get(link, timeout=10)
    assert 'name="claim"' in page.text
    claimed = browser.post(link, data={"claim": "1", "csrfmiddlewaretoken": token}, headers={"Referer": link},
                           timeout=10)  # fmt: skip
    assert 'data-amount-fen="300"' in claimed.text
    assert RedPacketClaim.objects.get(pool=pool).contact_id == customer.id


def test_the_pool_page_game_is_for_the_campaigns_recipients(live_stack, sim, staff, customer):  # noqa: F811
    pool = _game_pool()
    late = befriend(sim, staff, "Late")  # befriended after the launch: not in the campaign's audience
    browser = wechat_browser(live_stack, late.external_userid)
    page = browser.get(pool_link(pool.id), timeout=10)
    assert page.status_code == 403
    token = browser.cookies.get("csrftoken") or ""
    refused = browser.post(f"{pool_link(pool.id)}game/start/", json={}, timeout=10,
                           headers={"X-CSRFToken": token, "Referer": pool_link(pool.id)})  # fmt: skip
    assert refused.status_code == 403 and refused.json()["error"]["code"] in ("not_recipient", "csrf")
    assert not GameSession.objects.filter(contact=late).exists()


@pytest.mark.parametrize(("lang", "text"), [("zh-hans", "只有本群成员可以领取这个红包"),
                                            ("en", "Only members of this group can open this red packet")])
def test_rp_page_says_members_only_to_an_outsider(client, lang, text):
    owner = make_staff()
    member, outsider = make_contact(owner), make_contact(owner)
    group = _group(owner, [member], chat_id=f"wrmembers-{lang}")
    packet = gp.group_packet_create(group_id=group.id, budget_fen=300, count=2)
    rp.redpacket_pool_activate(packet.id)
    members_only = rp.redpacket_pool_create(
        campaign_id=None, budget_fen=600, count=2, mode="fixed", expires_at=later(hours=1),
        eligibility={"field": "group", "op": "in", "value": [group.chat_id]},
    )  # fmt: skip
    rp.redpacket_pool_activate(members_only.id)
    for pool in (packet, members_only):
        path = "/m/rp/" + claim_url(pool.id, outsider.id).split("/m/rp/")[1]
        page = client.get(path, HTTP_ACCEPT_LANGUAGE=lang)
        assert page.status_code == 200
        assert re.search(r'data-status="not_member">[^<]*' + text, page.content.decode())
        as_json = client.get(path + "?format=json", HTTP_ACCEPT_LANGUAGE=lang).json()
        assert as_json["status"] == "not_member" and text in as_json["message"]
        refused = client.post(path + "?format=json", HTTP_ACCEPT_LANGUAGE=lang).json()
        assert refused["status"] == "not_member"
        assert rp.redpacket_reconcile(pool.id)["claimable_fen"] == pool.budget_fen  # nothing reserved
    # A member is not refused.
    assert rp.redpacket_claim(pool_id=members_only.id, contact_id=member.id).status == "claimed"
