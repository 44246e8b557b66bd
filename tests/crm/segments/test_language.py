"""The filter language: every field and op, AND/OR/NOT nesting, the legacy flat shape, bad input named by its
path, and the PostgreSQL forms (tag array, consent in force and denormalised purchase columns kept by triggers)
selecting exactly what the portable forms (what SQLite runs) select."""

from __future__ import annotations

import pytest
from django.db import connection

from crm.errors import ApplicationError
from crm.models import Contact, Segment
from crm.services import segments
from loyalty.models import Purchase

from .conftest import day

pytestmark = pytest.mark.django_db


def names(definition, **kw) -> list[str]:
    qs = segments.resolve(segments.segment_validate(definition), **kw)
    return sorted(Contact.objects.filter(pk__in=qs.values("pk")).values_list("name", flat=True))


def c(field, op, value, **extra) -> dict:
    return {"field": field, "op": op, "value": value, **extra}


# (definition built from the world, the names it selects)
CASES = [
    ("everyone", lambda w: {}, ["ann", "ben", "cy", "dee"]),
    ("all_empty", lambda w: {"all": []}, ["ann", "ben", "cy", "dee"]),
    ("any_empty", lambda w: {"any": []}, []),
    ("tags_any", lambda w: c("tags", "any", [w.silver.id, w.spam.id]), ["ann", "ben", "dee"]),
    ("tags_all", lambda w: c("tags", "all", [w.gold.id, w.silver.id]), ["ann"]),
    ("tags_none", lambda w: c("tags", "none", [w.gold.id]), ["cy", "dee"]),
    ("channel", lambda w: c("channel", "in", [w.web_ch.id]), ["ben"]),
    ("staff", lambda w: c("staff", "in", ["alice"]), ["ann"]),  # ben: alice deleted him
    ("staff_resigned", lambda w: c("staff", "in", ["gone"]), []),
    ("group", lambda w: c("group", "in", ["wr1"]), ["ben"]),  # cy left
    ("vip_group", lambda w: c("vip_group", "is", True), ["ann"]),
    ("consent_granted", lambda w: c("consent", "granted", "marketing"), ["ann", "cy"]),
    ("consent_withdrawn", lambda w: c("consent", "withdrawn", "marketing"), ["ben"]),
    ("consent_other_purpose", lambda w: c("consent", "granted", "profiling"), ["dee"]),
    ("added_between", lambda w: c("added", "between", [day(250), day(5)]), ["ann", "ben"]),
    ("added_before", lambda w: c("added", "before", day(200)), ["cy"]),  # ben: on that day, not before
    ("added_after", lambda w: c("added", "after", day(11)), ["ann"]),
    ("source_wecom", lambda w: c("source", "in", ["wecom"]), ["ann", "ben", "cy"]),
    ("source_tmall", lambda w: c("source", "in", ["tmall"]), ["ben"]),
    ("source_jd_or_tmall", lambda w: c("source", "in", ["jd", "tmall"]), ["ben", "cy"]),
    ("tier_in", lambda w: c("tier", "in", [w.gold_tier.id]), ["ann"]),
    ("tier_not_in", lambda w: c("tier", "not_in", [w.gold_tier.id]), ["ben", "cy"]),  # cy: a card, no tier
    ("points_gte", lambda w: c("points", "gte", 100), ["ann", "ben"]),
    ("points_lte", lambda w: c("points", "lte", 100), ["ben", "cy"]),  # card holders only
    ("points_between", lambda w: c("points", "between", [50, 7000]), ["ann", "ben"]),
    ("spend_gte_90d", lambda w: c("spend", "gte", 20_000), ["ann", "ben"]),  # ben: Tmall order 20 days ago
    ("spend_gte_30d", lambda w: c("spend", "gte", 10_000, days=10), ["ann"]),
    ("spend_lte", lambda w: c("spend", "lte", 10_000), ["cy", "dee"]),  # cy's JD order is 100 days old
    ("spend_between_365d", lambda w: c("spend", "between", [5_000, 25_000], days=365), ["ben", "cy"]),
    ("spend_between_from_0", lambda w: c("spend", "between", [0, 20_000]), ["ben", "cy", "dee"]),
    ("spend_gte_0", lambda w: c("spend", "gte", 0), ["ann", "ben", "cy", "dee"]),
    ("last_purchase_after", lambda w: c("last_purchase", "after", day(30)), ["ann", "ben"]),
    ("last_purchase_before", lambda w: c("last_purchase", "before", day(50)), ["cy"]),
    ("last_purchase_before_far", lambda w: c("last_purchase", "before", day(350)), []),
    ("bought_sku", lambda w: c("bought", "any", {"skus": ["CUP1"]}), ["ben", "cy"]),
    ("bought_category", lambda w: c("bought", "any", {"categories": ["tea"]}), ["ann", "ben"]),
    ("bought_category_window", lambda w: c("bought", "any", {"categories": ["cups"]}, days=200), ["cy"]),
    ("bought_both", lambda w: c("bought", "any", {"skus": ["TEA1"], "categories": ["cups"]}), ["ann", "ben", "cy"]),
    ("not_condition", lambda w: {"not": c("tags", "any", [w.gold.id])}, ["cy", "dee"]),
    ("not_exists_field", lambda w: {"not": c("staff", "in", ["alice", "bob"])}, ["cy", "dee"]),
    (
        "and_or",
        lambda w: {
            "all": [
                c("tags", "any", [w.gold.id]),
                {"any": [c("channel", "in", [w.store_ch.id]), c("source", "in", ["tmall"])]},
            ]
        },
        ["ann", "ben"],
    ),
    ("not_any", lambda w: {"not": {"any": [c("vip_group", "is", True), c("spend", "gte", 20_000)]}}, ["cy", "dee"]),
    (
        "not_all",
        lambda w: {"not": {"all": [c("tags", "any", [w.gold.id]), c("consent", "granted", "marketing")]}},
        ["ben", "cy", "dee"],
    ),
    ("double_not", lambda w: {"not": {"not": c("tier", "in", [w.bronze.id])}}, ["ben"]),
    (
        "or_of_nots",
        lambda w: {"any": [{"not": c("staff", "in", ["bob"])}, c("spend", "gte", 20_000)]},
        ["ann", "ben", "cy", "dee"],
    ),
    (
        "nested_deep",
        lambda w: {
            "all": [
                {"any": [c("tags", "any", [w.silver.id]), c("tier", "in", [w.bronze.id])]},
                {"not": c("consent", "withdrawn", "marketing")},
                {"not": {"any": [c("bought", "any", {"skus": ["NONE"]}), c("last_purchase", "before", day(50))]}},
            ]
        },
        ["ann", "dee"],
    ),
    ("not_everyone", lambda w: {"not": {}}, []),
    ("not_nobody", lambda w: {"not": {"any": []}}, ["ann", "ben", "cy", "dee"]),
]


