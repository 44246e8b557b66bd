"""Earning rules: each multiplier, min spend, exclusions, caps, rounding, bonus once; a scan stores the breakdown."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import pytest

from loyalty.models import EarningBonusGrant, PointsLedger, Purchase, PurchaseLine
from loyalty.qr import qr_token_mint
from loyalty.services import store_upsert
from loyalty.services.earning import earn_bonuses_grant, earn_evaluate, earning_rule_save
from loyalty.services.products import product_save

pytestmark = pytest.mark.django_db
CHINA = ZoneInfo("Asia/Shanghai")
AT = dt.datetime(2026, 11, 11, 12, 0, tzinfo=CHINA)
LINES = [{"sku": "TEA-001", "amount_fen": 9800}, {"sku": "CUP-007", "amount_fen": 2100}]


def rule(kind, **fields):
    return earning_rule_save({"name": f"{kind} rule", "kind": kind, **fields})


def evaluate(card, store, amount=11900, lines=LINES, at=AT, **kw):
    return earn_evaluate(card=card, store=store, amount_fen=amount, lines=lines, at=at, **kw)


def _sums(result):
    assert sum(b["points"] for b in result.breakdown) == result.points
    if result.line_points:
        assert sum(result.line_points) == result.points


def test_no_rule_keeps_the_default_rate(card, store):
    result = evaluate(card, store)
    assert result.points == 119 and result.line_points == [98, 21]
    assert result.breakdown == [{"rule": None, "name": "LOYALTY_FEN_PER_POINT", "points": 119}]


def test_base_rate_rule_replaces_the_default(card, store):
    base = rule("base", fen_per_point=50)
    result = evaluate(card, store)
    assert result.points == 238 and result.breakdown == [{"rule": base.pk, "name": base.name, "points": 238}]
    _sums(result)


def test_tier_multiplier_applies_only_to_that_tier(card, store, tiers):
    gold = rule("multiplier", multiplier_pct=150, tier=tiers["Gold"].pk)
    assert evaluate(card, store).points == 119  # the card is a Member
    result = evaluate(None, store, tier=tiers["Gold"])
    assert result.points == 178  # 119 * 1.5 = 178.5, rounded down once
    assert {b["rule"]: b["points"] for b in result.breakdown} == {None: 119, gold.pk: 59}
    _sums(result)


def test_store_multiplier(card, store):
    other = store_upsert(code="store-bj-001", name="Beijing", city="Beijing")
    rule("multiplier", multiplier_pct=200, store=other.pk)
    assert evaluate(card, store).points == 119
    assert evaluate(card, other).points == 238


def test_date_range_multiplier_double_on_11_11_only(card, store):
    rule("multiplier", multiplier_pct=200, starts_on="2026-11-11", ends_on="2026-11-11")
    assert evaluate(card, store).points == 238
    # 00:30 on the 12th in Shanghai is still the 11th in UTC: the Shanghai day counts.
    late = dt.datetime(2026, 11, 12, 0, 30, tzinfo=CHINA)
    assert evaluate(card, store, at=late).points == 119


def test_category_and_sku_multipliers_apply_per_line(card, store):
    product_save(sku="TEA-001", name="Oolong", category="tea")
    tea = rule("multiplier", multiplier_pct=300, category="tea")
    cup = rule("multiplier", multiplier_pct=200, sku="CUP-007")
    result = evaluate(card, store)
    assert result.line_points == [294, 42] and result.points == 336
    assert {b["rule"]: b["points"] for b in result.breakdown} == {None: 119, tea.pk: 196, cup.pk: 21}
    _sums(result)


def test_multipliers_stack(card, store, tiers):
    rule("multiplier", multiplier_pct=200)
    rule("multiplier", multiplier_pct=150)
    assert evaluate(card, store).points == 357  # 119 * 2 * 1.5


def test_minimum_spend(card, store):
    minimum = rule("min_spend", min_spend_fen=20000)
    result = evaluate(card, store)
    assert result.points == 0 and result.line_points == [0, 0] and result.breakdown[0]["rule"] == minimum.pk
    assert evaluate(card, store, amount=20000, lines=None).points == 200


def test_excluded_sku_earns_nothing(card, store):
    rule("exclude_sku", sku="CUP-007")
    result = evaluate(card, store)
    assert result.points == 98 and result.line_points == [98, 0]


def test_cap_per_receipt(card, store):
    cap = rule("cap_receipt", cap_points=100)
    result = evaluate(card, store)
    assert result.points == 100 and sum(result.line_points) == 100
    assert result.breakdown[-1] == {"rule": cap.pk, "name": cap.name, "points": -19}
    _sums(result)


def test_cap_per_day_counts_the_cards_earlier_receipts_that_shanghai_day(card, store, cashier_client):
    rule("cap_day", cap_points=150)
    qr = qr_token_mint(card.number).token
    body = {"qr_token": qr, "receipt_id": "D-1", "store": store.code, "amount_fen": 11900}
    assert cashier_client.post("/api/loyalty/scans", body, format="json").json()["points"] == 119
    result = evaluate(card, store, at=dt.datetime.now(CHINA))
    assert result.points == 31  # 150 - 119 left today
    tomorrow = dt.datetime.now(CHINA) + dt.timedelta(days=1)
    assert evaluate(card, store, at=tomorrow).points == 119


def test_rounding_down_once_and_lines_sum_exactly(card, store):
    rule("multiplier", multiplier_pct=133)
    lines = [{"sku": f"S{i}", "amount_fen": 333} for i in range(7)]
    result = evaluate(card, store, amount=2331, lines=lines)
    assert result.points == 31  # 23.31 * 1.33 = 31.0023, down once (per-line rounding would give 28)
    assert sum(result.line_points) == 31 and max(result.line_points) - min(result.line_points) <= 1
    _sums(result)


def test_inactive_rule_is_ignored(card, store):
    rule("multiplier", multiplier_pct=200, is_active=False)
    assert evaluate(card, store).points == 119


def test_bonus_once_per_contact(card, store, cashier_client):
    bonus = rule("bonus", event="first_purchase", bonus_points=50)
    assert evaluate(card, store).bonuses == [
        {"rule": bonus.pk, "name": bonus.name, "event": "first_purchase", "points": 50}
    ]
    qr = qr_token_mint(card.number).token
    body = {"qr_token": qr, "receipt_id": "B-1", "store": store.code, "amount_fen": 11900}
    response = cashier_client.post("/api/loyalty/scans", body, format="json")
    assert response.status_code == 201, response.json()
    card.refresh_from_db()
    assert card.points_balance == 169
    assert (
        PointsLedger.objects.filter(card=card, idempotency_key=f"bonus:first_purchase:{card.contact_id}").count() == 1
    )
    assert evaluate(card, store).bonuses == []  # not again
    purchase = Purchase.objects.get(pk=response.json()["purchase_id"])
    # The database holds it too: granting again is refused by the unique constraint and skipped.
    assert (
        earn_bonuses_grant(
            card=card,
            purchase=purchase,
            bonuses=[dict(bonus=1, **{"rule": bonus.pk, "name": bonus.name, "event": "first_purchase", "points": 50})],
        )
        == 0
    )
    assert EarningBonusGrant.objects.filter(contact_id=card.contact_id).count() == 1
    card.refresh_from_db()
    assert card.points_balance == 169


def test_profile_complete_bonus_needs_name_phone_and_gender(card, store):
    rule("bonus", event="profile_complete", bonus_points=20)
    assert evaluate(card, store).bonuses == []
    contact = card.contact
    contact.phone_hash, contact.gender = "h" * 64, 2
    contact.save()
    card.refresh_from_db()
    assert [b["points"] for b in evaluate(card, store).bonuses] == [20]


def test_scan_stores_the_breakdown_and_line_points(card, store, cashier_client):
    product_save(sku="TEA-001", name="Oolong", category="tea")
    tea = rule("multiplier", multiplier_pct=200, category="tea")
    qr = qr_token_mint(card.number).token
    body = {"qr_token": qr, "receipt_id": "S-1", "store": store.code, "amount_fen": 11900, "items": LINES}
    response = cashier_client.post("/api/loyalty/scans", body, format="json")
    assert response.status_code == 201, response.json()
    purchase = Purchase.objects.get(pk=response.json()["purchase_id"])
    assert purchase.points == 217 and response.json()["points"] == 217
    assert purchase.earn_breakdown == [
        {"rule": None, "name": "LOYALTY_FEN_PER_POINT", "points": 119},
        {"rule": tea.pk, "name": tea.name, "points": 98},
    ]
    assert list(PurchaseLine.objects.filter(purchase=purchase).values_list("sku", "points")) == [
        ("TEA-001", 196),
        ("CUP-007", 21),
    ]
    assert PointsLedger.objects.get(purchase=purchase).delta == 217


def test_lines_share_the_paid_amount_and_never_earn_more_than_it(card, store):
    result = evaluate(card, store, amount=5950)  # lines list 11,900 fen: half was paid
    assert result.points == 59 and result.line_points == [49, 10]
    assert evaluate(card, store, amount=11900, lines=[{"sku": "A", "amount_fen": 10**9}]).points == 119
