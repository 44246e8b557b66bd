"""The lucky split and pool validation: bounds, exact sums, field-named errors."""

from __future__ import annotations

import pytest

from crm.errors import ApplicationError
from crm.services.redpackets import lucky_split, redpacket_pool_validate
from tests.crm.campaigns.conftest import later


@pytest.mark.parametrize(
    ("budget", "count", "lo", "hi"),
    [(10_000, 10, 100, 20_000), (1000, 10, 100, 100), (200_000, 10, 100, 20_000), (12_345, 37, 100, 900),
     (5_000_00, 1000, 100, 20_000), (101, 1, 100, 200)],
)
def test_lucky_split_stays_in_bounds_and_sums_to_budget(budget, count, lo, hi):
    for _ in range(20):
        amounts = lucky_split(budget, count, lo, hi)
        assert len(amounts) == count
        assert sum(amounts) == budget
        assert all(lo <= a <= hi for a in amounts)


def test_lucky_split_is_random():
    splits = {tuple(lucky_split(10_000, 10, 100, 5_000)) for _ in range(10)}
    assert len(splits) > 1


def test_impossible_split_is_refused():
    with pytest.raises(ValueError):
        lucky_split(999, 10, 100, 200)


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"budget_fen": 999, "count": 10}, "budget_fen"),  # below count x 100
        ({"budget_fen": 300_000, "count": 10}, "budget_fen"),  # above count x 20000
        ({"min_fen": 50}, "min_fen"),
        ({"max_fen": 20_001}, "max_fen"),
        ({"min_fen": 500, "max_fen": 400}, "min_fen"),
        ({"count": 0}, "count"),
        ({"mode": "weird"}, "mode"),
        ({"mode": "fixed", "budget_fen": 1001, "count": 10}, "budget_fen"),
        ({"mode": "fixed", "budget_fen": 500, "count": 10}, "budget_fen"),  # 50 fen each
        ({"expires_at": later(minutes=-1)}, "expires_at"),
    ],
)
def test_pool_validation_names_the_field(kwargs, field):
    args = {"budget_fen": 10_000, "count": 10, "mode": "lucky", "min_fen": None, "max_fen": None,
            "expires_at": later(hours=1)}
    args.update(kwargs)
    with pytest.raises(ApplicationError) as err:
        redpacket_pool_validate(**args)
    assert err.value.field == field
    assert err.value.status_code == 400


@pytest.mark.django_db
def test_fixed_pool_uses_one_amount():
    assert redpacket_pool_validate(budget_fen=2000, count=10, mode="fixed", min_fen=None, max_fen=None,
                                   expires_at=later(hours=1)) == (200, 200)
