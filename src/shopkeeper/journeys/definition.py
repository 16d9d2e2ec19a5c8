"""A journey's definition: read from YAML or JSON, checked, and turned into frozen
dataclasses the engine walks. Pure: no database, no clock.

The shape (docs/journeys.md has the full reference):

    name: Abandoned cart
    entry: {event: Product Added, where: 'cart_id exists', dedupe: cart_id}
    reentry: {mode: every_time}          # once | every_time | cooldown (with cooldown: 7d)
    holdout: 0.1                          # share that is sent nothing and measured
    exit_on: [{event: Order Completed}]   # checked whenever the person does something
    goal: {event: Order Completed, within: 7d}
    steps:
      - {id: wait_1h, type: wait, duration: 1h}
      - {id: still_full, type: condition, condition: 'cart_items_count >= 1',
         then: next, else: end}
      - {id: reminder, type: send, channel: best, template: cart_reminder}

Steps run in the order written unless one names where to go: `next` (the following
step), `end`, or a step id. Journeys do not loop, so each step happens at most once per
enrollment, which is what makes "send once" a unique key.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from shopkeeper.journeys.reading import (
    JourneyInvalid,
    condition_of,
    load_text,
    parse_duration,
    parse_signed_duration,
    parse_time,
    text_field,
    where_filter,
)
from shopkeeper.segments.lang import ast

# What other modules import from here (some of it defined in reading.py).
__all__ = [
    "END",
    "NEXT",
    "WEEKDAYS",
    "ApiEntry",
    "BroadcastEntry",
    "CatalogEntry",
    "DateEntry",
    "Definition",
    "Entry",
    "EventEntry",
    "EventMatch",
    "HolidayEntry",
    "JourneyInvalid",
    "SegmentEntry",
    "Step",
    "condition_of",
    "load_text",
    "parse_duration",
    "parse_signed_duration",
    "parse_time",
    "read_definition",
    "segments_named",
    "templates_named",
]

END = "end"
NEXT = "next"
STEP_ID = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
MAX_STEPS = 100
SEND_CHANNELS = (
    "best",
    "email",
    "sms",
    "whatsapp",
    "web_push",
    "mobile_push",
    "in_app",
    "onsite",
    "webhook",
)
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_TIME = re.compile(r"^([01]?\d|2[0-3]):([0-5]\d)$")


@dataclass(frozen=True)
class EventEntry:
    event: str
    where: ast.Condition | None = None
    where_text: str | None = None
    # The property whose value makes an enrollment unique (a cart id).
    dedupe: str | None = None


@dataclass(frozen=True)
class SegmentEntry:
    segment: str
    on: str = "entered"  # entered | exited


@dataclass(frozen=True)
class DateEntry:
    """Enter on a date attribute (birthday, last_order_at) plus offset_days, each year
    when `annual`, at `hour` in the person's time zone."""

    attribute: str
    offset_days: int = 0
    annual: bool = False
    hour: int = 9


@dataclass(frozen=True)
class CatalogEntry:
    """A catalog event (Back In Stock, Price Drop): people who viewed (or asked about)
    the product within `viewed_within_ms` enter."""

    event: str
    viewed_within_ms: int = 30 * 86_400_000


@dataclass(frozen=True)
class HolidayEntry:
    """Enter `days_before` a holiday in each person's own country's calendar (the
    `holidays` package, plus days it lacks such as Mother's Day), at `hour` in their
    time zone. `holiday` is a key (christmas, mothers_day...) or a name as the calendar
    writes it."""

    holiday: str
    days_before: int = 0
    hour: int = 9


@dataclass(frozen=True)
class ApiEntry:
    pass


@dataclass(frozen=True)
class BroadcastEntry:
    """Everyone in a segment, once at `at` (ISO time) or every `every_ms`."""

    segment: str
    at: str | None = None
    every_ms: int | None = None


Entry = (
    EventEntry | SegmentEntry | DateEntry | HolidayEntry | CatalogEntry | ApiEntry | BroadcastEntry
)


# -- steps ----------------------------------------------------------------------------


@dataclass(frozen=True)
class EventMatch:
    """An event by name, with a filter in the segment language's `where` form and
    properties that must equal the entering event's (the same cart_id)."""

    event: str
    where: ast.Condition | None = None
    match: tuple[str, ...] = ()


