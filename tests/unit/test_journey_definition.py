"""Reading journey definitions: what is accepted, and the errors a marketer sees."""

from __future__ import annotations

from typing import Any

import pytest

from shopkeeper.journeys.definition import (
    END,
    EventEntry,
    HolidayEntry,
    JourneyInvalid,
    SegmentEntry,
    parse_duration,
    read_definition,
    segments_named,
    templates_named,
)


def journey(*steps: dict[str, Any], **more: Any) -> dict[str, Any]:
    return {"name": "J", "entry": {"event": "Signed Up"}, "steps": list(steps), **more}


SEND = {"id": "hello", "type": "send", "channel": "email", "template": "welcome"}


def refused(data: dict[str, Any] | str) -> JourneyInvalid:
    with pytest.raises(JourneyInvalid) as info:
        read_definition(data)
    return info.value


@pytest.mark.parametrize(
    ("text", "ms"),
    [("90s", 90_000), ("30m", 1_800_000), ("1h", 3_600_000), ("3d", 259_200_000),
     ("2w", 1_209_600_000), (60, 60_000), (" 5 m ", 300_000)],
)  # fmt: skip
def test_durations(text: object, ms: int) -> None:
    assert parse_duration(text, "x") == ms


@pytest.mark.parametrize("bad", ["1 hour", "-1h", "1y", True, None, "", "800w"])
def test_bad_durations_say_how_to_write_one(bad: object) -> None:
    with pytest.raises(JourneyInvalid, match=r"duration|two years"):
        parse_duration(bad, "steps[0].duration")


def test_yaml_and_json_give_the_same_definition() -> None:
    text = """
name: Welcome
entry: {event: Signed Up, where: 'source = "footer"', dedupe: email}
steps:
  - {id: hello, type: send, channel: email, template: welcome}
"""
    from_yaml = read_definition(text)
    from_json = read_definition(
        {
            "name": "Welcome",
            "entry": {"event": "Signed Up", "where": 'source = "footer"', "dedupe": "email"},
            "steps": [SEND],
        }
    )
    assert from_yaml.entry == from_json.entry
    assert from_yaml.steps == from_json.steps
    assert isinstance(from_yaml.entry, EventEntry)
    assert from_yaml.entry.dedupe == "email"


def test_steps_go_to_the_next_one_unless_they_say_otherwise() -> None:
    d = read_definition(
        journey(
            {"id": "w", "type": "wait", "duration": "1h"},
            {"id": "c", "type": "condition", "condition": "orders_count >= 1",
             "then": "end", "else": "next"},
            SEND,
        )
    )  # fmt: skip
    assert d.step("w").next == "c"
    assert d.step("c").targets() == {"then": END, "else": "hello"}
    assert d.step("hello").next == END


@pytest.mark.parametrize(
    ("data", "message", "path"),
    [
        (journey({"id": "a", "type": "wait", "duration": "1h", "next": "nowhere"}),
         'goes to "nowhere"', "steps[0]"),
        (journey({"id": "a", "type": "condition", "condition": "known", "then": "next"}),
         "say where `else` goes", "steps[0].else"),
        (journey({"id": "a", "type": "wait", "duration": "1h", "next": "end"}, SEND),
         'No path leads to step "hello"', "steps[1]"),
        (journey({"id": "a", "type": "wait", "duration": "1h", "next": "b"},
                 {"id": "b", "type": "wait", "duration": "1h", "next": "a"}),
         'loops back to "a"', "steps[0]"),
        (journey({"id": "a", "type": "teleport"}), '"teleport" is not a step type',
         "steps[0].type"),
        (journey(SEND, SEND), 'Two steps are called "hello"', "steps[1].id"),
        (journey({"id": "Bad Id", "type": "exit"}), "Each step has an id", "steps[0].id"),
        (journey({"id": "s", "type": "send", "channel": "fax", "template": "x"}),
         "channel is one of", "steps[0].channel"),
        (journey({"id": "s", "type": "send", "channel": "email"}), "template is required",
         "steps[0].template"),
        (journey({"id": "c", "type": "condition", "condition": "orders_count >=",
                  "then": "end", "else": "end"}),
         "line 1", "steps[0].condition"),
        (journey({"id": "split", "type": "split", "branches": [{"name": "a", "next": "end"}]}),
         "at least two branches", "steps[0].branches"),
        (journey(SEND, holdout=0.95), "holdout is a share", "holdout"),
        (journey(SEND, reentry={"mode": "cooldown"}), "duration", "reentry.cooldown"),
        ({"name": "J", "steps": [SEND]}, "entry says who enters", "entry"),
        ({"name": "J", "entry": {"event": "A", "segment": "b"}, "steps": [SEND]},
         "exactly one of", "entry"),
        ({"name": "J", "entry": {"event": "A"}, "steps": []}, "at least one step", "steps"),
        ({"name": "J", "entry": {"event": "A", "where": "total >"}, "steps": [SEND]},
         "column", "entry.where"),
    ],
)  # fmt: skip
def test_errors_name_the_place(data: dict[str, Any], message: str, path: str) -> None:
    error = refused(data)
    assert message in error.message
    assert error.path == path


