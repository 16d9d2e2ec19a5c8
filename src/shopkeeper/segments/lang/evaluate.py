"""Syntax tree -> a Python predicate over one profile's facts: how real-time membership
decides for the profile whose events were just applied. Pure; agrees with to_sql (a
hypothesis test runs both over random profiles, events and conditions on both
databases).

Semantics (shared with to_sql): an atom is false when its field is missing or holds a
value of another type than it is compared with; numbers compare as 64-bit floats; texts
compare by code point, case-sensitively; times are ISO-8601 texts compared as text.
"""

from __future__ import annotations

import datetime as dt
import math
import operator
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from shopkeeper.segments.lang import ast
from shopkeeper.segments.lang.derived import FUNNEL_DEFAULT, funnel_conditions
from shopkeeper.timeutil import ms_to_iso

MISSING: Any = object()


@dataclass(frozen=True)
class EventFact:
    """One applied track event of the profile."""

    name: str
    timestamp: int
    properties: Mapping[str, Any]
    context: Mapping[str, Any] = field(default_factory=dict)


@dataclass
class ProfileFacts:
    profile_id: int
    known: bool
    traits: Mapping[str, Any]
    computed: Mapping[str, Any]
    # (channel, purpose) -> granted; channel "*" applies to every channel.
    consents: Mapping[tuple[str, str], bool] = field(default_factory=dict)
    scores: Mapping[str, Any] = field(default_factory=dict)
    # Only the events the conditions ask about need to be here.
    events: Sequence[EventFact] = ()
    # product id -> catalog row (id, sku, name, category, brand, currency, price...).
    products: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)


Predicate = Callable[[ProfileFacts, int], bool]
_EventPredicate = Callable[[EventFact, ProfileFacts, int], bool]


class UnknownSegment(ValueError):
    def __init__(self, key: str, cycle: bool = False) -> None:
        message = (
            f'Segment "{key}" refers back to itself through "in segment"'
            if cycle
            else f'There is no segment "{key}"'
        )
        super().__init__(message)
        self.key = key
        self.cycle = cycle


def inline_segment(
    node: ast.InSegment, segments: Mapping[str, ast.Condition], stack: tuple[str, ...]
) -> tuple[ast.Condition, tuple[str, ...]]:
    """The condition `in segment "key"` stands for, and the segments now being inlined;
    raises UnknownSegment for a missing segment or one that refers back to itself."""
    if node.key in stack:
        raise UnknownSegment(node.key, cycle=True)
    if node.key not in segments:
        raise UnknownSegment(node.key)
    return segments[node.key], (*stack, node.key)


def is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def dig(root: Any, path: Sequence[str]) -> Any:
    value = root
    for part in path:
        if not isinstance(value, Mapping) or part not in value:
            return MISSING
        value = value[part]
    return value


_OPS: dict[str, Callable[[Any, Any], bool]] = {
    "=": operator.eq, "!=": operator.ne, ">": operator.gt, ">=": operator.ge,
    "<": operator.lt, "<=": operator.le,
}  # fmt: skip


def compare(value: Any, op: str, literal: ast.Value) -> bool:
    if isinstance(literal, bool):
        return isinstance(value, bool) and _OPS[op](value, literal)
    if isinstance(literal, (int, float)):
        return is_number(value) and _OPS[op](float(value), float(literal))
    return isinstance(value, str) and _OPS[op](value, literal)


def anniversary_days(now_ms: int, days: int) -> frozenset[str]:
    """The MM-DD of today and the next `days` days (UTC); 02-29 counts as 02-28 in
    years without one, so that leap-day birthdays are not skipped."""
    today = dt.datetime.fromtimestamp(now_ms / 1000, dt.UTC).date()
    out = set()
    for n in range(days + 1):
        day = today + dt.timedelta(days=n)
        out.add(day.strftime("%m-%d"))
        if day.month == 2 and day.day == 28 and not _is_leap(day.year):
            out.add("02-29")
    return frozenset(out)


def _is_leap(year: int) -> bool:
    return year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)


def product_id(event: EventFact) -> str | None:
    value = event.properties.get("product_id")
    if isinstance(value, str):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return None