@dataclass(frozen=True)
class Step:
    id: str
    type: str
    # Where to go after a step that does not branch (a step id or END).
    next: str = END
    options: Mapping[str, Any] = field(default_factory=dict)

    def targets(self) -> dict[str, str]:
        """Outgoing edges by label."""
        if self.type == "condition":
            return {"then": self.options["then"], "else": self.options["else"]}
        if self.type == "wait_for":
            return {"happened": self.options["then"], "timeout": self.options["else"]}
        if self.type == "split":
            return {b["name"]: b["next"] for b in self.options["branches"]}
        if self.type == "exit":
            return {}
        return {"next": self.next}


@dataclass(frozen=True)
class Definition:
    name: str
    entry: Entry
    steps: tuple[Step, ...]
    description: str = ""
    reentry: str = "every_time"  # once | every_time | cooldown
    cooldown_ms: int = 0
    max_concurrent: int | None = None
    holdout: float = 0.0
    exit_on: tuple[EventMatch, ...] = ()
    exit_when: ast.Condition | None = None
    goal: EventMatch | None = None
    goal_within_ms: int = 7 * 86_400_000
    # Per-journey frequency caps (None: the shop's caps apply).
    caps: Mapping[str, int] | None = None
    raw: Mapping[str, Any] = field(default_factory=dict, compare=False)

    @property
    def first(self) -> str:
        return self.steps[0].id

    def events_listened_to(self) -> frozenset[str]:
        """Track events that can change an enrollment in flight: waits for an event,
        exits and the goal."""
        names = {m.event for m in self.exit_on}
        if self.goal is not None:
            names.add(self.goal.event)
        names.update(s.options["event"].event for s in self.steps if s.type == "wait_for")
        return frozenset(names)

    def step(self, step_id: str) -> Step:
        for step in self.steps:
            if step.id == step_id:
                return step
        raise KeyError(step_id)


# -- reading --------------------------------------------------------------------------


def _event_match(data: Any, path: str) -> EventMatch:
    if isinstance(data, str):
        data = {"event": data}
    if not isinstance(data, Mapping):
        raise JourneyInvalid("Name an event: {event: Order Completed}.", path)
    event = text_field(data, "event", path)
    assert event is not None
    match = data.get("match", ())
    if isinstance(match, str):
        match = (match,)
    if not isinstance(match, (list, tuple)) or not all(
        isinstance(m, str) and m.strip() for m in match
    ):
        raise JourneyInvalid("match is a list of property names.", f"{path}.match")
    return EventMatch(event, where_filter(event, data.get("where"), f"{path}.where"), tuple(match))


def _entry(data: Any) -> Entry:
    path = "entry"
    if not isinstance(data, Mapping):
        raise JourneyInvalid(
            "entry says who enters: an event, a segment, a date, a catalog event, api or "
            "a broadcast.",
            path,
        )
    names = ("event", "segment", "date", "holiday", "catalog", "api", "broadcast")
    kinds = [k for k in names if k in data]
    if len(kinds) != 1:
        raise JourneyInvalid(
            "entry names exactly one of event, segment, date, holiday, catalog, api or broadcast.",
            path,
        )
    kind = kinds[0]
    if kind == "event":
        event = text_field(data, "event", path)
        assert event is not None
        dedupe = text_field(data, "dedupe", path, required=False)
        where = data.get("where")
        return EventEntry(
            event, where_filter(event, where, f"{path}.where"), where if where else None, dedupe
        )
    if kind == "segment":
        on = data.get("on", "entered")
        if on not in ("entered", "exited"):
            raise JourneyInvalid("on is entered or exited.", f"{path}.on")
        segment = text_field(data, "segment", path)
        assert segment is not None
        return SegmentEntry(segment, on)
    if kind == "date":
        attribute = text_field(data, "date", path)
        assert attribute is not None
        offset = data.get("offset_days", 0)
        hour = data.get("hour", 9)
        if not isinstance(offset, int) or isinstance(offset, bool) or abs(offset) > 3650:
            raise JourneyInvalid("offset_days is a whole number of days.", f"{path}.offset_days")
        if not isinstance(hour, int) or isinstance(hour, bool) or not 0 <= hour <= 23:
            raise JourneyInvalid("hour is 0 to 23.", f"{path}.hour")
        return DateEntry(attribute, offset, bool(data.get("annual", False)), hour)
    if kind == "holiday":
        holiday = text_field(data, "holiday", path)
        assert holiday is not None
        before = data.get("days_before", 0)
        hour = data.get("hour", 9)
        if not isinstance(before, int) or isinstance(before, bool) or not 0 <= before <= 60:
            raise JourneyInvalid("days_before is 0 to 60.", f"{path}.days_before")
        if not isinstance(hour, int) or isinstance(hour, bool) or not 0 <= hour <= 23:
            raise JourneyInvalid("hour is 0 to 23.", f"{path}.hour")
        return HolidayEntry(holiday, before, hour)
    if kind == "catalog":
        event = text_field(data, "catalog", path)
        assert event is not None
        within = parse_duration(data.get("viewed_within", "30d"), f"{path}.viewed_within")
        return CatalogEntry(event, within)
    if kind == "api":
        return ApiEntry()
    segment = text_field(data, "broadcast", path)
    assert segment is not None
    at = text_field(data, "at", path, required=False)
    if at is not None and parse_time(at) is None:
        raise JourneyInvalid("at is a date and time like 2026-12-01T09:00:00Z.", f"{path}.at")
    every = data.get("every")
    every_ms = parse_duration(every, f"{path}.every") if every is not None else None
    return BroadcastEntry(segment, at, every_ms)


