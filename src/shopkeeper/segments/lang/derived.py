"""Fields defined by conditions of the language itself, so that every backend computes
them the same way: the funnel stage is the first stage whose condition holds."""

from __future__ import annotations

from functools import cache

from shopkeeper.segments.lang import ast

LAPSED_AFTER_DAYS = 180

FUNNEL_STAGES: tuple[tuple[str, str], ...] = (
    ("repeat customer", f"orders_count >= 2 and last_order_at within {LAPSED_AFTER_DAYS} days"),
    ("customer", f"orders_count >= 1 and last_order_at within {LAPSED_AFTER_DAYS} days"),
    ("lapsed", "orders_count >= 1"),
    ("checkout", "checkout_started_at is set"),
    ("cart", "cart_items_count > 0"),
    ("engaged", "known or sessions_count >= 2 or product_views_count >= 1"),
)
FUNNEL_DEFAULT = "visitor"
FUNNEL_ORDER = ("visitor", "engaged", "cart", "checkout", "customer", "repeat customer", "lapsed")


@cache
def funnel_conditions() -> tuple[tuple[str, ast.Condition], ...]:
    from shopkeeper.segments.lang.parser import parse

    return tuple((stage, parse(text)) for stage, text in FUNNEL_STAGES)
