"""Loyalty 0011's PostgreSQL rollups stay equal to the rows they summarise: the card's tier on the contact row, and
spend per window (loyalty_segment_spend) through inserts, updates, deletes and the day turning."""

from __future__ import annotations

import random
from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from django.db import connection
from django.utils import timezone

from crm.models import Contact, DataSource, SourceOrderLine
from crm.services import segments
from loyalty.models import Card, Purchase, Store, Tier
from loyalty.segment_fields import SPEND_WINDOWS
from loyalty.services.segment_rollups import spend_rollup_advance

pytestmark = [
    pytest.mark.django_db,
    pytest.mark.skipif("connection.vendor != 'postgresql'", reason="the rollups are PostgreSQL's"),
]
SH = ZoneInfo("Asia/Shanghai")


def today():
    return timezone.now().astimezone(SH).date()


def at(days_ago: int, hour: int) -> datetime:
    return datetime.combine(today() - timedelta(days=days_ago), time(hour), tzinfo=SH)


def expected(day) -> dict[int, dict[str, int]]:
    """Each contact's spend per window as of Shanghai day `day`, summed from the rows (no zero rows)."""
    out: dict[int, dict[str, int]] = {}
    rows = [(p.card.contact_id, p.scanned_at, p.amount_fen, "till") for p in Purchase.objects.select_related("card")]
    rows += [(o.contact_id, o.ordered_at, o.amount_fen, "order") for o in SourceOrderLine.objects.all()]
    for contact_id, moment, fen, source in rows:
        if contact_id is None:
            continue
        for days in SPEND_WINDOWS:
            start = datetime.combine(day - timedelta(days=days - 1), time.min, tzinfo=SH)
            if moment >= start:
                sums = out.setdefault(contact_id, {f"{s}_{d}": 0 for s in ("till", "order") for d in SPEND_WINDOWS})
                sums[f"{source}_{days}"] += fen
    return out


def rollup() -> dict[int, dict[str, int]]:
    columns = [f"{s}_{d}" for s in ("till", "order") for d in SPEND_WINDOWS]
    with connection.cursor() as cur:
        cur.execute(f"SELECT contact_id, {', '.join(columns)} FROM loyalty_segment_spend")
        rows = {r[0]: dict(zip(columns, r[1:], strict=True)) for r in cur.fetchall()}
    return {k: v for k, v in rows.items() if any(v.values())}


def state_day():
    with connection.cursor() as cur:
        cur.execute("SELECT day FROM loyalty_segment_spend_state")
        return cur.fetchone()[0]


@pytest.fixture
def shop():
    store = Store.objects.create(code="st1", name="St1")
    tmall = DataSource.objects.get_or_create(code="tmall", defaults={"name": "Tmall", "openness": "semi_open"})[0]
    contacts = [Contact.objects.create(external_userid=f"wmroll{i}", name=f"c{i}") for i in range(12)]
    cards = [Card.objects.create(contact=c, number=f"{c.pk:016d}") for c in contacts[:8]]
    return store, tmall, contacts, cards


def test_spend_windows_follow_every_write_and_the_day_turning(shop):
    store, tmall, contacts, cards = shop
    rng = random.Random(11)
    with connection.cursor() as cur:  # as of 40 days ago: the advance below moves it day by day to today
        cur.execute("SELECT loyalty_segment_spend_rebuild(%s)", [today() - timedelta(days=40)])
    receipts = []
    for i in range(60):
        p = Purchase.objects.create(store=store, receipt_id=f"r{i}", card=rng.choice(cards),
                                    amount_fen=rng.randint(100, 90_000))  # fmt: skip
        # Re-dated as a backfill would: around each window's edge, some older than a year.
        Purchase.objects.filter(pk=p.pk).update(scanned_at=at(rng.choice([0, 1, 29, 30, 89, 90, 200, 400]), 1))
        receipts.append(p)
    orders = SourceOrderLine.objects.bulk_create(
        SourceOrderLine(source=tmall, order_id=f"o{i}", phone_hash="h", contact=rng.choice([*contacts, None]),
                        sku="X", amount_fen=rng.randint(0, 50_000), ordered_at=at(rng.randint(0, 420), 23))
        for i in range(80)
    )  # fmt: skip
    assert rollup() == expected(today() - timedelta(days=40))

    # Updates (re-dated, re-amounted, moved to another contact or to none) and deletes.
    for p in rng.sample(receipts, 15):
        Purchase.objects.filter(pk=p.pk).update(amount_fen=rng.randint(1, 5_000), scanned_at=at(rng.randint(0, 60), 5))
    Purchase.objects.filter(pk__in=[p.pk for p in receipts[:5]]).delete()
    SourceOrderLine.objects.filter(pk__in=[o.pk for o in orders[:10]]).update(contact=contacts[-1])
    SourceOrderLine.objects.filter(pk__in=[o.pk for o in orders[10:15]]).update(contact=None)
    SourceOrderLine.objects.filter(pk__in=[o.pk for o in orders[15:25]]).delete()
    assert rollup() == expected(today() - timedelta(days=40))

    assert spend_rollup_advance() == today() == state_day()
    assert rollup() == expected(today())
    assert spend_rollup_advance() == today()  # idempotent
    assert rollup() == expected(today())