_STEP_TYPES = (
    "wait",
    "wait_until",
    "wait_date",
    "wait_for",
    "condition",
    "split",
    "send",
    "update_profile",
    "coupon",
    "webhook",
    "exit",
)


def _step_options(kind: str, data: Mapping[str, Any], path: str) -> dict[str, Any]:
    if kind == "wait":
        return {"duration_ms": parse_duration(data.get("duration"), f"{path}.duration")}
    if kind == "wait_until":
        time = data.get("time", "09:00")
        m = _TIME.match(str(time)) if isinstance(time, str) else None
        if m is None:
            raise JourneyInvalid("time is a time of day like 09:30.", f"{path}.time")
        days = data.get("weekdays", list(WEEKDAYS))
        if not isinstance(days, list) or not days or not all(d in WEEKDAYS for d in days):
            raise JourneyInvalid(f"weekdays are among {', '.join(WEEKDAYS)}.", f"{path}.weekdays")
        return {"hour": int(m.group(1)), "minute": int(m.group(2)), "weekdays": list(days)}
    if kind == "wait_date":
        attribute = text_field(data, "attribute", path)
        offset = parse_signed_duration(data.get("offset", "0d"), f"{path}.offset")
        return {"attribute": attribute, "offset_ms": offset}
    if kind == "wait_for":
        match = _event_match(data, path)
        timeout = parse_duration(data.get("timeout"), f"{path}.timeout")
        return {"event": match, "timeout_ms": timeout, **_branches(data, path)}
    if kind == "condition":
        return {
            "condition": condition_of(data.get("condition"), f"{path}.condition"),
            **_branches(data, path),
        }
    if kind == "split":
        return {"branches": _split(data.get("branches"), f"{path}.branches")}
    if kind == "send":
        channel = data.get("channel", "best")
        fallback = data.get("fallback", [])
        if channel not in SEND_CHANNELS:
            raise JourneyInvalid(
                f"channel is one of {', '.join(SEND_CHANNELS)}.", f"{path}.channel"
            )
        if not isinstance(fallback, list) or not all(
            c in SEND_CHANNELS and c != "best" for c in fallback
        ):
            raise JourneyInvalid("fallback is a list of channels.", f"{path}.fallback")
        template = text_field(data, "template", path)
        send_time = data.get("send_time", "now")
        if send_time not in ("now", "best_hour"):
            raise JourneyInvalid("send_time is now or best_hour.", f"{path}.send_time")
        fallback_hour = data.get("fallback_hour", 10)
        if not isinstance(fallback_hour, int) or not 0 <= fallback_hour <= 23:
            raise JourneyInvalid("fallback_hour is 0 to 23.", f"{path}.fallback_hour")
        return {
            "channel": channel,
            "fallback": list(fallback),
            "template": template,
            "transactional": bool(data.get("transactional", False)),
            "send_time": send_time,
            "fallback_hour": fallback_hour,
        }
    if kind == "update_profile":
        traits = data.get("traits", {})
        tags = data.get("tags", [])
        consent = data.get("consent")
        if not isinstance(traits, Mapping):
            raise JourneyInvalid("traits is a mapping of trait names to values.", f"{path}.traits")
        if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
            raise JourneyInvalid("tags is a list of texts.", f"{path}.tags")
        if consent is not None and not (
            isinstance(consent, Mapping) and all(isinstance(v, bool) for v in consent.values())
        ):
            raise JourneyInvalid("consent maps channels to true or false.", f"{path}.consent")
        if not traits and not tags and not consent:
            raise JourneyInvalid("update_profile sets traits, tags or consent.", path)
        return {"traits": dict(traits), "tags": list(tags), "consent": dict(consent or {})}
    if kind == "coupon":
        return {"pool": text_field(data, "pool", path)}
    if kind == "webhook":
        return {"url": text_field(data, "url", path), "template": data.get("template")}
    return {}