@pytest.mark.parametrize(("label", "make", "expected"), CASES, ids=[case[0] for case in CASES])
def test_each_field_and_op(world, label, make, expected):
    definition = make(world)
    assert names(definition) == expected
    # The PostgreSQL forms and the portable ones agree (on SQLite both are the portable form).
    assert names(definition, use_tag_array=False) == expected
    assert segments.segment_count(segments.segment_validate(definition)) == len(expected)


def test_saved_segment_expands_and_nests(world):
    gold = Segment.objects.create(name="gold", definition=c("tags", "any", [world.gold.id]))
    outer = Segment.objects.create(
        name="outer", definition={"all": [c("segment", "in", gold.id), c("consent", "granted", "marketing")]}
    )
    assert names(c("segment", "in", [gold.id])) == ["ann", "ben"]
    assert names({"not": c("segment", "in", outer.id)}) == ["ben", "cy", "dee"]
    assert names({"any": [c("segment", "in", [gold.id]), c("tags", "any", [world.silver.id])]}) == ["ann", "ben", "dee"]


def test_saved_segments_may_not_loop(world):
    a = Segment.objects.create(name="a", definition={})
    b = Segment.objects.create(name="b", definition=c("segment", "in", [a.id]))
    with pytest.raises(ApplicationError) as err:
        segments.segment_validate({"all": [c("segment", "in", [b.id])]}, field="definition", segment_id=a.id)
    assert err.value.field == "definition"
    Segment.objects.filter(pk=a.pk).update(definition=c("segment", "in", [b.id]))  # a loop written by hand
    with pytest.raises(ApplicationError):
        segments.segment_validate(c("segment", "in", [a.id]))


