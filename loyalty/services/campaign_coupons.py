"""A campaign that grants a coupon (no points) to each customer its message reaches.

The moment: delivery. WeCom reports a recipient delivered only after the sender confirmed the task and the
message reached the customer (get_groupmsg_send_result status 1); crm's poll stores those results page by page
and, once a page with deliveries is committed, calls loyalty's hook (crm.services.push_hooks), which enqueues
`campaign_coupons_grant` for the run. Granting at planning or at send would give coupons to customers the
message never reached (expired tasks, not friends, over the limit).

The grant walks the run's delivered recipients that have no CampaignCouponGrant yet, so a repeated or lost task
is harmless: the next delivery page enqueues it again, and what is done stays done. Each recipient is one
transaction: the coupon (key `campaign:<run>:<contact>`, unique) and the grant row (unique per run and contact).
A refusal (out of stock, outside validity, reward withdrawn) is recorded on the grant row, never raised.
The message's link is the card page (`/m/card/`, the same for everyone: WeChat OAuth says whose card), where
the coupon shows as a QR."""

from __future__ import annotations

import logging
from urllib.parse import urlsplit

from django.db import transaction
from django.db.models import Exists, OuterRef
from django.utils.translation import gettext as _

from crm.errors import ApplicationError, Conflict, NotFound
from crm.models import Campaign, CampaignRecipient, CampaignRun
from crm.services.campaigns import EDITABLE
from crm.services.customer_links import card_link
from loyalty.models import CampaignCoupon, CampaignCouponGrant, Coupon, Reward
from loyalty.services.coupons import coupon_grant_recorded

logger = logging.getLogger(__name__)

GRANT_CHUNK = 500


def campaign_coupon_key(run_id: int, contact_id: int) -> str:
    return f"campaign:{run_id}:{contact_id}"


def _links_to_card(attachment: str, link_url: str) -> bool:
    return attachment == Campaign.Attachment.LINK and urlsplit(link_url or "").path.rstrip("/") == "/m/card"


def campaign_coupon_validate(*, reward_id: int | None, attachment: str, link_url: str) -> Reward | None:
    """The reward a campaign may grant (an active coupon) and a message that can show it: a link to the card page,
    or text only (the link is then added). Refusals name the field."""
    if reward_id is None:
        return None
    reward = Reward.objects.filter(pk=reward_id).first()
    if reward is None:
        raise NotFound(_("No such reward."), code="unknown_reward", field="reward")
    if reward.kind != Reward.Kind.COUPON:
        raise ApplicationError(_("A campaign can grant only a reward of kind coupon."), code="not_a_coupon",
                               field="reward")  # fmt: skip
    if not reward.is_active:
        raise ApplicationError(_("This reward is not on offer."), code="unknown_reward", field="reward")
    if (
        attachment
        and not (attachment == Campaign.Attachment.LINK and not link_url)
        and not _links_to_card(attachment, link_url)
    ):
        raise ApplicationError(
            _("A campaign with a coupon links to the card page (%(url)s), where the coupon shows; or send text only "
              "and the link is added.") % {"url": card_link()},
            code="coupon_needs_card_link",
            field="link_url",
        )  # fmt: skip
    return reward


@transaction.atomic
def campaign_coupon_set(*, campaign_id: int, reward_id: int | None) -> CampaignCoupon | None:
    """Give a draft or scheduled campaign a coupon (or take it away with None). A text-only message gets the card
    page's link, so the customer lands where the coupon is."""
    campaign = Campaign.objects.select_for_update().filter(pk=campaign_id).first()
    if campaign is None:
        raise NotFound(_("No such campaign."), field="campaign")
    if campaign.status not in EDITABLE:
        raise Conflict(_("Only a draft or scheduled campaign can change its coupon."), code="campaign_not_editable",
                       field="reward")  # fmt: skip
    if campaign.target != Campaign.Target.SEGMENT and reward_id is not None:
        raise ApplicationError(_("Only a campaign to customers (a segment) can grant coupons."),
                               code="coupon_needs_customers", field="reward")  # fmt: skip
    reward = campaign_coupon_validate(reward_id=reward_id, attachment=campaign.attachment, link_url=campaign.link_url)
    if reward is None:
        CampaignCoupon.objects.filter(campaign=campaign).delete()
        return None
    if not _links_to_card(campaign.attachment, campaign.link_url):
        campaign.attachment = Campaign.Attachment.LINK
        campaign.link_url = card_link()
        campaign.link_title = campaign.link_title or reward.name[:128]
        campaign.link_desc = campaign.link_desc or _("Your coupon is on your loyalty card.")
        campaign.save(update_fields=["attachment", "link_url", "link_title", "link_desc", "updated_at"])
    row, _created = CampaignCoupon.objects.update_or_create(campaign=campaign, defaults={"reward": reward})
    return row


def campaign_coupons_grant(run_id: int) -> dict[str, int]:
    """Grant the campaign's coupon to every delivered recipient of the run not granted yet: counts per outcome."""
    run = CampaignRun.objects.filter(pk=run_id).first()
    campaign_coupon = CampaignCoupon.objects.filter(campaign_id=run.campaign_id).first() if run else None
    counts: dict[str, int] = {}
    if campaign_coupon is None:
        return counts
    done = CampaignCouponGrant.objects.filter(run_id=run_id, contact_id=OuterRef("contact_id"))
    pending = (
        CampaignRecipient.objects.filter(run_id=run_id, status=CampaignRecipient.Status.DELIVERED)
        .filter(~Exists(done))
        .order_by("contact_id")
    )
    after = 0
    while True:
        contact_ids = list(pending.filter(contact_id__gt=after).values_list("contact_id", flat=True)[:GRANT_CHUNK])
        if not contact_ids:
            break
        for contact_id in contact_ids:
            outcome = coupon_grant_recorded(
                CampaignCouponGrant, contact_id=contact_id, reward_id=campaign_coupon.reward_id,
                idempotency_key=campaign_coupon_key(run_id, contact_id), source=Coupon.Source.CAMPAIGN,
                campaign_coupon=campaign_coupon, run_id=run_id,
            )  # fmt: skip
            counts[outcome] = counts.get(outcome, 0) + 1
        after = contact_ids[-1]
    if any(k not in (CampaignCouponGrant.Status.GRANTED, "taken") for k in counts):
        logger.warning("campaign coupons not all granted", extra={"run_id": run_id, "counts": counts})
    return counts


def campaign_delivered_hook(campaign_id: int, run_id: int | None) -> None:
    """crm's push_hooks calls this once a page of deliveries is stored: enqueue the grant if this campaign has a
    coupon (a cheap lookup; most campaigns have none)."""
    if run_id is None or not CampaignCoupon.objects.filter(campaign_id=campaign_id).exists():
        return
    from loyalty.tasks_coupons import grant_campaign_coupons

    grant_campaign_coupons.delay(run_id)


def campaign_coupon_stats(campaign_id: int) -> dict[str, int]:
    """Grants of the campaign by outcome: {'granted': n, '<reason>': n}."""
    counts: dict[str, int] = {}
    rows = CampaignCouponGrant.objects.filter(campaign_coupon__campaign_id=campaign_id).values_list("status", "reason")
    for status, reason in rows:
        key = status if status == CampaignCouponGrant.Status.GRANTED else (reason or status)
        counts[key] = counts.get(key, 0) + 1
    return counts
