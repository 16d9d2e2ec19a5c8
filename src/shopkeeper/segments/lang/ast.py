"""The segment language's syntax tree: what the text and the JSON form both parse to.

Plain frozen dataclasses, so that two conditions that mean the same compare equal and
can be hashed. Pure: no database, no clock.

Semantics shared by every backend (SQL for a population, Python for one profile):
conditions are two-valued. An atom whose field is missing, or holds a value of another
type than the one it is compared with, is false; `not` is the plain negation of that.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Value = str | float | int | bool
CompareOp = Literal["=", "!=", ">", ">=", "<", "<="]
CountOp = Literal[">=", "<=", "=", ">", "<"]
Unit = Literal["minutes", "hours", "days", "weeks", "months", "years"]

UNIT_MS: dict[str, int] = {
    "minutes": 60_000,
    "hours": 3_600_000,
    "days": 86_400_000,
    "weeks": 7 * 86_400_000,
    "months": 30 * 86_400_000,  # a month is 30 days, a year 365: stated in the docs
    "years": 365 * 86_400_000,
}


# Bounds on numbers a condition may hold: beyond them no shop's data means anything, and
# the backends could not represent them (a window reaching before year 1, a count past a
# 64-bit integer).
MAX_NUMBER = 1e15
MAX_TIMES = 1_000_000_000
MAX_DURATION_MS = 100 * 365 * 86_400_000
MAX_ANNIVERSARY_DAYS = 366


def number_problem(value: float | int) -> str | None:
    """Why a number literal cannot be used, or None."""
    if isinstance(value, float) and value != value:
        return "Numbers must be finite"
    if abs(value) > MAX_NUMBER:
        return "Numbers in a condition are at most 1,000,000,000,000,000 (10^15)"
    return None


@dataclass(frozen=True)
class Duration:
    amount: int
    unit: Unit

    @property
    def ms(self) -> int:
        return self.amount * UNIT_MS[self.unit]

    def problem(self) -> str | None:
        if self.ms > MAX_DURATION_MS:
            return "A period is at most 100 years"
        return None


# -- what a condition is about -----------------------------------------------------------

FieldKind = Literal["computed", "trait", "consent", "score", "known", "derived", "property",
                    "context", "product"]  # fmt: skip


@dataclass(frozen=True)
class Field:
    """A value of the profile (computed attribute, trait, consent, score...) or, inside
    an event's `where`, of the event (property, context) or of its product (catalog).
    `name` is what the marketer wrote, kept for messages and printing."""

    kind: FieldKind
    path: tuple[str, ...]
    name: str


# -- conditions --------------------------------------------------------------------------


@dataclass(frozen=True)
class And:
    items: tuple[Condition, ...]


@dataclass(frozen=True)
class Or:
    items: tuple[Condition, ...]


@dataclass(frozen=True)
class Not:
    item: Condition


@dataclass(frozen=True)
class Compare:
    field: Field
    op: CompareOp
    value: Value


@dataclass(frozen=True)
class OneOf:
    """`field in (a, b)`; `not in` is Not(OneOf)."""

    field: Field
    values: tuple[Value, ...]


@dataclass(frozen=True)
class Text:
    """`starts with` (prefix) or `contains` (a substring of a text, or an element of a
    list). Case-sensitive."""

    field: Field
    op: Literal["starts with", "contains"]
    value: Value


@dataclass(frozen=True)
class Presence:
    """`is set` (present and not null) or `is empty` (missing, null, "", [] or {})."""

    field: Field
    test: Literal["set", "empty"]


@dataclass(frozen=True)
class Truthy:
    """A bare field: true when it holds the boolean true (`consent.email`, `known`)."""

    field: Field


@dataclass(frozen=True)
class TimeWindow:
    """A time (ISO text) `within` the last duration, or `more than` it `ago`."""

    field: Field
    within: bool
    duration: Duration


@dataclass(frozen=True)
class Anniversary:
    """A date (YYYY-MM-DD...) whose month and day fall within the next `days` days,
    today included: birthdays, signup anniversaries."""

    field: Field
    days: int


@dataclass(frozen=True)
class Did:
    """The profile did `event` (a track event name) a number of times, optionally within
    a window and matching `where` (conditions on the event's properties and product).
    `first`: the first such event ever falls within the window."""

    event: str
    op: CountOp = ">="
    times: int = 1
    window: Duration | None = None
    where: Condition | None = None
    first: bool = False


@dataclass(frozen=True)
class Aggregate:
    """`total revenue of "Order Completed" within 90 days >= 100`: a function of a
    numeric property over the matching events, compared with a number. No matching
    event with a number there: false."""

    func: Literal["total", "average", "minimum", "maximum"]
    property: Field
    event: str
    window: Duration | None
    where: Condition | None
    op: CompareOp
    value: float


@dataclass(frozen=True)
class InSegment:
    key: str


Condition = (
    And
    | Or
    | Not
    | Compare
    | OneOf
    | Text
    | Presence
    | Truthy
    | TimeWindow
    | Anniversary
    | Did
    | Aggregate
    | InSegment
)


def segment_keys(node: Condition) -> set[str]:
    """The segments a condition names directly."""
    out: set[str] = set()
    for item in walk(node):
        if isinstance(item, InSegment):
            out.add(item.key)
    return out


def walk(node: Condition) -> list[Condition]:
    """Every condition in the tree (event `where` clauses included), parents first."""
    out: list[Condition] = []
    stack: list[Condition] = [node]
    while stack:
        item = stack.pop()
        out.append(item)
        if isinstance(item, (And, Or)):
            stack.extend(reversed(item.items))
        elif isinstance(item, Not):
            stack.append(item.item)
        elif isinstance(item, (Did, Aggregate)) and item.where is not None:
            stack.append(item.where)
    return out
