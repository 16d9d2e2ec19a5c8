"""Lead score rules and arithmetic: matching, validation, decay, out-of-order events, the
cap and merges."""

from __future__ import annotations

import math
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shopkeeper.profiles.model import EventView
from shopkeeper.segments.scores.lead import (
    DAY_MS,
    DEFAULT_RULES,
    Decay,
    LeadScore,
    ProfileRule,
    RuleError,
    add_points,
    combine,
    event_name,
    make_event_rule,
    points_earned,
    rule_from_row,
    score_at,
)
from shopkeeper.timeutil import ms_to_iso, parse_iso_ms

T0 = parse_iso_ms("2026-11-01T00:00:00Z")
MONTH = 30 * DAY_MS
DECAY = Decay.of(30, 100)


def ev(
    name: str | None, props: dict[str, Any] | None = None, at: int = T0, type_: str = "track"
) -> EventView:
    return EventView(
        type=type_,
        event=name,
        timestamp_ms=at,
        timestamp=ms_to_iso(at),
        message_id="m",
        properties=props or {},
    )


def test_page_and_screen_messages_count_as_page_and_screen_viewed() -> None:
    assert event_name(ev("Home", type_="page")) == "Page Viewed"
    assert event_name(ev("Cart", type_="screen")) == "Screen Viewed"
    assert event_name(ev("Product Viewed")) == "Product Viewed"
    assert event_name(ev(None, type_="identify")) is None
    pricing = make_event_rule("Pricing page", "Page Viewed", {"name": "Pricing"}, 4)
    assert pricing.matches(ev("Pricing", type_="page"))
    assert not pricing.matches(ev("Home", type_="page"))
    # A track event literally named Page Viewed is one too.
    assert pricing.matches(ev("Page Viewed", {"name": "Pricing"}))


def test_property_filters() -> None:
    sofas = make_event_rule("Sofa", "Product Viewed", {"category": "Sofas"}, 5)
    assert sofas.matches(ev("Product Viewed", {"category": "Sofas"}))
    assert not sofas.matches(ev("Product Viewed", {"category": "sofas"}))  # exact text
    assert not sofas.matches(ev("Product Viewed", {}))
    assert not sofas.matches(ev("Product Added", {"category": "Sofas"}))

    chosen = make_event_rule("Chosen", "Product Viewed", {"product_id": ["p1", "p2", 7]}, 3)
    assert chosen.matches(ev("Product Viewed", {"product_id": "p2"}))
    assert chosen.matches(ev("Product Viewed", {"product_id": "7"}))  # number as text
    assert not chosen.matches(ev("Product Viewed", {"product_id": "p3"}))

    numeric = make_event_rule("Id", "Product Viewed", {"product_id": "42"}, 1)
    assert numeric.matches(ev("Product Viewed", {"product_id": 42}))
    assert numeric.matches(ev("Product Viewed", {"product_id": 42.0}))
    assert not numeric.matches(ev("Product Viewed", {"product_id": True}))

    flag = make_event_rule("Flag", "Signed Up", {"newsletter": True}, 1)
    assert flag.matches(ev("Signed Up", {"newsletter": True}))
    assert not flag.matches(ev("Signed Up", {"newsletter": 1}))

    nested = make_event_rule("Nested", "Order Completed", {"products.brand": "Lux"}, 8)
    order = {"products": [{"brand": "Nordlys"}, {"brand": "Lux"}]}
    assert nested.matches(ev("Order Completed", order))
    assert not nested.matches(ev("Order Completed", {"products": [{"brand": "Nordlys"}]}))
    deep = make_event_rule("Deep", "Email Opened", {"campaign.kind": "welcome"}, 1)
    assert deep.matches(ev("Email Opened", {"campaign": {"kind": "welcome"}}))

    both = make_event_rule("Both", "Product Viewed", {"category": "Sofas", "brand": "Lux"}, 1)
    assert both.matches(ev("Product Viewed", {"category": "Sofas", "brand": "Lux"}))
    assert not both.matches(ev("Product Viewed", {"category": "Sofas", "brand": "Other"}))


