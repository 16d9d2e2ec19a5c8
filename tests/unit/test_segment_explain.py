"""Explanations name the clauses that keep a profile out, with what the profile has."""

from __future__ import annotations

from shopkeeper.segments.explain import blocking, explain
from shopkeeper.segments.lang.evaluate import EventFact, ProfileFacts
from shopkeeper.segments.lang.parser import parse

NOW = 1_795_435_200_000
DAY = 86_400_000


def facts() -> ProfileFacts:
    return ProfileFacts(
        profile_id=1,
        known=True,
        traits={"plan": "free"},
        computed={"orders_count": 2},
        events=[EventFact("Product Added", NOW - DAY, {"product_id": "p"})],
    )


def reasons(text: str, segments: dict[str, str] | None = None) -> list[tuple[str, str | None]]:
    named = {k: parse(v) for k, v in (segments or {}).items()}
    tree = explain(parse(text), named, facts(), NOW)
    return [(e.text, e.seen) for e in blocking(tree)]


def test_the_failing_parts_of_an_and_are_named_with_their_values() -> None:
    assert reasons('orders_count >= 1 and plan = "gold" and orders_count >= 5') == [
        ('plan = "gold"', 'plan is "free"'),
        ("orders_count >= 5", "orders_count is 2"),
    ]


def test_a_not_that_fails_is_itself_the_reason() -> None:
    assert reasons('orders_count >= 1 and not did "Product Added" within 7 days') == [
        ('not did "Product Added" within 7 days', "1 matching event"),
    ]


def test_nested_segments_are_opened_and_a_holding_condition_has_no_reasons() -> None:
    assert reasons('in segment "paid"', {"paid": 'plan = "paid"'}) == [
        ('plan = "paid"', 'plan is "free"'),
    ]
    assert reasons('orders_count >= 1 or plan = "gold"') == []


def test_an_aggregate_says_what_it_came_to() -> None:
    person = ProfileFacts(
        profile_id=2,
        known=True,
        traits={},
        computed={},
        events=[
            EventFact("Order Completed", NOW - DAY, {"revenue": 30}),
            EventFact("Order Completed", NOW - 2 * DAY, {"revenue": 15.5}),
            EventFact("Order Completed", NOW - 200 * DAY, {"revenue": 500}),
        ],
    )
    tree = explain(
        parse('total revenue of "Order Completed" within 90 days >= 100'), {}, person, NOW
    )
    assert [(e.text, e.seen) for e in blocking(tree)] == [
        (
            'total revenue of "Order Completed" within 90 days >= 100',
            "total revenue is 45.5 over 2 matching events",
        )
    ]
