"""A small world every kind of condition can be tried on: tags, channels, staff, groups, consent, sources and
order lines, and loyalty cards, tiers, receipts and their lines (dates relative to today, Asia/Shanghai)."""

from __future__ import annotations

from datetime import datetime, time, timedelta
from types import SimpleNamespace
from zoneinfo import ZoneInfo

import pytest
from django.utils import timezone

from crm.models import (
    Channel,
    ConsentRecord,
    Contact,
    ContactTag,
    CustomerGroup,
    DataSource,
    FollowRelation,
    GroupMember,
    SourceOrderLine,
    Staff,
    Tag,
    TagGroup,
)
from loyalty.models import Card, Product, Purchase, PurchaseLine, Store, Tier

SH = ZoneInfo("Asia/Shanghai")


def days_ago(n: int, hour: int = 12) -> datetime:
    return datetime.combine(timezone.now().astimezone(SH).date() - timedelta(days=n), time(hour), tzinfo=SH)


def day(n: int) -> str:
    """The Asia/Shanghai date n days ago, YYYY-MM-DD."""
    return (timezone.now().astimezone(SH).date() - timedelta(days=n)).isoformat()


@pytest.fixture
def world(db):
    w = SimpleNamespace()
    group = TagGroup.objects.create(name="G")
    w.gold, w.silver, w.spam = (Tag.objects.create(group=group, name=n) for n in ("gold", "silver", "spam"))
    w.vip_tag = Tag.objects.create(group=group, name="VIP")
    w.alice, w.bob = Staff.objects.create(userid="alice"), Staff.objects.create(userid="bob")
    w.gone = Staff.objects.create(userid="gone", status=Staff.Status.RESIGNED)
    w.store_ch, w.web_ch = Channel.objects.create(name="Store", state="s1"), Channel.objects.create(name="Web",
                                                                                                    state="w1")
    w.g1 = CustomerGroup.objects.create(chat_id="wr1", name="Fans")
    w.vipg = CustomerGroup.objects.create(chat_id="wrvip", name="VIP", is_vip=True)
    w.tmall = DataSource.objects.get_or_create(code="tmall", defaults={"name": "Tmall", "openness": "semi_open"})[0]
    w.jd = DataSource.objects.get_or_create(code="jd", defaults={"name": "JD", "openness": "semi_open"})[0]
    w.bronze = Tier.objects.create(name="Bronze", min_points=0, rank=1)
    w.gold_tier = Tier.objects.create(name="Gold", min_points=5000, rank=2, is_vip=True)
    Product.objects.create(sku="TEA1", category="tea"), Product.objects.create(sku="CUP1", category="cups")
    Product.objects.create(sku="TEA2", category="tea")
    store = Store.objects.create(code="st1", name="St1")

    def contact(name, *, tags=(), channel=None, follows=(), added=None):
        c = Contact.objects.create(external_userid=f"wm{name}", name=name, channel=channel,
                                   first_added_at=days_ago(added) if added is not None else None)
        for t in tags:
            ContactTag.objects.create(contact=c, tag=t)
        for staff, deleted in follows:
            FollowRelation.objects.create(staff=staff, contact=c,
                                          deleted_by_staff_at=timezone.now() if deleted else None)
        return c

    def card(c, tier, points):
        return Card.objects.create(contact=c, number=f"{c.pk:016d}", tier=tier, points_balance=points)

    receipts = iter(range(1, 10_000))

    def purchase(card_, fen, ago, skus=()):
        p = Purchase.objects.create(store=store, receipt_id=f"r{next(receipts)}", card=card_, amount_fen=fen)
        Purchase.objects.filter(pk=p.pk).update(scanned_at=days_ago(ago))  # scanned_at is auto_now_add
        for sku in skus:
            PurchaseLine.objects.create(purchase=p, sku=sku, amount_fen=fen)
        return p

    def order(c, source, fen, ago, sku="X"):
        n = SourceOrderLine.objects.count() + 1
        return SourceOrderLine.objects.create(source=source, order_id=f"o{n}", phone_hash="h", contact=c, sku=sku,
                                              amount_fen=fen, ordered_at=days_ago(ago))

    # ann: gold+silver, store channel, alice; Gold tier 6000 points; spent 50,000 recently (till) on tea; VIP group.
    w.ann = contact("ann", tags=[w.gold, w.silver, w.vip_tag], channel=w.store_ch, follows=[(w.alice, False)],
                    added=10)
    purchase(card(w.ann, w.gold_tier, 6000), 50_000, 5, skus=["TEA1"])
    GroupMember.objects.create(group=w.vipg, contact=w.ann, member_id=w.ann.external_userid)
    # ben: gold+spam, web channel, bob (and alice, deleted); Bronze 100 points; bought long ago; Tmall orders.
    w.ben = contact("ben", tags=[w.gold, w.spam], channel=w.web_ch, follows=[(w.bob, False), (w.alice, True)],
                    added=200)
    purchase(card(w.ben, w.bronze, 100), 3_000, 300, skus=["CUP1"])
    order(w.ben, w.tmall, 20_000, 20, sku="TEA2")
    GroupMember.objects.create(group=w.g1, contact=w.ben, member_id=w.ben.external_userid)
    # cy: no tags, no channel, follows gone (resigned); a card with no tier; JD order only; left group g1.
    w.cy = contact("cy", follows=[(w.gone, False)], added=400)
    card(w.cy, None, 0)
    order(w.cy, w.jd, 9_000, 100, sku="CUP1")
    GroupMember.objects.create(group=w.g1, contact=w.cy, member_id=w.cy.external_userid, left_at=timezone.now())
    # dee: silver; no card, no follow (not added in WeCom); never bought.
    w.dee = contact("dee", tags=[w.silver])
    now = timezone.now()
    for c, versions in ((w.ann, [True]), (w.ben, [True, False]), (w.cy, [False, True])):
        for v, granted in enumerate(versions, 1):
            ConsentRecord.objects.create(contact=c, purpose="marketing", version=v, granted=granted, source="t",
                                         recorded_at=now)
    ConsentRecord.objects.create(contact=w.dee, purpose="profiling", version=1, granted=True, source="t",
                                 recorded_at=now)
    return w
