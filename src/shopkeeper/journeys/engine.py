"""The journey engine: a pure function from (enrollment, definition, happening, now) to
the enrollment's new state and the actions to carry out.

No database, no clock, no randomness of its own: splits are decided by a hash of the
enrollment and the step, so replaying the same happening gives the same actions, and
the runtime's unique keys (one row per enrollment and step) make each action happen
once however often it is replayed after a crash.

A happening is what wakes an enrollment: it starts, a timer it asked for fires, the
person does something (an applied track event), or the journey is stopped. The
runtime passes what the engine cannot know itself: a way to test conditions on the
person's profile, their time zone, and their attributes.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from shopkeeper.journeys.definition import (
    END,
    WEEKDAYS,
    Definition,
    EventMatch,
    Step,
    parse_time,
)
from shopkeeper.segments.lang import ast
from shopkeeper.segments.lang.evaluate import (
    MISSING,
    EventFact,
    ProfileFacts,
    compile_predicate,
    dig,
)

ACTIVE = "active"
COMPLETED = "completed"
EXITED = "exited"
STOPPED = "stopped"


@dataclass(frozen=True)
class Enrollment:
    id: int
    profile_id: int
    entered_at: int
    status: str = ACTIVE
    # The step the enrollment waits at (None before it starts or after it ends).
    step: str | None = None
    wake_at: int | None = None
    # entry: the entering event's properties; wait: what the current step waits for;
    # converted: the goal was met.
    state: Mapping[str, Any] = field(default_factory=dict)
    holdout: bool = False


@dataclass(frozen=True)
class Happening:
    kind: Literal["start", "timer", "event", "stop"]
    event: EventFact | None = None
    # start: the entering event's properties (or the API call's data).
    properties: Mapping[str, Any] = field(default_factory=dict)
    # What the runtime knows of the person, for conditions, dates and time zones.
    profile: ProfileFacts | None = None
    check: Callable[[ast.Condition], bool] | None = None
    timezone: str = "UTC"
    reason: str = ""


# -- actions --------------------------------------------------------------------------


@dataclass(frozen=True)
class Reached:
    """The enrollment reached a step; outcome says what happened there."""

    step: str
    outcome: str


@dataclass(frozen=True)
class Send:
    step: str
    channel: str
    fallback: tuple[str, ...]
    template: str
    transactional: bool
    send_time: str
    fallback_hour: int


@dataclass(frozen=True)
class IssueCoupon:
    step: str
    pool: str


@dataclass(frozen=True)
class UpdateProfile:
    step: str
    traits: Mapping[str, Any]
    tags: tuple[str, ...]
    consent: Mapping[str, bool]


@dataclass(frozen=True)
class CallWebhook:
    step: str
    url: str
    template: str | None


@dataclass(frozen=True)
class Converted:
    at: int
    revenue: float | None
    event: str


@dataclass(frozen=True)
class Ended:
    status: str
    reason: str


Action = Reached | Send | IssueCoupon | UpdateProfile | CallWebhook | Converted | Ended


@dataclass(frozen=True)
class Outcome:
    enrollment: Enrollment
    actions: tuple[Action, ...]


# -- the engine -----------------------------------------------------------------------


def advance(
    enrollment: Enrollment, definition: Definition, happening: Happening, now: int
) -> Outcome:
    actions: list[Action] = []
    current = enrollment
    if happening.kind == "event" and happening.event is not None:
        current = _goal(current, definition, happening.event, actions)
    if current.status != ACTIVE:
        return Outcome(current, tuple(actions))
    if happening.kind == "stop":
        return _end(current, STOPPED, happening.reason or "the journey was stopped", actions)
    if happening.kind == "start":
        if current.step is not None:
            return Outcome(current, tuple(actions))  # started already: a replay
        entry = {**current.state.get("entry", {}), **dict(happening.properties)}
        current = replace(current, state={**current.state, "entry": entry})
        return _run(current, definition, definition.first, happening, now, actions)
    if happening.kind == "event" and happening.event is not None:
        exit_reason = _exit_reason(current, definition, happening.event)
        if exit_reason is not None:
            return _end(current, EXITED, exit_reason, actions)
    if current.step is None:
        return Outcome(current, tuple(actions))
    step = definition.step(current.step)
    wait = current.state.get("wait") or {}
    if happening.kind == "event" and step.type == "wait_for" and happening.event is not None:
        wanted: EventMatch = step.options["event"]
        if _matches(wanted, happening.event, current, happening):
            actions.append(Reached(step.id, "happened"))
            return _run(current, definition, step.options["then"], happening, now, actions)
        return Outcome(current, tuple(actions))
    if happening.kind == "timer" and wait and now >= int(wait.get("until", 0)):
        if step.type == "wait_for":
            actions.append(Reached(step.id, "timed out"))
            return _run(current, definition, step.options["else"], happening, now, actions)
        actions.append(Reached(step.id, "passed"))
        return _run(current, definition, step.next, happening, now, actions)
    return Outcome(current, tuple(actions))


def _run(
    enrollment: Enrollment,
    definition: Definition,
    step_id: str,
    happening: Happening,
    now: int,
    actions: list[Action],
) -> Outcome:
    """Carry out steps from `step_id` until one waits or the journey ends."""
    current = replace(enrollment, state={k: v for k, v in enrollment.state.items() if k != "wait"})
    for _ in range(len(definition.steps) + 1):
        if step_id == END:
            return _end(current, COMPLETED, "reached the end", actions)
        if definition.exit_when is not None and _check(happening, definition.exit_when):
            return _end(current, EXITED, "meets the exit condition", actions)
        step = definition.step(step_id)
        until = _waits_until(step, current, happening, now)
        if until is not None:
            if until > now:
                actions.append(Reached(step.id, "waiting"))
                current = replace(
                    current,
                    step=step.id,
                    wake_at=until,
                    state={**current.state, "wait": {"step": step.id, "until": until}},
                )
                return Outcome(current, tuple(actions))
            if step.type == "wait_for":
                actions.append(Reached(step.id, "timed out"))
                step_id = step.options["else"]
                continue
            actions.append(Reached(step.id, "passed"))
            step_id = step.next
            continue
        step_id = _act(step, current, happening, actions)
        if step_id == "":
            return _end(current, COMPLETED, f'exit step "{step.id}"', actions)
    raise AssertionError("a checked definition has no loops")


def _act(step: Step, enrollment: Enrollment, happening: Happening, actions: list[Action]) -> str:
    """Instant steps: record them, emit what they do, and say where to go next ("" for
    an exit step)."""
    o = step.options
    held = enrollment.holdout
    if step.type == "condition":
        taken = "then" if _check(happening, o["condition"]) else "else"
        actions.append(Reached(step.id, "yes" if taken == "then" else "no"))
        return str(o[taken])
    if step.type == "split":
        branch = choose_branch(enrollment.id, step.id, o["branches"])
        actions.append(Reached(step.id, branch["name"]))
        return str(branch["next"])
    if step.type == "exit":
        actions.append(Reached(step.id, "exit"))
        return ""
    if held:
        actions.append(Reached(step.id, "held_out"))
        return step.next
    actions.append(Reached(step.id, "done"))
    if step.type == "send":
        actions.append(
            Send(
                step.id,
                o["channel"],
                tuple(o["fallback"]),
                o["template"],
                o["transactional"],
                o["send_time"],
                o["fallback_hour"],
            )
        )
    elif step.type == "coupon":
        actions.append(IssueCoupon(step.id, o["pool"]))
    elif step.type == "update_profile":
        actions.append(UpdateProfile(step.id, o["traits"], tuple(o["tags"]), o["consent"]))
    elif step.type == "webhook":
        actions.append(CallWebhook(step.id, o["url"], o.get("template")))
    return step.next


def _end(enrollment: Enrollment, status: str, reason: str, actions: list[Action]) -> Outcome:
    actions.append(Ended(status, reason))
    ended = replace(
        enrollment,
        status=status,
        step=None,
        wake_at=None,
        state={k: v for k, v in enrollment.state.items() if k != "wait"},
    )
    return Outcome(ended, tuple(actions))


# -- waits ----------------------------------------------------------------------------


def _waits_until(step: Step, enrollment: Enrollment, happening: Happening, now: int) -> int | None:
    """When a waiting step lets the enrollment go on (None for instant steps)."""
    o = step.options
    if step.type == "wait":
        return now + int(o["duration_ms"])
    if step.type == "wait_for":
        return now + int(o["timeout_ms"])
    if step.type == "wait_until":
        return next_time_of_day(now, happening.timezone, o["hour"], o["minute"], o["weekdays"])
    if step.type == "wait_date":
        when = _date_attribute(happening.profile, o["attribute"])
        if when is None:
            return now  # no such date: nothing to wait for
        return when + int(o["offset_ms"])
    return None


def zone(name: str | None) -> dt.tzinfo:
    try:
        return ZoneInfo(name) if name else dt.UTC
    except (ZoneInfoNotFoundError, ValueError):
        return dt.UTC


def next_time_of_day(now: int, timezone: str, hour: int, minute: int, weekdays: list[str]) -> int:
    """The first moment after `now` that is hour:minute on one of `weekdays` in the
    time zone (an unknown zone counts as UTC)."""
    tz = zone(timezone)
    local = dt.datetime.fromtimestamp(now / 1000, tz)
    for days in range(0, 8):
        day = (local + dt.timedelta(days=days)).date()
        if WEEKDAYS[day.weekday()] not in weekdays:
            continue
        candidate = dt.datetime(day.year, day.month, day.day, hour, minute, tzinfo=tz)
        at = int(candidate.timestamp() * 1000)
        if at > now:
            return at
    raise AssertionError("weekdays is never empty")


def _date_attribute(profile: ProfileFacts | None, attribute: str) -> int | None:
    if profile is None:
        return None
    path = attribute.split(".")
    value = dig(profile.traits, path)
    if value is None or value is MISSING:
        value = dig(profile.computed, path)
    return parse_time(value)


# -- matching -------------------------------------------------------------------------


def _check(happening: Happening, condition: ast.Condition) -> bool:
    return bool(happening.check(condition)) if happening.check is not None else False


def _matches(
    wanted: EventMatch, event: EventFact, enrollment: Enrollment, happening: Happening
) -> bool:
    if event.name != wanted.event:
        return False
    entry = enrollment.state.get("entry", {})
    for prop in wanted.match:
        if event.properties.get(prop) != entry.get(prop) or entry.get(prop) is None:
            return False
    if wanted.where is None:
        return True
    return event_passes(wanted.where, event, happening.profile)


def event_passes(where: ast.Condition, event: EventFact, profile: ProfileFacts | None) -> bool:
    """Whether one event meets a `where` filter (with catalog fields from the profile's
    loaded products)."""
    facts = ProfileFacts(
        profile_id=profile.profile_id if profile else 0,
        known=profile.known if profile else False,
        traits=profile.traits if profile else {},
        computed=profile.computed if profile else {},
        events=(event,),
        products=profile.products if profile else {},
    )
    test = compile_predicate(ast.Did(event=event.name, where=where))
    return test(facts, event.timestamp)


def _exit_reason(enrollment: Enrollment, definition: Definition, event: EventFact) -> str | None:
    for criterion in definition.exit_on:
        if _matches(criterion, event, enrollment, Happening("event", event)):
            return f"did {criterion.event}"
    return None


def _goal(
    enrollment: Enrollment, definition: Definition, event: EventFact, actions: list[Action]
) -> Enrollment:
    goal = definition.goal
    if goal is None or enrollment.state.get("converted"):
        return enrollment
    if event.timestamp < enrollment.entered_at:
        return enrollment
    if event.timestamp > enrollment.entered_at + definition.goal_within_ms:
        return enrollment
    if not _matches(goal, event, enrollment, Happening("event", event)):
        return enrollment
    actions.append(Converted(event.timestamp, revenue_of(event.properties), event.name))
    return replace(enrollment, state={**enrollment.state, "converted": True})


def revenue_of(properties: Mapping[str, Any]) -> float | None:
    for key in ("revenue", "total", "value"):
        value = properties.get(key)
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):
            try:
                return float(value)
            except ValueError:
                continue
    return None


def choose_branch(
    enrollment_id: int, step_id: str, branches: list[dict[str, Any]]
) -> dict[str, Any]:
    """A branch by weight, the same every time for this enrollment and step."""
    digest = hashlib.sha256(f"{enrollment_id}:{step_id}".encode()).digest()
    point = int.from_bytes(digest[:8], "big") / 2**64
    total = sum(float(b["weight"]) for b in branches)
    running = 0.0
    for branch in branches:
        running += float(branch["weight"]) / total
        if point < running:
            return branch
    return branches[-1]


def in_holdout(share: float, journey_id: int, profile_id: int, entry_key: str) -> bool:
    """Whether an enrollment is in the holdout: a stable hash, so a replay agrees."""
    if share <= 0:
        return False
    digest = hashlib.sha256(f"holdout:{journey_id}:{profile_id}:{entry_key}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 < share
