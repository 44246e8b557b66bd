"""The console's pool form carries the gate fields: a draft pool gets a game, a purchase and an add-staff gate
and its claim expiry through the red-packet service; a bad value is shown on the form, nothing saved."""

from __future__ import annotations

import pytest
from django.utils import timezone

from crm.models import Channel, RedPacketPool
from crm.services import redpackets as rp
from tests.crm.campaigns.conftest import later

pytestmark = pytest.mark.django_db(transaction=True)


def _form(pool: RedPacketPool, **over) -> dict:
    expires = timezone.localtime(pool.expires_at)
    data = {"budget_fen": pool.budget_fen, "count": pool.count, "mode": pool.mode, "min_fen": pool.min_fen,
            "max_fen": pool.max_fen, "starts_at_0": "", "starts_at_1": "",
            "expires_at_0": expires.strftime("%Y-%m-%d"), "expires_at_1": expires.strftime("%H:%M:%S"),
            "act_name": pool.act_name, "wishing": pool.wishing, "gate_friends": 0, "claim_expiry_hours": 24,
            "gate_purchase_fen": 0, "gate_channel": "", "eligible_segment": ""}  # fmt: skip
    data.update(over)
    return {k: v for k, v in data.items() if v is not None}


def test_the_pool_form_sets_the_gates(admin_client):
    channel = Channel.objects.create(name="Store GZ", state="store-gz-1")
    pool = rp.redpacket_pool_create(campaign_id=None, budget_fen=600, count=2, mode="fixed", expires_at=later(days=1))
    url = f"/admin/crm/redpacketpool/{pool.id}/change/"
    page = admin_client.get(url).content.decode()
    for name in ("gate_game", "gate_purchase_fen", "gate_channel", "claim_expiry_hours"):
        assert f'name="{name}"' in page
    bad = admin_client.post(url, _form(pool, claim_expiry_hours=0, gate_game="on"))
    assert bad.status_code == 200  # the form again, with the error
    assert not RedPacketPool.objects.get(id=pool.id).gate_game
    ok = admin_client.post(url, _form(pool, gate_game="on", gate_purchase_fen=5000, gate_channel=channel.id,
                                      claim_expiry_hours=12))  # fmt: skip
    assert ok.status_code == 302, ok.content.decode()[:3000]
    saved = RedPacketPool.objects.get(id=pool.id)
    assert (saved.gate_game, saved.gate_purchase_fen, saved.gate_channel_id, saved.claim_expiry_hours) == (
        True, 5000, channel.id, 12)