def compile_predicate(
    node: ast.Condition, segments: Mapping[str, ast.Condition] | None = None
) -> Predicate:
    """A predicate(facts, now_ms). `segments`: the conditions `in segment` may name
    (inlined, so membership is always current); raises UnknownSegment."""
    return _Compiler(segments or {}).condition(node, ())


class _Compiler:
    def __init__(self, segments: Mapping[str, ast.Condition]) -> None:
        self.segments = segments

    def condition(self, node: ast.Condition, stack: tuple[str, ...]) -> Predicate:
        if isinstance(node, ast.And):
            parts = [self.condition(item, stack) for item in node.items]
            return lambda f, now: all(part(f, now) for part in parts)
        if isinstance(node, ast.Or):
            parts = [self.condition(item, stack) for item in node.items]
            return lambda f, now: any(part(f, now) for part in parts)
        if isinstance(node, ast.Not):
            inner = self.condition(node.item, stack)
            return lambda f, now: not inner(f, now)
        if isinstance(node, ast.InSegment):
            return self.condition(*inline_segment(node, self.segments, stack))
        if isinstance(node, ast.Did):
            return self.did(node)
        if isinstance(node, ast.Aggregate):
            return self.aggregate(node)
        get = self.profile_value(node_field(node))
        test = value_test(node)
        return lambda f, now: test(get(f, now), now)

    def profile_value(self, fld: ast.Field) -> Callable[[ProfileFacts, int], Any]:
        kind, path = fld.kind, fld.path
        if kind == "computed":
            return lambda f, now: dig(f.computed, path)
        if kind == "trait":
            return lambda f, now: dig(f.traits, path)
        if kind == "known":
            return lambda f, now: f.known
        if kind == "score":
            name = path[0]
            return lambda f, now: MISSING if f.scores.get(name) is None else f.scores[name]
        if kind == "consent":
            channel, purpose = path

            def consent(f: ProfileFacts, now: int) -> Any:
                granted = f.consents.get((channel, purpose))
                if granted is None:
                    granted = f.consents.get(("*", purpose))
                return MISSING if granted is None else granted

            return consent
        if kind == "derived":
            stages = [(stage, self.condition(cond, ())) for stage, cond in funnel_conditions()]

            def funnel(f: ProfileFacts, now: int) -> Any:
                return next((s for s, test in stages if test(f, now)), FUNNEL_DEFAULT)

            return funnel
        raise ValueError(f"{fld.name} cannot be used outside an event's where")

    def event_filter(self, node: ast.Condition) -> _EventPredicate:
        if isinstance(node, ast.And):
            parts = [self.event_filter(item) for item in node.items]
            return lambda e, f, now: all(part(e, f, now) for part in parts)
        if isinstance(node, ast.Or):
            parts = [self.event_filter(item) for item in node.items]
            return lambda e, f, now: any(part(e, f, now) for part in parts)
        if isinstance(node, ast.Not):
            inner = self.event_filter(node.item)
            return lambda e, f, now: not inner(e, f, now)
        get = self.event_value(node_field(node))
        test = value_test(node)
        return lambda e, f, now: test(get(e, f), now)

    def event_value(self, fld: ast.Field) -> Callable[[EventFact, ProfileFacts], Any]:
        path = fld.path
        if fld.kind == "property":
            return lambda e, f: dig(e.properties, path)
        if fld.kind == "context":
            return lambda e, f: dig(e.context, path)
        if fld.kind == "product":
            column = path[0]

            def product(e: EventFact, f: ProfileFacts) -> Any:
                pid = product_id(e)
                row = f.products.get(pid) if pid is not None else None
                if row is None or row.get(column) is None:
                    return MISSING
                return row[column]

            return product
        raise ValueError(f"{fld.name} cannot be used in an event's where")

    def matching(
        self, event: str, window: ast.Duration | None, where: ast.Condition | None
    ) -> Callable[[ProfileFacts, int], list[EventFact]]:
        keep = self.event_filter(where) if where is not None else None
        span = window.ms if window is not None else None

        def select(f: ProfileFacts, now: int) -> list[EventFact]:
            since = now - span if span is not None else None
            return [
                e
                for e in f.events
                if e.name == event
                and (since is None or e.timestamp >= since)
                and (keep is None or keep(e, f, now))
            ]

        return select

    def did(self, node: ast.Did) -> Predicate:
        if node.first:
            assert node.window is not None
            select = self.matching(node.event, None, node.where)
            span = node.window.ms

            def first(f: ProfileFacts, now: int) -> bool:
                times = [e.timestamp for e in select(f, now)]
                return bool(times) and min(times) >= now - span

            return first
        select = self.matching(node.event, node.window, node.where)
        op, times = _OPS[node.op], node.times
        return lambda f, now: op(len(select(f, now)), times)

    def aggregate(self, node: ast.Aggregate) -> Predicate:
        select = self.matching(node.event, node.window, node.where)
        get = self.event_value(node.property)
        op, func = _OPS[node.op], node.func

        def test(f: ProfileFacts, now: int) -> bool:
            values = [float(v) for e in select(f, now) if is_number(v := get(e, f))]
            if not values:
                return False
            if func == "total":
                result = math.fsum(values)
            elif func == "average":
                result = math.fsum(values) / len(values)
            elif func == "minimum":
                result = min(values)
            else:
                result = max(values)
            return op(result, node.value)

        return test


