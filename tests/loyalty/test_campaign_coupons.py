"""A campaign that grants a coupon to each customer its message is delivered to (issue 12 item 5, "granted by a
campaign"): granted on delivery (the poll's hook), once per (run, contact), no points taken, stock respected (out
of stock recorded, not raised), and the message links to the card page where the coupon shows."""

from __future__ import annotations

from urllib.parse import urlsplit

import pytest
from django.db import IntegrityError, transaction
from django.test import Client
from django.utils import timezone

from crm.errors import ApplicationError
from crm.models import Campaign, CampaignRecipient, CampaignRun, MassMessage
from crm.services import campaign_runs
from crm.services import campaigns as campaign_services
from crm.services.customer_links import card_link, card_url
from crm.services.push_hooks import register_delivered_hook, unregister_delivered_hook
from crm.services.pushes import mass_message_poll, mass_message_send
from loyalty.models import CampaignCoupon, CampaignCouponGrant, Coupon, PointsLedger, Reward
from loyalty.services.campaign_coupons import campaign_coupon_set, campaign_coupons_grant
from loyalty.services.rewards import reward_save
from tests.crm.sending.conftest import make_staff, sim, world  # noqa: F401 (fixtures)


def _coupon(**kwargs) -> Reward:
    fields = {"name": "¥10 welcome", "kind": "coupon", "value_fen": 1000, "points_cost": 100, "valid_days": 30}
    return reward_save(**{**fields, **kwargs})


@pytest.mark.django_db
def test_only_an_active_coupon_on_an_editable_customer_campaign_and_text_gets_the_card_link(tiers):
    gift = reward_save(name="Mug", kind="gift", points_cost=50)
    coupon = _coupon()
    campaign = campaign_services.campaign_create(name="Welcome back", text="A coupon for you")
    with pytest.raises(ApplicationError) as refused:
        campaign_coupon_set(campaign_id=campaign.pk, reward_id=gift.pk)
    assert refused.value.field == "reward" and refused.value.code == "not_a_coupon"
    with pytest.raises(ApplicationError) as unknown:
        campaign_coupon_set(campaign_id=campaign.pk, reward_id=999999)
    assert unknown.value.status_code == 404 and unknown.value.field == "reward"

    row = campaign_coupon_set(campaign_id=campaign.pk, reward_id=coupon.pk)
    campaign.refresh_from_db()
    assert row.reward == coupon
    # A text-only message now links to the card page (the same link for everyone: OAuth says whose card).
    assert campaign.attachment == "link" and campaign.link_url == card_link() and campaign.link_title

    other = campaign_services.campaign_create(
        name="Elsewhere", text="See", attachment="link", link_title="Shop", link_url="https://shop.example/x"
    )
    with pytest.raises(ApplicationError) as elsewhere:
        campaign_coupon_set(campaign_id=other.pk, reward_id=coupon.pk)
    assert elsewhere.value.field == "link_url" and elsewhere.value.code == "coupon_needs_card_link"
    assert not CampaignCoupon.objects.filter(campaign=other).exists()

    assert campaign_coupon_set(campaign_id=campaign.pk, reward_id=None) is None
    assert not CampaignCoupon.objects.filter(campaign=campaign).exists()
    Campaign.objects.filter(pk=campaign.pk).update(status=Campaign.Status.RUNNING)
    with pytest.raises(ApplicationError) as locked:
        campaign_coupon_set(campaign_id=campaign.pk, reward_id=coupon.pk)
    assert locked.value.code == "campaign_not_editable" and locked.value.status_code == 409


@pytest.mark.django_db
def test_the_grant_row_is_unique_per_run_and_contact():
    constraint_fields = [tuple(c.fields) for c in CampaignCouponGrant._meta.constraints]
    assert ("run", "contact") in constraint_fields
    assert Coupon._meta.get_field("idempotency_key").unique


@pytest.mark.django_db(transaction=True)
@pytest.mark.timeout(120)
def test_delivered_recipients_get_one_coupon_each_without_points_and_out_of_stock_is_recorded(sim, tiers):  # noqa: F811
    granted_by_hook: list[dict] = []

    def run_now(campaign_id, run_id):  # what the enqueued task does, in this process
        granted_by_hook.append(campaign_coupons_grant(run_id))

    # Replaces loyalty's hook (same key) for this test: the task runs here instead of on a broker.
    register_delivered_hook("loyalty.campaign_coupons", run_now)
    try:
        sim.call("PATCH", "corp", confirm_delay_seconds=None)
        world(["cara"], 3)
        coupon = _coupon(stock=2)
        campaign = campaign_services.campaign_create(name="Coupon drop", text="Your coupon")
        campaign_coupon_set(campaign_id=campaign.pk, reward_id=coupon.pk)
        campaign_runs.campaign_launch(campaign.id, enqueue=False)
        message = MassMessage.objects.get(campaign=campaign)
        assert mass_message_send(message.id) == "created"
        message.refresh_from_db()
        # Nothing is granted before delivery: the sender has not confirmed yet.
        mass_message_poll(message.id)
        assert not Coupon.objects.exists() and granted_by_hook == []

        sim.call("POST", f"groupmsg/{message.msgid}/confirm")
        assert mass_message_poll(message.id) == {"delivered": 3}
    finally:
        from loyalty.services.campaign_coupons import campaign_delivered_hook

        register_delivered_hook("loyalty.campaign_coupons", campaign_delivered_hook)

    assert granted_by_hook == [{"granted": 2, "out_of_stock": 1}]
    run_id = message.run_id
    grants = CampaignCouponGrant.objects.filter(run_id=run_id)
    assert grants.count() == 3
    assert grants.filter(status="granted").count() == 2
    refused = grants.get(status="refused")
    assert refused.reason == "out_of_stock" and refused.coupon is None
    coupon.refresh_from_db()
    assert coupon.stock == 0
    coupons = Coupon.objects.filter(source="campaign")
    assert sorted(c.idempotency_key for c in coupons) == sorted(
        f"campaign:{run_id}:{g.contact_id}" for g in grants.filter(status="granted")
    )
    assert not PointsLedger.objects.filter(kind=PointsLedger.Kind.REDEEM).exists()  # no points taken

    # Again (a repeated task, a later page): nothing new.
    assert campaign_coupons_grant(run_id) == {}
    assert Coupon.objects.filter(source="campaign").count() == 2
    with pytest.raises(IntegrityError), transaction.atomic():
        CampaignCouponGrant.objects.create(
            campaign_coupon=refused.campaign_coupon, run_id=run_id, contact_id=refused.contact_id, status="granted"
        )

    # The message carried the card page's link; the customer's card page shows the coupon's code.
    campaign.refresh_from_db()
    assert any(a.get("link", {}).get("url") == card_link() for a in campaign_services.campaign_attachments(campaign))
    holder = grants.filter(status="granted").first()
    page = Client().get(urlsplit(card_url(holder.contact_id)).path)
    assert page.status_code == 200
    assert holder.coupon.code in page.content.decode()


