"""VIP group rules on tier changes, end to end over real HTTP (CRM + simulator) with a real worker: entering a VIP
tier invites once; leaving it (the scheduled evaluation, after grace) untags VIP in WeCom and notifies the
customer's staff once, also when the task is delivered again."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from crm.models import Contact, ContactTag
from crm.models.groups import CustomerGroup, VipInvite
from crm.services.channels import channel_create
from crm.services.groups import group_mark_vip, group_sync
from crm.wecom.client import get_client
from loyalty import tasks_tiers
from loyalty.models import TierChange, TierEffect
from loyalty.services import card_get_or_create, points_adjust, tiers_ensure_defaults
from loyalty.services.tiers import tier_policy_save, tiers_evaluate_all
from tests.conftest import wait_for
from tests.crm.contacts.conftest import sim, staffed  # noqa: F401 - the simulator's admin API fixtures
from wecom_sim.models import SimAppMessage

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.worker]


@pytest.fixture
def vip_invites():
    """Overrides the loyalty conftest's recorder: here the real task runs in the worker."""
    return None


def _vip_tagged_in_wecom(external_userid: str) -> bool:
    follows = get_client().externalcontact_get(external_userid).get("follow_user", [])
    return any(t.get("tag_name") == "VIP" for f in follows for t in f.get("tags", []))


@pytest.mark.timeout(180)
def test_enter_and_leave_vip_invite_untag_notify_once(staffed, celery_worker):  # noqa: F811
    world = staffed
    channel_create(name="Store", state="store-1", staff_userids=["bob"])
    eid = world.shopper("Fang")
    world.scan(eid, "store-1")
    contact = wait_for(lambda: Contact.objects.filter(external_userid=eid).first(), timeout=30, message="contact")
    chat_id = world.post("groupchats", {"owner": "bob", "name": "VIP 1"})["chat_id"]
    group_sync(chat_id)
    group_mark_vip(CustomerGroup.objects.get(chat_id=chat_id))
    tiers_ensure_defaults()
    tier_policy_save(basis="points", window_days=365, grace_days=7)
    card = card_get_or_create(contact.pk)

    # Entering Gold (VIP): tagged and invited, once.
    points_adjust(card_id=card.pk, delta=5000, reason="launch party", idempotency_key="vip-up")
    invite = wait_for(
        lambda: VipInvite.objects.filter(contact=contact, status="sent").first(), timeout=30, message="invite sent"
    )
    wait_for(lambda: _vip_tagged_in_wecom(eid), timeout=30, message="VIP tag in WeCom")
    assert VipInvite.objects.filter(contact=contact).count() == 1 and invite.sender.userid == "bob"

    # A year on the points have rolled out of the window: noted at D, kept in grace, moved down at D + 7 days.
    d = timezone.now() + timedelta(days=400)
    assert tiers_evaluate_all(at=d)["downgraded"] == 0
    assert tiers_evaluate_all(at=d + timedelta(days=7))["downgraded"] == 1
    down = TierChange.objects.get(card=card, reason="downgrade")
    wait_for(
        lambda: (
            set(TierEffect.objects.filter(change=down).values_list("kind", "status"))
            == {("untag", "done"), ("notify", "done")}
        ),
        timeout=30,
        message="untag and notify done",
    )
    assert not ContactTag.objects.filter(contact=contact, tag__name="VIP").exists()
    wait_for(lambda: not _vip_tagged_in_wecom(eid), timeout=30, message="VIP tag removed in WeCom")
    notices = list(SimAppMessage.objects.filter(touser=["bob"]))
    assert len(notices) == 1 and "Gold" in notices[0].body["text"]["content"]

    # The task delivered again (at-least-once) does nothing more.
    tasks_tiers.vip_leave.apply(args=[down.pk]).get()
    assert SimAppMessage.objects.filter(touser=["bob"]).count() == 1
    assert TierEffect.objects.filter(change=down).count() == 2
    assert VipInvite.objects.filter(contact=contact).count() == 1