def test_legacy_flat_shape_is_converted(world):
    w = world
    tree = segments.segment_validate(
        {"tags": [w.gold.id], "exclude_tags": [w.spam.id], "channels": [w.store_ch.id], "staff": ["alice"], "vip": True}
    )
    assert tree == {
        "all": [
            c("tags", "any", [w.gold.id]),
            c("tags", "none", [w.spam.id]),
            c("channel", "in", [w.store_ch.id]),
            c("staff", "in", ["alice"]),
            c("tags", "any", [w.vip_tag.id]),
        ]
    }
    assert names({"tags": [w.gold.id, w.silver.id], "tags_match": "all"}) == ["ann"]
    assert names({"exclude_tags": [w.spam.id]}) == ["ann", "cy", "dee"]
    assert names({"vip": True}) == ["ann"]
    assert segments.preferred_staff(tree) == ["alice"]


def test_preferred_staff_only_from_the_top_level_and(world):
    definition = segments.segment_validate(
        {
            "all": [
                c("staff", "in", ["bob"]),
                {"all": [c("staff", "in", ["alice"])]},
                {"any": [c("staff", "in", ["gone"]), c("tags", "any", [world.gold.id])]},
                {"not": c("staff", "in", ["gone"])},
            ]
        }
    )
    assert segments.preferred_staff(definition) == ["alice", "bob"]
    assert segments.preferred_staff(segments.segment_validate(c("staff", "in", ["bob"]))) == ["bob"]
    assert segments.preferred_staff({}) == []


BAD = [
    ([1], "segment"),
    ({"all": "x"}, "segment.all"),
    ({"all": [{}, {"field": "colour", "op": "in", "value": [1]}]}, "segment.all[1].field"),
    ({"all": [{"value": 1}]}, "segment.all[0].field"),
    ({"any": [{"not": {"field": "tags", "op": "some", "value": [1]}}]}, "segment.any[0].not.op"),
    ({"all": [{"field": "tags", "op": "any", "value": [999999]}]}, "segment.all[0].value"),
    ({"field": "tags", "op": "any", "value": "x"}, "segment.value"),
    ({"field": "tags", "op": "any", "value": []}, "segment.value"),
    ({"field": "tags", "op": "any", "value": [1], "colour": 1}, "segment.colour"),
    ({"all": [], "any": []}, "segment.any"),
    ({"op": "in", "value": [1]}, "segment.field"),
    ({"field": "channel", "op": "in", "value": [424242]}, "segment.value"),
    ({"field": "staff", "op": "in", "value": ["nobody"]}, "segment.value"),
    ({"field": "group", "op": "in", "value": ["wrnone"]}, "segment.value"),
    ({"field": "vip_group", "op": "is", "value": False}, "segment.value"),
    ({"field": "consent", "op": "granted", "value": "spam"}, "segment.value"),
    ({"field": "added", "op": "between", "value": ["2026-01-01"]}, "segment.value"),
    ({"field": "added", "op": "between", "value": ["2026-01-01", "yesterday"]}, "segment.value[1]"),
    ({"field": "added", "op": "between", "value": ["2026-02-01", "2026-01-01"]}, "segment.value"),
    ({"field": "added", "op": "before", "value": "2026-13-01"}, "segment.value"),
    ({"field": "source", "op": "in", "value": ["douyin"]}, "segment.value"),
    ({"field": "segment", "op": "in", "value": 424242}, "segment.value"),
    ({"field": "tier", "op": "in", "value": [424242]}, "segment.value"),
    ({"field": "points", "op": "gte", "value": -1}, "segment.value"),
    ({"field": "points", "op": "between", "value": [5, 1]}, "segment.value"),
    ({"field": "spend", "op": "gte", "value": "100"}, "segment.value"),
    ({"field": "spend", "op": "gte", "value": 100, "days": 0}, "segment.days"),
    ({"field": "last_purchase", "op": "after", "value": "soon"}, "segment.value"),
    ({"field": "bought", "op": "any", "value": {}}, "segment.value"),
    ({"field": "bought", "op": "any", "value": {"categories": ["shoes"]}}, "segment.value.categories"),
    ({"field": "bought", "op": "any", "value": {"skus": [1]}}, "segment.value.skus"),
    ({"tags": [999999]}, "segment.tags"),
    ({"tags_match": "some"}, "segment.tags_match"),
    ({"colour": 1}, "segment.colour"),
    ({"vip": "yes"}, "segment.vip"),
]