def test_an_event_matching_two_rules_earns_both() -> None:
    rules = [
        make_event_rule("Any view", "Product Viewed", None, 2),
        make_event_rule("Sofa view", "Product Viewed", {"category": "Sofas"}, 5),
    ]
    events = [
        ev("Product Viewed", {"category": "Sofas"}, T0),
        ev("Product Viewed", {"category": "Lamps"}, T0 + 1),
        ev(None, type_="identify"),
    ]
    assert points_earned(rules, events) == [(2.0, T0), (5.0, T0), (2.0, T0 + 1)]


@pytest.mark.parametrize(
    ("name", "event", "where", "points", "field", "message"),
    [
        ("", "Product Viewed", None, 1, "name", "name must be a text"),
        ("x" * 201, "Product Viewed", None, 1, "name", "name must be a text"),
        ("Rule", None, None, 1, "event", "event must be an event name"),
        ("Rule", "  ", None, 1, "event", "event must be an event name"),
        ("Rule", "Product Viewed", None, 0, "points", "non-zero"),
        ("Rule", "Product Viewed", None, 1001, "points", "between -1000 and 1000"),
        ("Rule", "Product Viewed", None, math.inf, "points", "non-zero"),
        ("Rule", "Product Viewed", None, math.nan, "points", "non-zero"),
        ("Rule", "Product Viewed", None, True, "points", "must be a number"),
        ("Rule", "Product Viewed", None, "5", "points", "must be a number"),
        ("Rule", "Product Viewed", ["category"], 1, "where", "must be an object"),
        ("Rule", "Product Viewed", {"category": []}, 1, "where.category", "at least one"),
        ("Rule", "Product Viewed", {"a..b": 1}, 1, "where", "dotted paths"),
        ("Rule", "Product Viewed", {"": 1}, 1, "where", "dotted paths"),
        ("Rule", "Product Viewed", {"c": {"x": 1}}, 1, "where.c", "texts, numbers"),
        ("Rule", "Product Viewed", {"c": None}, 1, "where.c", "texts, numbers"),
        ("Rule", "Product Viewed", {"c": [1, [2]]}, 1, "where.c", "texts, numbers"),
        ("Rule", "Product Viewed", {f"k{i}": 1 for i in range(21)}, 1, "where", "at most 20"),
    ],
)
def test_bad_rules_are_refused_naming_the_field(
    name: Any, event: Any, where: Any, points: Any, field: str, message: str
) -> None:
    with pytest.raises(RuleError, match=message) as caught:
        make_event_rule(name, event, where, points)
    assert caught.value.field == field


def test_a_rule_round_trips_through_its_stored_condition() -> None:
    rule = make_event_rule(
        " Chosen ", " Product Viewed ", {"product_id": ["p1"], "brand": "Lux"}, -2.5
    )
    assert (rule.name, rule.event, rule.points) == ("Chosen", "Product Viewed", -2.5)
    stored = rule.condition_json()
    assert stored == '{"product_id":["p1"],"brand":"Lux"}'
    again = rule_from_row(9, rule.name, rule.event, stored, rule.points)
    assert again.where() == {"product_id": ["p1"], "brand": "Lux"}
    assert again.id == 9
    assert make_event_rule("All", "Signed Up", None, 1).condition_json() is None
    with pytest.raises(RuleError, match="not JSON"):
        rule_from_row(1, "x", "Signed Up", "{nope", 1)


def test_default_rules_are_valid_event_rules() -> None:
    events = {rule.event for rule in DEFAULT_RULES}
    assert events == {
        "Page Viewed",
        "Product Viewed",
        "Product Added",
        "Email Opened",
        "Email Link Clicked",
        "Signed Up",
    }
    for rule in DEFAULT_RULES:
        again = make_event_rule(rule.name, rule.event, rule.where() or None, rule.points)
        assert again == rule


def test_points_halve_every_half_life() -> None:
    score = add_points(None, [(10.0, T0)], T0, DECAY)
    assert score == LeadScore(10.0, T0)
    assert score_at(score, T0 + MONTH, DECAY) == 5.0
    assert score_at(score, T0 + 3 * MONTH, DECAY) == 1.25
    later = add_points(score, [(5.0, T0 + MONTH)], T0 + MONTH, DECAY)
    assert later == LeadScore(10.0, T0 + MONTH)
    # Not moved backwards: a stored time after now stays the reference.
    assert add_points(later, [], T0, DECAY) == LeadScore(10.0, T0 + MONTH)