@pytest.mark.django_db
def test_only_delivered_recipients_are_granted(tiers, make_contact):
    coupon = _coupon()
    campaign = campaign_services.campaign_create(name="Partial", text="Hi")
    campaign_coupon_set(campaign_id=campaign.pk, reward_id=coupon.pk)
    run = CampaignRun.objects.create(campaign=campaign, occurrence=timezone.now())
    statuses = ["delivered", "pending", "not_friend", "expired", "delivered"]
    contacts = [make_contact() for _ in statuses]
    CampaignRecipient.objects.bulk_create(
        [CampaignRecipient(campaign=campaign, run=run, contact=c, external_userid=c.external_userid, status=s)
         for c, s in zip(contacts, statuses, strict=True)]
    )  # fmt: skip
    assert campaign_coupons_grant(run.pk) == {"granted": 2}
    assert set(CampaignCouponGrant.objects.values_list("contact_id", flat=True)) == {contacts[0].pk, contacts[4].pk}


def test_the_hook_is_registered_by_loyalty():
    from crm.services import push_hooks

    assert "loyalty.campaign_coupons" in push_hooks._delivered_hooks
    unregister_delivered_hook("nothing-by-this-key")  # harmless


@pytest.mark.django_db
def test_campaign_coupon_api_sets_reads_and_refuses_by_field(admin_client_api, staff_client, tiers):
    coupon = _coupon()
    campaign = campaign_services.campaign_create(name="Api", text="Hi")
    url = f"/api/loyalty/campaigns/{campaign.pk}/coupon"
    assert admin_client_api.get(url).json() == {"campaign": campaign.pk, "reward": None, "link_url": "", "grants": {}}
    body = admin_client_api.put(url, {"reward": coupon.pk}, format="json")
    assert body.status_code == 200 and body.json()["reward"] == coupon.pk and body.json()["link_url"] == card_link()
    bad = admin_client_api.put(url, {"reward": "x"}, format="json")
    assert bad.status_code == 400
    gift = reward_save(name="Mug", kind="gift", points_cost=50)
    refused = admin_client_api.put(url, {"reward": gift.pk}, format="json")
    assert refused.status_code == 400 and refused.json()["error"]["field"] == "reward"
    assert admin_client_api.get("/api/loyalty/campaigns/999999/coupon").status_code == 404
    assert staff_client.put(url, {"reward": None}, format="json").status_code == 403
    schema = admin_client_api.get("/api/schema/?format=json").json()
    assert "/api/loyalty/campaigns/{campaign_id}/coupon" in schema["paths"]


NO_INLINES = {"red_packet_pool-TOTAL_FORMS": "0", "red_packet_pool-INITIAL_FORMS": "0"}


def _compose(**fields) -> dict:
    return {"name": "Console coupon", "text": "A coupon for you", "segment": "{}", "link_title": "", "link_url": "",
            "link_desc": "", "scheduled_at_0": "", "scheduled_at_1": "", **NO_INLINES, **fields}  # fmt: skip


@pytest.mark.django_db
def test_the_compose_form_chooses_a_coupon_and_refuses_a_foreign_link(admin_client, tiers):
    from django.urls import reverse

    coupon = _coupon()
    inline = {"coupon_reward-TOTAL_FORMS": "1", "coupon_reward-INITIAL_FORMS": "0", "coupon_reward-0-reward": coupon.pk}
    page = admin_client.get(reverse("admin:crm_campaign_add"))
    assert 'name="coupon_reward-0-reward"' in page.content.decode() or "coupon_reward-__prefix__-reward" in (
        page.content.decode()
    )
    refused = admin_client.post(
        reverse("admin:crm_campaign_add"),
        _compose(attachment="link", link_title="Shop", link_url="https://shop.example/x", **inline),
    )
    assert refused.status_code == 200 and "card page" in refused.content.decode()
    assert not Campaign.objects.exists()
    saved = admin_client.post(reverse("admin:crm_campaign_add"), _compose(**inline))
    assert saved.status_code == 302, saved.content.decode()[:2000]
    campaign = Campaign.objects.get(name="Console coupon")
    assert campaign.coupon_reward.reward == coupon and campaign.link_url == card_link()
    # A post without the section (a scripted post) leaves the campaign's coupon as it is.
    url = reverse("admin:crm_campaign_change", args=[campaign.pk])
    assert admin_client.post(url, _compose(attachment="link", link_title="x", link_url=card_link())).status_code == 302
    assert CampaignCoupon.objects.filter(campaign=campaign).exists()