@pytest.mark.parametrize(("definition", "path"), BAD, ids=[p for _, p in BAD])
def test_bad_input_names_its_path(world, definition, path):
    with pytest.raises(ApplicationError) as err:
        segments.segment_validate(definition)
    assert err.value.field == path
    assert err.value.status_code == 400


def test_too_deep_is_refused(world):
    node: dict = c("tags", "any", [world.gold.id])
    for _ in range(20):
        node = {"not": node}
    with pytest.raises(ApplicationError):
        segments.segment_validate(node)


def test_field_catalogue_has_every_field_with_ops_and_choices(world):
    fields = {f["name"]: f for f in segments.segment_fields()}
    assert set(fields) >= {
        "tags",
        "tier",
        "points",
        "spend",
        "last_purchase",
        "bought",
        "channel",
        "staff",
        "group",
        "vip_group",
        "consent",
        "added",
        "source",
        "segment",
    }
    assert [o["op"] for o in fields["tags"]["ops"]] == ["any", "all", "none"]
    assert {ch["value"] for ch in fields["tier"]["choices"]} == {world.bronze.id, world.gold_tier.id}
    assert {ch["value"] for ch in fields["bought"]["choices"]} == {"tea", "cups"}
    assert "wecom" in {ch["value"] for ch in fields["source"]["choices"]}
    assert fields["spend"]["extra"] == ["days"] and fields["spend"]["group"] == "loyalty"
    assert all(isinstance(f["label"], str) and f["label"] for f in fields.values())


def test_orders_count_per_setting(world, settings):
    spend = segments.segment_validate(c("spend", "gte", 20_000))
    assert names(spend) == ["ann", "ben"]
    settings.LOYALTY_SPEND_INCLUDES_ORDERS = False
    assert names(spend) == ["ann"]
    assert names(c("last_purchase", "before", day(50))) == ["ben"]  # till only: ben's receipt is 300 days old
    assert names(c("bought", "any", {"skus": ["CUP1"]})) == ["ben"]


@pytest.mark.skipif(connection.vendor != "postgresql", reason="the denormalised columns are PostgreSQL's")
def test_triggers_keep_the_denormalised_purchase_data(world):
    """A receipt's and a line's contact, each contact's latest purchase: kept through inserts, re-dating, card
    moves and deletes of order lines, so the PostgreSQL forms keep agreeing with the joins."""
    from crm.models import SourceOrderLine
    from loyalty.models import Card

    def agree():
        for _, make, _ in CASES:
            d = make(world)
            assert names(d) == names(d, use_tag_array=False), d

    with connection.cursor() as cur:
        cur.execute(
            "SELECT count(*) FROM loyalty_purchase p JOIN loyalty_card c ON c.id = p.card_id "
            "WHERE p.contact_id = c.contact_id"
        )
        assert cur.fetchone()[0] == Purchase.objects.count()
    Purchase.objects.filter(card__contact=world.ben).update(
        scanned_at=Purchase.objects.get(card__contact=world.ann).scanned_at
    )
    agree()
    SourceOrderLine.objects.filter(contact=world.ben).update(contact=world.dee)
    agree()
    SourceOrderLine.objects.filter(contact=world.cy).delete()
    agree()
    card = Card.objects.get(contact=world.cy)
    card.delete()
    Card.objects.filter(contact=world.ann).update(contact=world.cy)
    agree()
    assert names(c("spend", "gte", 50_000)) == ["cy"]


