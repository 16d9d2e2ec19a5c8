"""The lead score: points for what a person does, decaying with a half-life, under a cap.
Pure: no database, no HTTP, no clock.

Rules. An event rule names an event and, optionally, filters on its properties
({"category": "Sofas"}, {"product_id": ["p1", "p2"]}); each applied event that matches
earns the rule's points. Page and screen messages count as the events "Page Viewed" and
"Screen Viewed" (their name is the property `name`). A profile rule (`ProfileRule`)
earns points when a profile comes to satisfy a condition on the profile itself; its
predicate comes from the segment language (see ProfileRule).

Score. At time t the score is min(cap, sum of points_i * 0.5 ** ((t - t_i) / half_life)).
It is stored as a pair (score, at) and moved forward incrementally:

    new = clamp(old * 0.5 ** ((T - old_at) / hl) + sum(points_i * 0.5 ** ((T - t_i) / hl)))

with T = max(now, old_at) and clamp to [0, cap].

Events out of order: an event's points decay from the event's own timestamp whenever it
arrives, so a late event adds exactly what it would have added on time, and the sum does
not depend on arrival order. Events stamped in the future (a wrong device clock) count
as happening at T: points never grow by decaying backwards.

The cap with decay: the cap is applied each time the score is stored, and points that
would lift it above the cap are dropped, not banked. So while the cap has never been
reached the stored score is exactly the formula above; once reached, it is the cap and
then decays from there as soon as the person goes quiet. Banking the excess would keep a
burst of activity (300 points under a cap of 100) at the cap for two half-lives after the
person stopped, hiding exactly the slowdown the score is meant to show, and the stored
value (what segments compare) would not be the score. Negative points are allowed (a
rule can subtract) and the score never goes below 0.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from shopkeeper.profiles.model import EventView

DAY_MS = 86_400_000
MAX_POINTS = 1000.0
MAX_FILTERS = 20
MAX_VALUES = 1000
# Scores below this fraction of the cap are stored as 0 by the refresh, so that dormant
# rows stop being rewritten.
NEGLIGIBLE = 1e-6

PAGE_EVENT = "Page Viewed"
SCREEN_EVENT = "Screen Viewed"

Scalar = str | int | float | bool
# (path parts, accepted values, whether they were written as a list)
Filters = tuple[tuple[tuple[str, ...], tuple[Scalar, ...], bool], ...]


class RuleError(ValueError):
    """A rule that cannot be used; `field` names what is wrong."""

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


def event_name(event: EventView) -> str | None:
    """The name rules match: the track event, "Page Viewed" or "Screen Viewed"."""
    if event.type == "track":
        return event.event
    if event.type == "page":
        return PAGE_EVENT
    if event.type == "screen":
        return SCREEN_EVENT
    return None


def _same(rule_value: Scalar, found: Any) -> bool:
    """Whether an event's value equals a rule's value. Booleans only equal booleans;
    numbers compare by value, and a number equals the same number written as text (shops
    send product ids both ways); texts compare exactly."""
    if isinstance(rule_value, bool) or isinstance(found, bool):
        return isinstance(rule_value, bool) and isinstance(found, bool) and rule_value is found
    if isinstance(found, int | float):
        if isinstance(rule_value, int | float):
            return float(found) == float(rule_value)
        return _as_number(rule_value) == float(found)
    if isinstance(found, str):
        if isinstance(rule_value, str):
            return found == rule_value
        return _as_number(found) == float(rule_value)
    return False


def _as_number(text: str) -> float | None:
    try:
        value = float(text.strip())
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def _values_at(value: Any, path: Sequence[str]) -> Iterator[Any]:
    """Every value at a dotted path; a list on the way (or at the end) fans out, so
    `products.product_id` reaches each line of an order."""
    if isinstance(value, list):
        for item in value:
            yield from _values_at(item, path)
        return
    if not path:
        yield value
        return
    if isinstance(value, dict) and path[0] in value:
        yield from _values_at(value[path[0]], path[1:])


@dataclass(frozen=True, slots=True)
class EventRule:
    name: str
    event: str
    points: float
    filters: Filters = ()
    id: int | None = None

    def matches(self, event: EventView) -> bool:
        if event_name(event) != self.event:
            return False
        for path, accepted, _listed in self.filters:
            found = list(_values_at(event.properties, path))
            if not found and path == ("name",) and event.type != "track" and event.event:
                found = [event.event]
            if not any(_same(want, have) for have in found for want in accepted):
                return False
        return True

    def where(self) -> dict[str, Any]:
        """The filters in the form people write them: {"path": value or [values]}."""
        return {
            ".".join(path): (list(values) if listed else values[0])
            for path, values, listed in self.filters
        }

    def condition_json(self) -> str | None:
        """The filters as stored in lead_score_rules.condition."""
        if not self.filters:
            return None
        return json.dumps(self.where(), separators=(",", ":"), ensure_ascii=False)


@dataclass(frozen=True, slots=True)
class ProfileRule:
    """Integration point for rules on the profile itself (traits, computed attributes,
    consents, segments): `points` are earned once each time a profile comes to satisfy
    `predicate`, as if an event happened then. The predicate is the segment language's
    compiled condition, called as predicate(facts, now_ms); this module does not parse
    conditions. Who detects "comes to satisfy" (membership knows entries and exits)
    awards the points with scores.lead_store.award_points."""

    name: str
    points: float
    predicate: Callable[[Any, int], bool]
    id: int | None = None

    def satisfied(self, facts: Any, now_ms: int) -> bool:
        return bool(self.predicate(facts, now_ms))


def _check_scalar(value: Any, field: str) -> Scalar:
    if isinstance(value, bool | str):
        return value
    if isinstance(value, int | float) and math.isfinite(value):
        return value
    raise RuleError(f"{field}: values must be texts, numbers or true/false", field)


def parse_filters(where: Any) -> Filters:
    """{"property.path": value or [values]} -> Filters; RuleError naming the field."""
    if where is None:
        return ()
    if not isinstance(where, dict):
        raise RuleError('where must be an object such as {"category": "Sofas"}', "where")
    if len(where) > MAX_FILTERS:
        raise RuleError(f"where takes at most {MAX_FILTERS} properties", "where")
    out: list[tuple[tuple[str, ...], tuple[Scalar, ...], bool]] = []
    for key, value in where.items():
        field = f"where.{key}"
        parts = tuple(key.split("."))
        if not key or len(key) > 200 or any(not part.strip() for part in parts):
            raise RuleError(
                "property names are dotted paths such as category or products.product_id "
                "(at most 200 characters, no empty parts)",
                "where",
            )
        items = value if isinstance(value, list) else [value]
        if not items:
            raise RuleError(f"{field}: give at least one value", field)
        if len(items) > MAX_VALUES:
            raise RuleError(f"{field}: at most {MAX_VALUES} values", field)
        values = tuple(_check_scalar(item, field) for item in items)
        out.append((parts, values, isinstance(value, list)))
    return tuple(out)


def check_points(points: Any) -> float:
    if isinstance(points, bool) or not isinstance(points, int | float):
        raise RuleError("points must be a number", "points")
    value = float(points)
    if not math.isfinite(value) or value == 0 or abs(value) > MAX_POINTS:
        raise RuleError(
            f"points must be a non-zero number between -{MAX_POINTS:g} and {MAX_POINTS:g}",
            "points",
        )
    return value


def make_event_rule(
    name: Any, event: Any, where: Any, points: Any, rule_id: int | None = None
) -> EventRule:
    """A validated event rule, from what a person typed."""
    if not isinstance(name, str) or not name.strip() or len(name.strip()) > 200:
        raise RuleError("name must be a text of 1 to 200 characters", "name")
    if not isinstance(event, str) or not event.strip() or len(event.strip()) > 500:
        raise RuleError("event must be an event name such as Product Viewed", "event")
    return EventRule(
        name=name.strip(),
        event=event.strip(),
        points=check_points(points),
        filters=parse_filters(where),
        id=rule_id,
    )


def rule_from_row(
    rule_id: int, name: str, event: str, condition: str | None, points: float
) -> EventRule:
    """An event rule as stored (condition: the JSON text of its filters)."""
    where = None
    if condition:
        try:
            where = json.loads(condition)
        except ValueError:
            raise RuleError("the stored condition is not JSON", "condition") from None
    return make_event_rule(name, event, where, points, rule_id)


# Used while lead_score_rules holds no rule at all. After the seed's marketing automation
# article: visiting the site, looking at chosen products and opening the shop's emails
# earn points; adding to the cart and signing up show more intent and earn more.
DEFAULT_RULES: tuple[EventRule, ...] = (
    EventRule("Visited a page", PAGE_EVENT, 1.0),
    EventRule("Viewed a product", "Product Viewed", 2.0),
    EventRule("Added a product to the cart", "Product Added", 5.0),
    EventRule("Opened an email", "Email Opened", 2.0),
    EventRule("Clicked a link in an email", "Email Link Clicked", 3.0),
    EventRule("Signed up", "Signed Up", 10.0),
)


def points_earned(
    rules: Sequence[EventRule], events: Iterable[EventView]
) -> list[tuple[float, int]]:
    """(points, event time) for every rule each event matches (an event matching two
    rules earns both)."""
    by_event: dict[str, list[EventRule]] = {}
    for rule in rules:
        by_event.setdefault(rule.event, []).append(rule)
    earned: list[tuple[float, int]] = []
    for event in events:
        name = event_name(event)
        if name is None:
            continue
        for rule in by_event.get(name, ()):
            if rule.matches(event):
                earned.append((rule.points, event.timestamp_ms))
    return earned


@dataclass(frozen=True, slots=True)
class Decay:
    half_life_ms: float
    cap: float

    @classmethod
    def of(cls, half_life_days: float, cap: float) -> Decay:
        if not half_life_days > 0 or not cap > 0:
            raise ValueError("the half-life and the cap must be positive")
        return cls(half_life_days * DAY_MS, float(cap))

    def factor(self, elapsed_ms: float) -> float:
        """0.5 ** (elapsed / half-life); never above 1 (no growth backwards in time)."""
        return math.pow(0.5, max(0.0, elapsed_ms) / self.half_life_ms)

    def clamp(self, score: float) -> float:
        return min(self.cap, max(0.0, score))


@dataclass(frozen=True, slots=True)
class LeadScore:
    score: float
    at_ms: int


def score_at(current: LeadScore, to_ms: int, decay: Decay) -> float:
    """The stored score decayed to `to_ms` (unchanged when to_ms is not later)."""
    return current.score * decay.factor(to_ms - current.at_ms)


def add_points(
    current: LeadScore | None,
    earned: Iterable[tuple[float, int]],
    now_ms: int,
    decay: Decay,
) -> LeadScore:
    """The score after `earned` (points, event time), as of max(now, stored time)."""
    at = now_ms if current is None else max(now_ms, current.at_ms)
    total = 0.0 if current is None else score_at(current, at, decay)
    for points, event_ms in earned:
        total += points * decay.factor(at - event_ms)
    return LeadScore(decay.clamp(total), at)


def combine(
    survivor: LeadScore | None, absorbed: LeadScore | None, now_ms: int, decay: Decay
) -> LeadScore | None:
    """Two profiles' scores when they merge: both decayed to one time, summed, capped."""
    if absorbed is None:
        return survivor
    return add_points(survivor, [(absorbed.score, absorbed.at_ms)], now_ms, decay)