def test_a_late_event_adds_what_it_would_have_added_on_time() -> None:
    on_time = add_points(add_points(None, [(8.0, T0)], T0, DECAY), [(4.0, T0 + MONTH)],
                         T0 + MONTH, DECAY)  # fmt: skip
    late = add_points(add_points(None, [(4.0, T0 + MONTH)], T0 + MONTH, DECAY), [(8.0, T0)],
                      T0 + MONTH, DECAY)  # fmt: skip
    assert on_time == late == LeadScore(8.0, T0 + MONTH)


def test_an_event_from_the_future_counts_as_now() -> None:
    score = add_points(None, [(10.0, T0 + 5 * DAY_MS)], T0, DECAY)
    assert score == LeadScore(10.0, T0)


def test_points_above_the_cap_are_dropped_not_banked() -> None:
    capped = add_points(None, [(60.0, T0), (60.0, T0), (60.0, T0)], T0, DECAY)
    assert capped == LeadScore(100.0, T0)
    assert score_at(capped, T0 + MONTH, DECAY) == 50.0


def test_negative_points_never_take_the_score_below_zero() -> None:
    score = add_points(None, [(10.0, T0)], T0, DECAY)
    assert add_points(score, [(-4.0, T0)], T0, DECAY).score == 6.0
    assert add_points(score, [(-40.0, T0)], T0, DECAY).score == 0.0


def test_merged_scores_are_decayed_to_one_time_summed_and_capped() -> None:
    older = LeadScore(40.0, T0)
    newer = LeadScore(20.0, T0 + MONTH)
    assert combine(newer, older, T0 + MONTH, DECAY) == LeadScore(40.0, T0 + MONTH)
    assert combine(older, None, T0 + MONTH, DECAY) == older
    assert combine(None, older, T0 + 2 * MONTH, DECAY) == LeadScore(10.0, T0 + 2 * MONTH)
    assert combine(LeadScore(90.0, T0), LeadScore(90.0, T0), T0, DECAY) == LeadScore(100.0, T0)


def test_decay_settings_must_be_positive() -> None:
    with pytest.raises(ValueError, match="positive"):
        Decay.of(0, 100)
    with pytest.raises(ValueError, match="positive"):
        Decay.of(30, -1)


def test_profile_rule_calls_its_predicate_with_facts_and_time() -> None:
    seen: list[tuple[Any, int]] = []

    def predicate(facts: Any, now_ms: int) -> bool:
        seen.append((facts, now_ms))
        return bool(facts["ceo"])

    rule = ProfileRule("Decision maker", 20.0, predicate)
    assert rule.satisfied({"ceo": True}, T0)
    assert not rule.satisfied({"ceo": False}, T0 + 1)
    assert seen == [({"ceo": True}, T0), ({"ceo": False}, T0 + 1)]


events = st.lists(st.tuples(st.integers(1, 5).map(float), st.integers(0, 90 * DAY_MS)), max_size=40)


@given(events, st.randoms(use_true_random=False), st.integers(1, 6))
def test_below_the_cap_the_score_is_the_formula_whatever_the_arrival_order(
    earned: list[tuple[float, int]], rnd: Any, batches: int
) -> None:
    """Events arrive in any order, in batches applied at increasing times (each after
    the events it holds happened); the stored score, decayed to any later time, equals
    sum(points * 0.5 ** ((t - t_i) / half_life))."""
    decay = Decay.of(30, 10_000)  # never reached here
    arrival = [(p, T0 + at) for p, at in earned]
    rnd.shuffle(arrival)
    now = T0
    score: LeadScore | None = None
    size = max(1, math.ceil(len(arrival) / batches))
    for start in range(0, len(arrival), size):
        chunk = arrival[start : start + size]
        now = max([now, *(at for _, at in chunk)]) + rnd.randint(0, 40 * DAY_MS)
        score = add_points(score, chunk, now, decay)
    end = now + rnd.randint(0, 100 * DAY_MS)
    expected = sum(p * 0.5 ** ((end - at) / decay.half_life_ms) for p, at in arrival)
    got = 0.0 if score is None else score_at(score, end, decay)
    assert got == pytest.approx(expected, rel=1e-9, abs=1e-12)