def _branches(data: Mapping[str, Any], path: str) -> dict[str, str]:
    out = {}
    for key in ("then", "else"):
        target = data.get(key)
        if target is None:
            raise JourneyInvalid(
                f"This step branches: say where `{key}` goes (a step id, next or end).",
                f"{path}.{key}",
            )
        if not isinstance(target, str):
            raise JourneyInvalid(f"{key} names a step, next or end.", f"{path}.{key}")
        out[key] = target
    return out


def _split(data: Any, path: str) -> list[dict[str, Any]]:
    if not isinstance(data, list) or len(data) < 2:
        raise JourneyInvalid("A split has at least two branches.", path)
    out = []
    names: set[str] = set()
    for i, branch in enumerate(data):
        where = f"{path}[{i}]"
        if not isinstance(branch, Mapping):
            raise JourneyInvalid("A branch has a name, a weight and next.", where)
        name = branch.get("name", f"branch_{i + 1}")
        weight = branch.get("weight", 1)
        target = branch.get("next")
        if not isinstance(name, str) or not name or name in names:
            raise JourneyInvalid("Each branch has its own name.", f"{where}.name")
        names.add(name)
        if (
            isinstance(weight, bool)
            or not isinstance(weight, (int, float))
            or not 0 < weight <= 1_000_000
        ):
            raise JourneyInvalid(
                "weight is a number above 0, at most 1,000,000.", f"{where}.weight"
            )
        if not isinstance(target, str):
            raise JourneyInvalid("This branch needs next: a step id or end.", f"{where}.next")
        out.append({"name": name, "weight": float(weight), "next": target})
    return out


def _steps(data: Any) -> tuple[Step, ...]:
    if not isinstance(data, list) or not data:
        raise JourneyInvalid("A journey has at least one step.", "steps")
    if len(data) > MAX_STEPS:
        raise JourneyInvalid(f"A journey has at most {MAX_STEPS} steps.", "steps")
    ids: list[str] = []
    for i, raw in enumerate(data):
        path = f"steps[{i}]"
        if not isinstance(raw, Mapping):
            raise JourneyInvalid("A step is a mapping with an id and a type.", path)
        step_id = raw.get("id")
        if not isinstance(step_id, str) or not STEP_ID.match(step_id) or step_id in (END, NEXT):
            raise JourneyInvalid(
                "Each step has an id: lower-case letters, digits and _, starting with a letter "
                "(not next or end).",
                f"{path}.id",
            )
        if step_id in ids:
            raise JourneyInvalid(f'Two steps are called "{step_id}".', f"{path}.id")
        ids.append(step_id)
    steps = []
    for i, raw in enumerate(data):
        path = f"steps[{i}]"
        kind = raw.get("type")
        if kind not in _STEP_TYPES:
            raise JourneyInvalid(
                f"{json.dumps(kind)} is not a step type; use one of {', '.join(_STEP_TYPES)}.",
                f"{path}.type",
            )
        options = _step_options(kind, raw, path)
        following = ids[i + 1] if i + 1 < len(ids) else END
        target = raw.get("next", NEXT)
        if not isinstance(target, str):
            raise JourneyInvalid("next names a step, next or end.", f"{path}.next")
        step = Step(raw["id"], kind, _resolve(target, following), options)
        # Branch targets written as `next` mean the following step too.
        if kind in ("condition", "wait_for"):
            options["then"] = _resolve(options["then"], following)
            options["else"] = _resolve(options["else"], following)
        if kind == "split":
            for branch in options["branches"]:
                branch["next"] = _resolve(branch["next"], following)
        steps.append(step)
    _check_graph(steps)
    return tuple(steps)


def _resolve(target: str, following: str) -> str:
    return following if target == NEXT else target