def test_counts_read_the_rollup_only_when_it_holds_today(shop):
    store, _, _, cards = shop
    for i, card in enumerate(cards):
        p = Purchase.objects.create(store=store, receipt_id=f"r{i}", card=card, amount_fen=10_000 * (i + 1))
        Purchase.objects.filter(pk=p.pk).update(scanned_at=at(i * 20, 12))
    definition = segments.segment_validate({"field": "spend", "op": "gte", "value": 30_000, "days": 90})
    portable = segments.resolve(definition, use_tag_array=False).count()
    assert portable == 3  # 30,000, 40,000 and 50,000, at 40, 60 and 80 days ago; 60,000 at 100 is outside
    sql = str(segments.resolve(definition).query)
    assert "loyalty_segment_spend" in sql and segments.segment_count(definition) == portable
    with connection.cursor() as cur:  # the day turned and beat has not advanced it yet: summed from the rows
        cur.execute("UPDATE loyalty_segment_spend_state SET day = day - 1")
    sql = str(segments.resolve(definition).query)
    assert "loyalty_segment_spend" not in sql and segments.segment_count(definition) == portable


def test_the_cards_tier_is_kept_on_the_contact_row(shop):
    _, _, contacts, cards = shop
    bronze = Tier.objects.create(name="B", min_points=0, rank=1)
    gold = Tier.objects.create(name="G", min_points=5000, rank=2)

    def on_rows() -> dict[int, int | None]:
        with connection.cursor() as cur:
            cur.execute("SELECT id, loyalty_tier_id FROM crm_contact")
            return dict(cur.fetchall())

    def from_cards() -> dict[int, int | None]:
        tiers = dict(Card.objects.values_list("contact_id", "tier_id"))
        return {c.pk: tiers.get(c.pk) for c in Contact.objects.all()}

    Card.objects.filter(pk__in=[c.pk for c in cards[:4]]).update(tier=bronze)
    Card.objects.filter(pk=cards[1].pk).update(tier=gold)
    Card.objects.filter(pk=cards[2].pk).update(contact=contacts[10])  # the card moved to another contact
    Card.objects.create(contact=contacts[11], number="9" * 16, tier=gold)
    Card.objects.filter(pk=cards[3].pk).delete()
    assert on_rows() == from_cards()
    # Under an OR the tier is tested on that column, and selects what the card join selects.
    definition = segments.segment_validate(
        {"any": [{"field": "tier", "op": "in", "value": [gold.pk]}, {"field": "points", "op": "gte", "value": 1}]}
    )
    assert "loyalty_tier_id" in str(segments.resolve(definition).query)
    assert set(segments.resolve(definition).values_list("pk", flat=True)) == {contacts[1].pk, contacts[11].pk}
    assert segments.resolve(definition, use_tag_array=False).count() == 2
    negated = segments.segment_validate(
        {"any": [{"not": {"field": "tier", "op": "in", "value": [gold.pk]}}, {"field": "points", "op": "gte",
                                                                                 "value": 1}]}
    )  # fmt: skip
    assert segments.resolve(negated).count() == segments.resolve(negated, use_tag_array=False).count() == 10