def test_yaml_syntax_errors_give_the_line() -> None:
    error = refused("name: J\nentry: {event: A\nsteps: []\n")
    assert "line" in error.message


def test_a_list_is_not_a_definition() -> None:
    assert "mapping" in refused("- a\n- b\n").message


def test_where_filters_keep_their_meaning() -> None:
    from shopkeeper.journeys.engine import event_passes
    from shopkeeper.segments.lang.evaluate import EventFact

    d = read_definition(
        {"name": "J",
         "entry": {"event": "Product Added", "where": 'price >= 100 and brand = "Oslo"'},
         "steps": [SEND]}
    )  # fmt: skip
    assert isinstance(d.entry, EventEntry)
    assert d.entry.where is not None
    yes = EventFact("Product Added", 0, {"price": 120, "brand": "Oslo"})
    no = EventFact("Product Added", 0, {"price": 99, "brand": "Oslo"})
    assert event_passes(d.entry.where, yes, None)
    assert not event_passes(d.entry.where, no, None)


def test_references_are_listed_for_checks() -> None:
    d = read_definition(
        {
            "name": "J",
            "entry": {"segment": "lapsed", "on": "entered"},
            "exit_when": 'in segment "vip"',
            "steps": [
                {"id": "c", "type": "condition", "condition": 'in segment "employees"',
                 "then": "end", "else": "next"},
                SEND,
            ],
        }
    )  # fmt: skip
    assert isinstance(d.entry, SegmentEntry)
    assert segments_named(d) == {"lapsed", "vip", "employees"}
    assert templates_named(d) == {"welcome"}


def test_holiday_entry() -> None:
    d = read_definition(
        {"name": "Mother's Day", "entry": {"holiday": "mothers_day", "days_before": 7},
         "steps": [SEND]}
    )  # fmt: skip
    assert d.entry == HolidayEntry("mothers_day", 7, 9)
    assert (
        "days_before is 0 to 60"
        in refused(
            {"name": "J", "entry": {"holiday": "x", "days_before": 99}, "steps": [SEND]}
        ).message
    )


def test_yaml_on_and_yes_stay_words() -> None:
    d = read_definition(
        "name: Lapsed\nentry: {segment: lapsed, on: exited}\nsteps:\n"
        "  - {id: hello, type: send, channel: email, template: welcome}\n"
    )
    assert d.entry == SegmentEntry("lapsed", "exited")
    assert "keys are texts" in refused("name: J\n1: x\nentry: {api: true}\nsteps: []\n").message


def test_a_broadcast_time_must_be_a_time() -> None:
    error = refused({"name": "B", "entry": {"broadcast": "vip", "at": "tomorrow"}, "steps": [SEND]})
    assert error.path == "entry.at"


def test_split_weights_are_bounded() -> None:
    branches = [{"name": "a", "weight": 10**400, "next": "end"}, {"name": "b", "next": "end"}]
    error = refused(journey({"id": "s", "type": "split", "branches": branches}))
    assert error.path == "steps[0].branches[0].weight"