@pytest.mark.skipif(connection.vendor != "postgresql", reason="the consent rollup is PostgreSQL's")
def test_triggers_keep_the_consent_in_force(world):
    """crm_segment_consent holds the latest version per (purpose, contact) through a new version, a bulk insert,
    an update of a record and deletes (a deleted contact's consents take its rows with them); consent counts read
    it and agree with the records."""
    from crm.models import ConsentRecord

    def rollup() -> set[tuple]:
        with connection.cursor() as cur:
            cur.execute("SELECT purpose, contact_id, version, granted FROM crm_segment_consent")
            return set(cur.fetchall())

    def latest() -> set[tuple]:
        out = {}
        for r in ConsentRecord.objects.order_by("version"):
            out[(r.purpose, r.contact_id)] = (r.purpose, r.contact_id, r.version, r.granted)
        return set(out.values())

    def agree():
        assert rollup() == latest()
        for op in ("granted", "withdrawn"):
            for purpose in ("marketing", "profiling"):
                d = c("consent", op, purpose)
                assert names(d) == names(d, use_tag_array=False), d
                assert segments.segment_count(segments.segment_validate(d)) == len(names(d)), d

    agree()
    top = ConsentRecord.objects.filter(contact=world.ann, purpose="marketing").order_by("-version").first()
    ConsentRecord.objects.create(
        contact=world.ann,
        purpose="marketing",
        version=top.version + 1,
        granted=not top.granted,
        source="t",
        recorded_at=top.recorded_at,
    )
    agree()
    ConsentRecord.objects.bulk_create([
        ConsentRecord(contact=ct, purpose="profiling", version=9, granted=False, source="t",
                      recorded_at=top.recorded_at) for ct in (world.ben, world.cy, world.dee)
    ])  # fmt: skip
    agree()
    ConsentRecord.objects.filter(contact=world.ben, purpose="profiling").update(granted=True)
    agree()
    ConsentRecord.objects.filter(contact=world.ann, purpose="marketing", version=top.version + 1).delete()
    agree()
    ConsentRecord.objects.filter(contact=world.dee).delete()
    agree()
    assert not any(row[1] == world.dee.id for row in rollup())


def test_a_one_condition_count_agrees_with_the_contacts(world):
    """segment_count counts a one-condition definition over its set of contact ids on PostgreSQL (no contact scan):
    the same number as counting the contacts it resolves to, also wrapped in a one-child all / any."""
    for label, make, expected in CASES:
        definition = segments.segment_validate(make(world))
        for wrapped in (definition, {"all": [definition]}, {"any": [definition]}):
            assert segments.segment_count(wrapped) == segments.resolve(wrapped).count() == len(expected), label


@pytest.mark.skipif(connection.vendor != "postgresql", reason="the rollups are PostgreSQL's")
def test_a_truncate_empties_the_rollups(world):
    """A one-condition count counts the rollups' ids alone: a TRUNCATE of what they summarise (Django's flush) must
    leave none behind."""
    with connection.cursor() as cur:
        cur.execute(
            "SELECT (SELECT count(*) FROM crm_segment_consent), (SELECT count(*) FROM loyalty_segment_last_purchase)"
        )
        assert all(cur.fetchone())
        cur.execute("SET CONSTRAINTS ALL IMMEDIATE")  # the world's deferred FK checks, pending in this transaction
        cur.execute("TRUNCATE crm_consentrecord, crm_sourceorderline, loyalty_purchase CASCADE")
        cur.execute(
            "SELECT (SELECT count(*) FROM crm_segment_consent), (SELECT count(*) FROM loyalty_segment_last_purchase)"
        )
        assert cur.fetchone() == (0, 0)
    assert segments.segment_count(segments.segment_validate(c("consent", "granted", "marketing"))) == 0
    assert segments.segment_count(segments.segment_validate(c("last_purchase", "after", day(3650)))) == 0
