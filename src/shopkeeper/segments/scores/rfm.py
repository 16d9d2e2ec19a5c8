"""RFM scores: recency, frequency and monetary quintiles, and the named segments of the
common R x F map. Pure: no database, no HTTP, no clock.

Quintiles (the rule, stated exactly). The n customers are ordered by the value, ascending,
and among equal values by profile id, ascending (the caller passes values in profile id
order; the sort is stable). The customer at position i (0-based) gets

    score = 1 + floor(5 * (i + 1/2) / n)        (computed in integers: 1 + (10i + 5) // 2n)

that is, the quintile its mid-rank percentile (i + 1/2) / n falls in. Each of the five
scores then holds floor(n/5) or ceil(n/5) customers, so the groups differ in size by at
most one whatever the ties (ties are broken by rank, like ranking with method "first"):
with 1,000 one-order customers out of 1,200, frequency 1 to 4 hold 240 customers each, all
with one order, split by profile id. A higher value never gets a lower score.

Recency is reversed: the value ranked is the time of the last order, so the most recent
buyers get 5 and those who have not bought for longest get 1.

Fewer than five customers: the same rule spreads them symmetrically over 1-5 instead of
crowding them into the low scores: one customer gets 3, two get 2 and 4, three get 1, 3
and 5, four get 1, 2, 4 and 5. (Relative scores among so few say little; the midpoint
keeps a lone customer neutral rather than labelling them "Hibernating".)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

SCORES = (1, 2, 3, 4, 5)


@dataclass(frozen=True, slots=True)
class SegmentRule:
    """A named region of the R x F grid: recency scores lo..hi, frequency scores lo..hi."""

    name: str
    recency: tuple[int, int]
    frequency: tuple[int, int]
    description: str

    def covers(self, recency: int, frequency: int) -> bool:
        return (
            self.recency[0] <= recency <= self.recency[1]
            and self.frequency[0] <= frequency <= self.frequency[1]
        )


# The common R x F map, best first. Monetary is scored and stored but does not name a
# segment (the usual map; spend is a column of its own for segments that want it).
SEGMENT_RULES: tuple[SegmentRule, ...] = (
    SegmentRule("Champions", (5, 5), (4, 5), "Bought recently, buy often"),
    SegmentRule("Loyal Customers", (3, 4), (4, 5), "Buy often; not the very latest buyers"),
    SegmentRule(
        "Potential Loyalists", (4, 5), (2, 3), "Recent customers with a few orders already"
    ),
    SegmentRule("New Customers", (5, 5), (1, 1), "Bought very recently, for the first time"),
    SegmentRule("Promising", (4, 4), (1, 1), "Recent first-time buyers"),
    SegmentRule("Need Attention", (3, 3), (3, 3), "Average recency and frequency"),
    SegmentRule("About to Sleep", (3, 3), (1, 2), "Few orders, and the last is a while ago"),
    SegmentRule("At Risk", (1, 2), (3, 4), "Used to buy often, not for a long time"),
    SegmentRule("Can't Lose", (1, 2), (5, 5), "Among the most frequent buyers, gone quiet"),
    SegmentRule("Hibernating", (1, 2), (1, 2), "Few orders, long ago"),
)
SEGMENT_NAMES: tuple[str, ...] = tuple(rule.name for rule in SEGMENT_RULES)


def _build_map() -> dict[tuple[int, int], str]:
    cells: dict[tuple[int, int], str] = {}
    for r in SCORES:
        for f in SCORES:
            names = [rule.name for rule in SEGMENT_RULES if rule.covers(r, f)]
            if len(names) != 1:  # pragma: no cover - the map above is checked by a test
                raise AssertionError(f"cell R{r} F{f} is covered by {names}")
            cells[(r, f)] = names[0]
    return cells


_SEGMENT_OF_CELL = _build_map()


def segment_for(recency: int, frequency: int) -> str:
    """The named segment of a (recency, frequency) cell; both scores 1-5."""
    try:
        return _SEGMENT_OF_CELL[(recency, frequency)]
    except KeyError:
        raise ValueError(f"RFM scores are 1-5, not R{recency} F{frequency}") from None


def quintile_scores(values: Sequence[Any]) -> bytearray:
    """Scores 1-5 for `values` (any mutually comparable values), by the rule in the module
    docstring; equal values rank in sequence order (pass them ordered by profile id).
    Returns one score per value, in the same order."""
    n = len(values)
    scores = bytearray(n)
    # Stable: among equal values the earlier one ranks lower.
    order = sorted(range(n), key=values.__getitem__)
    double_n = 2 * n
    for rank, index in enumerate(order):
        scores[index] = 1 + (10 * rank + 5) // double_n
    return scores


def score_customers(
    last_order_at: Sequence[str], orders: Sequence[int], revenue: Sequence[float]
) -> tuple[bytearray, bytearray, bytearray]:
    """Recency, frequency and monetary scores of a population given in profile id order:
    the time of each customer's last order (fixed-width ISO-8601 UTC text, which orders
    like time; "" when unknown ranks as the oldest), their order count and their revenue.
    Three columns of scores (bytes, to keep a million customers small), in input order."""
    if not len(last_order_at) == len(orders) == len(revenue):
        raise ValueError("the three sequences must have one value per customer")
    return quintile_scores(last_order_at), quintile_scores(orders), quintile_scores(revenue)
