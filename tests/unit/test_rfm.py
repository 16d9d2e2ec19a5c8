"""RFM scores: the quintile rule, its tie-break, small populations, and the R x F map."""

from __future__ import annotations

import math
from collections import Counter
from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shopkeeper.segments.scores.rfm import (
    SEGMENT_NAMES,
    SEGMENT_RULES,
    quintile_scores,
    score_customers,
    segment_for,
)


def test_every_cell_of_the_grid_has_exactly_one_named_segment() -> None:
    for r in range(1, 6):
        for f in range(1, 6):
            covering = [rule.name for rule in SEGMENT_RULES if rule.covers(r, f)]
            assert len(covering) == 1, (r, f, covering)
            assert segment_for(r, f) == covering[0]


def test_the_map_is_the_common_one() -> None:
    assert SEGMENT_NAMES == (
        "Champions",
        "Loyal Customers",
        "Potential Loyalists",
        "New Customers",
        "Promising",
        "Need Attention",
        "About to Sleep",
        "At Risk",
        "Can't Lose",
        "Hibernating",
    )
    rows = {r: [segment_for(r, f) for f in range(1, 6)] for r in range(5, 0, -1)}  # F1..F5 per R
    assert rows[5] == [
        "New Customers",
        "Potential Loyalists",
        "Potential Loyalists",
        "Champions",
        "Champions",
    ]
    assert rows[4] == [
        "Promising",
        "Potential Loyalists",
        "Potential Loyalists",
        "Loyal Customers",
        "Loyal Customers",
    ]
    assert rows[3] == [
        "About to Sleep",
        "About to Sleep",
        "Need Attention",
        "Loyal Customers",
        "Loyal Customers",
    ]
    for r in (1, 2):
        assert rows[r] == ["Hibernating", "Hibernating", "At Risk", "At Risk", "Can't Lose"]


@pytest.mark.parametrize(("r", "f"), [(0, 3), (6, 1), (3, 0), (3, 6)])
def test_scores_outside_one_to_five_are_refused(r: int, f: int) -> None:
    with pytest.raises(ValueError, match="1-5"):
        segment_for(r, f)


@pytest.mark.parametrize(
    ("n", "expected"),
    [
        (1, [3]),
        (2, [2, 4]),
        (3, [1, 3, 5]),
        (4, [1, 2, 4, 5]),
        (5, [1, 2, 3, 4, 5]),
        (7, [1, 2, 2, 3, 4, 4, 5]),
        (10, [1, 1, 2, 2, 3, 3, 4, 4, 5, 5]),
        (12, [1, 1, 2, 2, 2, 3, 3, 4, 4, 4, 5, 5]),
    ],
)
def test_ranks_split_by_the_midpoint_rule(n: int, expected: list[int]) -> None:
    assert list(quintile_scores(list(range(n)))) == expected
    # Given in reverse, the same values get the same scores.
    assert list(quintile_scores(list(range(n))[::-1])) == expected[::-1]


def test_ties_are_broken_by_position_so_groups_stay_even() -> None:
    # Six one-order customers and four with more: the one-order customers fill the low
    # scores in the order given (profile id order), two per score.
    orders = [1, 1, 4, 1, 1, 2, 1, 3, 1, 5]
    scores = list(quintile_scores(orders))
    assert scores == [1, 1, 5, 2, 2, 4, 3, 4, 3, 5]
    assert Counter(scores) == dict.fromkeys(range(1, 6), 2)


def test_recency_ranks_the_last_order_time_so_recent_buyers_get_five() -> None:
    last = [
        "2026-01-01T00:00:00.000Z",
        "2026-11-20T00:00:00.000Z",
        "",  # unknown: the oldest
        "2026-06-01T00:00:00.000Z",
        "2026-11-22T10:00:00.000Z",
    ]
    r, f, m = score_customers(last, [1, 1, 1, 1, 1], [5.0, 1.0, 4.0, 2.0, 3.0])
    assert list(r) == [2, 4, 1, 3, 5]
    assert list(f) == [1, 2, 3, 4, 5]  # all tied: profile id order
    assert list(m) == [5, 1, 4, 2, 3]


def test_columns_of_different_lengths_are_refused() -> None:
    with pytest.raises(ValueError, match="one value per customer"):
        score_customers(["x"], [1, 2], [1.0])


values = st.lists(st.integers(0, 8), min_size=1, max_size=300)


@given(values)
def test_group_sizes_differ_by_at_most_one(population: list[int]) -> None:
    counts = Counter(quintile_scores(population))
    sizes = [counts.get(score, 0) for score in range(1, 6)]
    assert max(sizes) - min(sizes) <= 1
    assert sum(sizes) == len(population)


@given(values)
def test_scores_are_monotone_in_the_value_and_in_position_among_ties(
    population: list[int],
) -> None:
    scores = quintile_scores(population)
    assert all(1 <= s <= 5 for s in scores)
    for i in range(len(population)):
        for j in range(len(population)):
            if population[i] < population[j] or (population[i] == population[j] and i < j):
                assert scores[i] <= scores[j]


@given(st.lists(st.floats(0, 1000), min_size=1, max_size=200))
def test_scores_follow_the_stated_rule(population: list[float]) -> None:
    """The rule of the module docstring, written out with exact fractions: order by
    (value, profile id); position i of n gets 1 + floor(5 * (i + 1/2) / n)."""
    n = len(population)
    order = sorted(range(n), key=lambda pid: (population[pid], pid))
    expected = [0] * n
    for i, pid in enumerate(order):
        expected[pid] = 1 + math.floor(Fraction(5) * (i + Fraction(1, 2)) / n)
    assert list(quintile_scores(population)) == expected