def _check_graph(steps: Sequence[Step]) -> None:
    index = {s.id: i for i, s in enumerate(steps)}
    for i, step in enumerate(steps):
        for label, target in step.targets().items():
            if target != END and target not in index:
                raise JourneyInvalid(
                    f'Step "{step.id}" goes to "{target}" ({label}), and there is no such step.',
                    f"steps[{i}]",
                )
    # Reachability from the first step, and no loops (each step happens at most once).
    seen: set[str] = set()
    visiting: set[str] = set()

    def walk(step_id: str) -> None:
        if step_id == END or step_id in seen:
            return
        if step_id in visiting:
            raise JourneyInvalid(
                f'The journey loops back to "{step_id}": journeys go forward only.',
                f"steps[{index[step_id]}]",
            )
        visiting.add(step_id)
        for target in steps[index[step_id]].targets().values():
            walk(target)
        visiting.discard(step_id)
        seen.add(step_id)

    walk(steps[0].id)
    for i, step in enumerate(steps):
        if step.id not in seen:
            raise JourneyInvalid(
                f'No path leads to step "{step.id}": it can never be reached.', f"steps[{i}]"
            )


def read_definition(data: Mapping[str, Any] | str) -> Definition:
    """A mapping (from JSON) or YAML/JSON text -> a checked Definition."""
    if isinstance(data, str):
        data = load_text(data)
    name = text_field(data, "name", "")
    assert name is not None
    description = data.get("description") or ""
    if not isinstance(description, str):
        raise JourneyInvalid("description is a text.", "description")
    entry = _entry(data.get("entry"))
    steps = _steps(data.get("steps"))
    reentry = data.get("reentry", {"mode": "every_time"})
    if isinstance(reentry, str):
        reentry = {"mode": reentry}
    mode = reentry.get("mode") if isinstance(reentry, Mapping) else None
    if mode not in ("once", "every_time", "cooldown"):
        raise JourneyInvalid("reentry mode is once, every_time or cooldown.", "reentry.mode")
    cooldown = (
        parse_duration(reentry.get("cooldown"), "reentry.cooldown") if mode == "cooldown" else 0
    )
    max_concurrent = data.get("max_concurrent")
    if max_concurrent is not None and (
        not isinstance(max_concurrent, int)
        or isinstance(max_concurrent, bool)
        or max_concurrent < 1
    ):
        raise JourneyInvalid("max_concurrent is a whole number of at least 1.", "max_concurrent")
    holdout = data.get("holdout", 0)
    if (
        isinstance(holdout, bool)
        or not isinstance(holdout, (int, float))
        or not 0 <= holdout <= 0.9
    ):
        raise JourneyInvalid("holdout is a share between 0 and 0.9 (0.1 for 10%).", "holdout")
    exit_on = data.get("exit_on", [])
    if not isinstance(exit_on, list):
        raise JourneyInvalid("exit_on is a list of events.", "exit_on")
    goal = data.get("goal")
    goal_match = _event_match(goal, "goal") if goal is not None else None
    within = (
        parse_duration(goal.get("within", "7d"), "goal.within")
        if isinstance(goal, Mapping)
        else 7 * 86_400_000
    )
    exit_when = data.get("exit_when")
    caps = data.get("caps")
    if caps is not None and not (
        isinstance(caps, Mapping)
        and set(caps) <= {"per_day", "per_week", "ignore"}
        and all(isinstance(v, (int, bool)) for v in caps.values())
    ):
        raise JourneyInvalid("caps sets per_day and per_week (numbers) or ignore: true.", "caps")
    return Definition(
        name=name,
        description=description,
        entry=entry,
        steps=steps,
        reentry=mode,
        cooldown_ms=cooldown,
        max_concurrent=max_concurrent,
        holdout=float(holdout),
        exit_on=tuple(_event_match(e, f"exit_on[{i}]") for i, e in enumerate(exit_on)),
        exit_when=condition_of(exit_when, "exit_when") if exit_when is not None else None,
        goal=goal_match,
        goal_within_ms=within,
        caps=dict(caps) if caps is not None else None,
        raw=dict(data),
    )


def segments_named(definition: Definition) -> set[str]:
    """The segment keys a definition depends on (entry and conditions)."""
    out: set[str] = set()
    if isinstance(definition.entry, (SegmentEntry, BroadcastEntry)):
        out.add(definition.entry.segment)
    nodes: list[ast.Condition] = [
        s.options["condition"] for s in definition.steps if s.type == "condition"
    ]
    if definition.exit_when is not None:
        nodes.append(definition.exit_when)
    for node in nodes:
        out.update(_segment_refs(node))
    return out


def _segment_refs(node: ast.Condition) -> set[str]:
    if isinstance(node, ast.InSegment):
        return {node.key}
    if isinstance(node, (ast.And, ast.Or)):
        return set().union(*(_segment_refs(i) for i in node.items))
    if isinstance(node, ast.Not):
        return _segment_refs(node.item)
    return set()


def templates_named(definition: Definition) -> set[str]:
    return {s.options["template"] for s in definition.steps if s.type == "send"}
