"""Why a profile is or is not in a segment: the condition's tree evaluated clause by
clause on the profile's facts, each clause with the value it saw, and the clauses that
keep the profile out. Pure."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from shopkeeper.segments.lang import ast
from shopkeeper.segments.lang.evaluate import (
    MISSING,
    ProfileFacts,
    compile_predicate,
    dig,
    field_value,
    inline_segment,
    is_number,
    matching_events,
    node_field,
)
from shopkeeper.segments.lang.printer import to_text
from shopkeeper.timeutil import ms_to_iso


@dataclass
class Explanation:
    text: str
    holds: bool
    # What the profile has there, in words ("orders_count is 0", "2 matching events").
    seen: str | None = None
    children: list[Explanation] = field(default_factory=list)
    # A `not`: when it fails, the clause itself (its inner part holds) is the reason.
    negation: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {
            "clause": self.text,
            "holds": self.holds,
            "seen": self.seen,
            "children": [child.to_dict() for child in self.children],
        }


def explain(
    node: ast.Condition,
    segments: Mapping[str, ast.Condition],
    facts: ProfileFacts,
    now_ms: int,
    stack: tuple[str, ...] = (),
) -> Explanation:
    text = to_text(node)
    if isinstance(node, (ast.And, ast.Or)):
        children = [explain(item, segments, facts, now_ms, stack) for item in node.items]
        combine = all if isinstance(node, ast.And) else any
        return Explanation(text, combine(c.holds for c in children), None, children)
    if isinstance(node, ast.Not):
        inner = explain(node.item, segments, facts, now_ms, stack)
        return Explanation(text, not inner.holds, inner.seen, [inner], negation=True)
    if isinstance(node, ast.InSegment):
        inner_node, inner_stack = inline_segment(node, segments, stack)
        inner = explain(inner_node, segments, facts, now_ms, inner_stack)
        return Explanation(text, inner.holds, None, [inner])
    holds = compile_predicate(node, segments)(facts, now_ms)
    return Explanation(text, holds, _seen(node, facts, now_ms))


def blocking(explanation: Explanation) -> list[Explanation]:
    """The innermost clauses that fail and make the whole fail (empty when it holds)."""
    if explanation.holds:
        return []
    if not explanation.children or explanation.negation:
        return [explanation]
    out: list[Explanation] = []
    for child in explanation.children:
        out += blocking(child)
    return out or [explanation]


def _shown(value: Any) -> str:
    if value is MISSING or value is None:
        return "not set"
    if isinstance(value, bool):
        return "true" if value else "false"
    if is_number(value):
        number = float(value)
        return str(int(number)) if number.is_integer() and math.isfinite(number) else f"{number:g}"
    if isinstance(value, str):
        return f'"{value}"'
    if isinstance(value, list):
        return f"a list of {len(value)}"
    return "an object"


def _seen(node: ast.Condition, facts: ProfileFacts, now_ms: int) -> str | None:
    if isinstance(node, ast.Did):
        found = matching_events(node, facts, now_ms)
        if node.first:
            if not found:
                return "never"
            return f"first one at {ms_to_iso(min(e.timestamp for e in found))}"
        return f"{len(found)} matching event{'s' if len(found) != 1 else ''}"
    if isinstance(node, ast.Aggregate):
        found = matching_events(node, facts, now_ms)
        if node.property.kind != "property":
            return f"{len(found)} matching event{'s' if len(found) != 1 else ''}"
        path = node.property.path
        values = [float(v) for e in found if is_number(v := dig(e.properties, path))]
        if not values:
            return "no matching event with a number there"
        result = {
            "total": math.fsum(values),
            "average": math.fsum(values) / len(values),
            "minimum": min(values),
            "maximum": max(values),
        }[node.func]
        events = f"{len(values)} matching event{'s' if len(values) != 1 else ''}"
        return f"{node.func} {node.property.name} is {_shown(result)} over {events}"
    try:
        fld = node_field(node)
    except TypeError:
        return None
    if fld.kind in ("property", "context", "product"):
        return None
    return f"{fld.name} is {_shown(field_value(fld, facts, now_ms))}"