def node_field(node: ast.Condition) -> ast.Field:
    if isinstance(
        node,
        (ast.Compare, ast.OneOf, ast.Text, ast.Presence, ast.Truthy, ast.TimeWindow,
         ast.Anniversary),
    ):  # fmt: skip
        return node.field
    raise TypeError(f"not a condition on a field: {node!r}")


def value_test(node: ast.Condition) -> Callable[[Any, int], bool]:
    """The test an atom applies to its field's value (MISSING when absent)."""
    if isinstance(node, ast.Compare):
        op, literal = node.op, node.value
        return lambda v, now: compare(v, op, literal)
    if isinstance(node, ast.OneOf):
        values = node.values
        return lambda v, now: any(compare(v, "=", x) for x in values)
    if isinstance(node, ast.Text):
        literal = node.value
        if node.op == "starts with":
            return lambda v, now: isinstance(v, str) and v.startswith(str(literal))

        def contains(v: Any, now: int) -> bool:
            if isinstance(v, str):
                return isinstance(literal, str) and literal in v
            if isinstance(v, list):
                return any(compare(item, "=", literal) for item in v)
            return False

        return contains
    if isinstance(node, ast.Presence):
        if node.test == "set":
            return lambda v, now: v is not MISSING and v is not None
        return lambda v, now: v is MISSING or v is None or v in ("", [], {})
    if isinstance(node, ast.Truthy):
        return lambda v, now: v is True
    if isinstance(node, ast.TimeWindow):
        span, within = node.duration.ms, node.within

        def window(v: Any, now: int) -> bool:
            if not isinstance(v, str):
                return False
            bound = ms_to_iso(now - span)
            return v >= bound if within else v < bound

        return window
    if isinstance(node, ast.Anniversary):
        days = node.days

        def anniversary(v: Any, now: int) -> bool:
            return (
                isinstance(v, str)
                and len(v) >= 10
                and v[4] == "-"
                and v[7] == "-"
                and v[5:10] in anniversary_days(now, days)
            )

        return anniversary
    raise TypeError(f"not a condition on a field: {node!r}")


# -- for explanations (which clause keeps a profile out) ---------------------------------


def field_value(fld: ast.Field, facts: ProfileFacts, now_ms: int) -> Any:
    """The profile's value of a profile-scope field (MISSING when absent)."""
    return _Compiler({}).profile_value(fld)(facts, now_ms)


def matching_events(
    node: ast.Did | ast.Aggregate, facts: ProfileFacts, now_ms: int
) -> list[EventFact]:
    """The events a `did` or an aggregate counts (a `did first` counts all history)."""
    window = None if isinstance(node, ast.Did) and node.first else node.window
    return _Compiler({}).matching(node.event, window, node.where)(facts, now_ms)
