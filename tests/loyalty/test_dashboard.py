"""The full console dashboard (loyalty.dashboard): tier distribution and points per Shanghai day, and /admin/
rendering every panel's chart for an admin."""

from __future__ import annotations

import html as html_lib
import json
import re
from datetime import UTC, date, datetime

import pytest
from django.conf import settings
from django.utils import timezone

from crm.selectors.dashboard import SHANGHAI, day_range
from loyalty import selectors
from loyalty.dashboard import dashboard_callback, loyalty_data
from loyalty.models import Card
from loyalty.services import card_get_or_create
from loyalty.services.points import points_credit
from loyalty.services.tiers import tier_evaluate
from loyalty.tasks import refresh_dashboard_rollups

pytestmark = pytest.mark.django_db

NOW = datetime(2026, 3, 12, 15, 0, tzinfo=SHANGHAI)
FULL = "loyalty.dashboard.dashboard_callback"


def at(monkeypatch, when: datetime) -> None:
    monkeypatch.setattr(timezone, "now", lambda: when.astimezone(UTC))


@pytest.fixture
def ledger(tiers, make_contact, monkeypatch):
    """Five cards: 2 Member, 1 Silver, 1 Gold (VIP), 1 with no tier; credits and a redemption around midnight."""
    cards = [card_get_or_create(make_contact().pk) for _ in range(4)]
    moves = [
        (cards[0], 300, "earn", datetime(2026, 3, 10, 23, 59, tzinfo=SHANGHAI)),
        (cards[1], 1200, "earn", datetime(2026, 3, 11, 0, 1, tzinfo=SHANGHAI)),
        (cards[2], 6000, "earn", datetime(2026, 3, 11, 9, 0, tzinfo=SHANGHAI)),
        (cards[2], 50, "adjust", datetime(2026, 3, 12, 9, 0, tzinfo=SHANGHAI)),
        (cards[2], -400, "redeem", datetime(2026, 3, 12, 10, 0, tzinfo=SHANGHAI)),
        (cards[0], 100, "earn", datetime(2025, 12, 1, 10, 0, tzinfo=SHANGHAI)),  # outside the window
    ]
    for i, (card, delta, kind, when) in enumerate(moves):
        at(monkeypatch, when)
        points_credit(card_id=card.id, delta=delta, kind=kind, idempotency_key=f"dash-{i}")
    for card in cards:
        tier_evaluate(card.id)
    Card.objects.filter(id=cards[3].id).update(tier=None)
    at(monkeypatch, NOW)
    return cards


def test_tier_distribution(ledger):
    rows = selectors.tier_distribution()
    assert [(r["name"], r["cards"], r["is_vip"]) for r in rows] == [
        ("Member", 1, False), ("Silver", 1, False), ("Gold", 1, True), ("Platinum", 0, True), ("", 1, False)]


def test_points_daily_in_shanghai_days(ledger):
    since, until = day_range(date(2026, 2, 11), date(2026, 3, 12))
    points = selectors.points_daily(since, until, SHANGHAI)
    assert points == {
        date(2026, 3, 10): {"issued": 300, "redeemed": 0},
        date(2026, 3, 11): {"issued": 7200, "redeemed": 0},
        date(2026, 3, 12): {"issued": 50, "redeemed": 400},
    }


def test_callback_adds_loyalty_to_the_crm_panels(ledger, rf, admin_user):
    request = rf.get("/admin/")
    request.user = admin_user
    data = dashboard_callback(request, {})["dashboard"]
    assert {"contacts", "funnel", "spend", "operations"} <= set(data)
    loyalty = data["loyalty"]
    assert (loyalty["cards"], loyalty["vip_cards"]) == (4, 1)
    assert (loyalty["issued_total"], loyalty["redeemed_total"]) == (7550, 400)
    assert [t["label"] for t in loyalty["tiers"]][-1] == "No tier yet"


def test_admin_index_renders_every_panel(ledger, admin_client, monkeypatch):
    monkeypatch.setattr(settings, "UNFOLD", {**getattr(settings, "UNFOLD", {}), "DASHBOARD_CALLBACK": FULL},
                        raising=False)
    response = admin_client.get("/admin/")
    assert response.status_code == 200
    page = response.content.decode()
    charts = [json.loads(html_lib.unescape(v)) for v in re.findall(r'data-value="([^"]*)"', page)]
    # adds by channel and net growth always; no campaign or pool yet (their cards say so); tiers; points.
    assert len(charts) == 4
    tiers_chart, points_chart = charts[2], charts[3]
    assert tiers_chart["labels"] == ["Member", "Silver", "Gold", "Platinum", "No tier yet"]
    assert tiers_chart["datasets"][0]["data"] == [1, 1, 1, 0, 1]
    assert points_chart["labels"][-1] == "03-12" and len(points_chart["labels"]) == 30
    assert points_chart["datasets"][0]["data"][-3:] == [300, 7200, 50]
    assert points_chart["datasets"][1]["data"][-1] == 400
    assert "No campaign has been launched yet." in page and "Tier distribution" in page



def test_beat_snapshot_is_what_the_page_reads_and_today_stays_live(ledger, make_contact, monkeypatch):
    live = loyalty_data()
    assert live["tiers_counted_at"] is None  # before beat's first run: counted live
    assert refresh_dashboard_rollups() == {"tiers": 5, "point_days": 2}  # the beat task, run in-process
    snap = loyalty_data()
    assert snap["tiers_counted_at"] is not None
    assert {k: v for k, v in snap.items() if k != "tiers_counted_at"} == {
        k: v for k, v in live.items() if k != "tiers_counted_at"}
    assert "loyalty-dashboard-rollups" in settings.CELERY_BEAT_SCHEDULE
    # A new card shows at the next beat; a credit today shows at once; a late row on a closed day at the next beat.
    card = card_get_or_create(make_contact().pk)
    points_credit(card_id=card.id, delta=25, kind="earn", idempotency_key="dash-today")
    at(monkeypatch, datetime(2026, 3, 11, 23, 0, tzinfo=SHANGHAI))
    points_credit(card_id=card.id, delta=5, kind="earn", idempotency_key="dash-late")
    at(monkeypatch, NOW)
    data = loyalty_data()
    assert data["cards"] == 4 and data["issued_total"] == 7550 + 25
    refresh_dashboard_rollups()
    data = loyalty_data()
    assert data["cards"] == 5 and data["issued_total"] == 7550 + 25 + 5
