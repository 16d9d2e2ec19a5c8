"""The journey engine as a pure function: no database, no clock, no sleeping."""

from __future__ import annotations

from collections import Counter
from dataclasses import replace

import pytest

from shopkeeper.journeys.definition import JourneyInvalid, read_definition
from shopkeeper.journeys.engine import (
    COMPLETED,
    EXITED,
    STOPPED,
    CallWebhook,
    Converted,
    Ended,
    Enrollment,
    Happening,
    IssueCoupon,
    Reached,
    Send,
    UpdateProfile,
    advance,
    choose_branch,
    in_holdout,
    next_time_of_day,
)
from shopkeeper.segments.lang.evaluate import EventFact, ProfileFacts
from shopkeeper.timeutil import parse_iso_ms

NOW = parse_iso_ms("2026-11-23T12:00:00Z")
HOUR = 3_600_000

CART = read_definition(
    {
        "name": "Cart",
        "entry": {"event": "Product Added", "dedupe": "cart_id"},
        "exit_on": [{"event": "Order Completed", "match": ["cart_id"]}],
        "goal": {"event": "Order Completed", "within": "7d"},
        "steps": [
            {"id": "wait_1h", "type": "wait", "duration": "1h"},
            {
                "id": "full",
                "type": "condition",
                "condition": "cart_items_count >= 1",
                "then": "next",
                "else": "end",
            },
            {"id": "remind", "type": "send", "channel": "best", "template": "cart"},
            {"id": "wait_2d", "type": "wait", "duration": "2d"},
            {"id": "code", "type": "coupon", "pool": "cart"},
            {"id": "last", "type": "send", "channel": "email", "template": "cart_3"},
        ],
    }
)


def facts(**computed: object) -> ProfileFacts:
    return ProfileFacts(profile_id=7, known=True, traits={}, computed=computed)


def with_profile(profile: ProfileFacts) -> Happening:
    from shopkeeper.segments.lang.evaluate import compile_predicate

    return Happening(
        "timer", profile=profile, check=lambda node: compile_predicate(node)(profile, NOW)
    )


def start(definition=CART, **props: object):  # type: ignore[no-untyped-def]
    enrollment = Enrollment(id=1, profile_id=7, entered_at=NOW)
    return advance(enrollment, definition, Happening("start", properties=props), NOW)


def timer(enrollment: Enrollment, at: int, profile: ProfileFacts | None = None):  # type: ignore[no-untyped-def]
    happening = with_profile(profile) if profile is not None else Happening("timer")
    return advance(enrollment, CART, happening, at)


def test_start_waits_an_hour_and_sends_nothing_yet() -> None:
    out = start(cart_id="c1")
    assert out.enrollment.step == "wait_1h"
    assert out.enrollment.wake_at == NOW + HOUR
    assert out.enrollment.state["entry"] == {"cart_id": "c1"}
    assert out.actions == (Reached("wait_1h", "waiting"),)


def test_a_timer_too_early_does_nothing() -> None:
    waiting = start(cart_id="c1").enrollment
    out = timer(waiting, NOW + HOUR - 1, facts(cart_items_count=2))
    assert out.actions == ()
    assert out.enrollment == waiting


def test_after_an_hour_a_full_cart_gets_one_reminder_then_waits_two_days() -> None:
    waiting = start(cart_id="c1").enrollment
    out = timer(waiting, NOW + HOUR, facts(cart_items_count=2))
    sends = [a for a in out.actions if isinstance(a, Send)]
    assert sends == [Send("remind", "best", (), "cart", False, "now", 10)]
    assert [a for a in out.actions if isinstance(a, Reached)] == [
        Reached("wait_1h", "passed"),
        Reached("full", "yes"),
        Reached("remind", "done"),
        Reached("wait_2d", "waiting"),
    ]
    assert out.enrollment.step == "wait_2d"
    assert out.enrollment.wake_at == NOW + HOUR + 48 * HOUR


def test_an_emptied_cart_ends_the_journey_without_a_message() -> None:
    waiting = start(cart_id="c1").enrollment
    out = timer(waiting, NOW + HOUR, facts(cart_items_count=0))
    assert not [a for a in out.actions if isinstance(a, Send)]
    assert out.actions[-1] == Ended(COMPLETED, "reached the end")
    assert out.enrollment.status == COMPLETED
    assert out.enrollment.wake_at is None


def test_the_coupon_comes_before_the_last_message() -> None:
    waiting = start(cart_id="c1").enrollment
    second = timer(waiting, NOW + HOUR, facts(cart_items_count=1)).enrollment
    out = timer(second, NOW + 49 * HOUR, facts(cart_items_count=1))
    kinds = [type(a).__name__ for a in out.actions if not isinstance(a, Reached)]
    assert kinds == ["IssueCoupon", "Send", "Ended"]
    assert IssueCoupon("code", "cart") in out.actions


def test_buying_the_same_cart_exits_and_other_carts_do_not() -> None:
    waiting = start(cart_id="c1").enrollment
    other = EventFact("Order Completed", NOW + 10, {"cart_id": "c2", "revenue": 10})
    out = advance(waiting, CART, Happening("event", other), NOW + 10)
    assert out.enrollment.status == "active"
    # The goal has no match rule: any order in the window converts, the first one counts.
    assert out.actions == (Converted(NOW + 10, 10.0, "Order Completed"),)
    same = EventFact("Order Completed", NOW + 20, {"cart_id": "c1", "revenue": 99.5})
    out = advance(out.enrollment, CART, Happening("event", same), NOW + 20)
    assert out.enrollment.status == EXITED
    assert out.actions == (Ended(EXITED, "did Order Completed"),)


def test_the_goal_is_met_once_within_its_window_even_after_the_enrollment_ended() -> None:
    ended = replace(start(cart_id="c1").enrollment, status=COMPLETED, step=None)
    order = EventFact("Order Completed", NOW + 5 * 24 * HOUR, {"revenue": "42.50"})
    out = advance(ended, CART, Happening("event", order), NOW + 5 * 24 * HOUR)
    assert out.actions == (Converted(order.timestamp, 42.5, "Order Completed"),)
    again = advance(out.enrollment, CART, Happening("event", order), order.timestamp)
    assert again.actions == ()
    late = EventFact("Order Completed", NOW + 8 * 24 * HOUR, {"revenue": 1})
    assert advance(ended, CART, Happening("event", late), late.timestamp).actions == ()


def test_replaying_a_start_changes_nothing() -> None:
    first = start(cart_id="c1").enrollment
    again = advance(first, CART, Happening("start", properties={"cart_id": "c1"}), NOW + 5)
    assert again.actions == ()
    assert again.enrollment == first


def test_holdout_walks_the_same_path_and_is_sent_nothing() -> None:
    enrollment = Enrollment(id=1, profile_id=7, entered_at=NOW, holdout=True)
    waiting = advance(enrollment, CART, Happening("start"), NOW).enrollment
    out = timer(waiting, NOW + HOUR, facts(cart_items_count=3))
    assert not [a for a in out.actions if isinstance(a, (Send, IssueCoupon))]
    assert Reached("remind", "held_out") in out.actions
    assert out.enrollment.step == "wait_2d"


def test_stop_ends_an_enrollment_in_flight() -> None:
    waiting = start(cart_id="c1").enrollment
    out = advance(waiting, CART, Happening("stop", reason="archived"), NOW + 1)
    assert out.enrollment.status == STOPPED
    assert out.actions == (Ended(STOPPED, "archived"),)


WAIT_FOR = read_definition(
    {
        "name": "Checkout",
        "entry": {"event": "Checkout Started"},
        "steps": [
            {
                "id": "paid",
                "type": "wait_for",
                "event": "Order Completed",
                "where": "total >= 10",
                "match": ["checkout_id"],
                "timeout": "2h",
                "then": "thanks",
                "else": "nudge",
            },
            {"id": "thanks", "type": "send", "channel": "email", "template": "t", "next": "end"},
            {"id": "nudge", "type": "send", "channel": "sms", "template": "n"},
        ],
    }
)


def test_wait_for_takes_the_event_branch_only_for_a_matching_event() -> None:
    enrollment = Enrollment(id=3, profile_id=7, entered_at=NOW)
    waiting = advance(
        enrollment, WAIT_FOR, Happening("start", properties={"checkout_id": "k"}), NOW
    ).enrollment
    assert waiting.wake_at == NOW + 2 * HOUR
    small = EventFact("Order Completed", NOW + 1, {"checkout_id": "k", "total": 5})
    assert advance(waiting, WAIT_FOR, Happening("event", small), NOW + 1).actions == ()
    wrong = EventFact("Order Completed", NOW + 2, {"checkout_id": "x", "total": 50})
    assert advance(waiting, WAIT_FOR, Happening("event", wrong), NOW + 2).actions == ()
    right = EventFact("Order Completed", NOW + 3, {"checkout_id": "k", "total": 50})
    out = advance(waiting, WAIT_FOR, Happening("event", right), NOW + 3)
    assert [a.template for a in out.actions if isinstance(a, Send)] == ["t"]
    assert out.enrollment.status == COMPLETED


def test_wait_for_times_out_into_the_else_branch() -> None:
    enrollment = Enrollment(id=3, profile_id=7, entered_at=NOW)
    waiting = advance(enrollment, WAIT_FOR, Happening("start"), NOW).enrollment
    out = advance(waiting, WAIT_FOR, Happening("timer"), NOW + 2 * HOUR)
    assert Reached("paid", "timed out") in out.actions
    assert [a.template for a in out.actions if isinstance(a, Send)] == ["n"]


def test_splits_follow_their_weights_and_are_stable() -> None:
    branches = [
        {"name": "a", "weight": 1, "next": "x"},
        {"name": "b", "weight": 3, "next": "y"},
    ]
    picks = Counter(choose_branch(i, "split", branches)["name"] for i in range(20_000))
    assert 0.23 < picks["a"] / 20_000 < 0.27
    assert all(
        choose_branch(i, "split", branches) == choose_branch(i, "split", branches)
        for i in range(50)
    )


def test_holdout_share_is_close_to_the_setting_and_stable() -> None:
    held = sum(in_holdout(0.1, 1, pid, f"k{pid}") for pid in range(20_000))
    assert 0.09 < held / 20_000 < 0.11
    assert not any(in_holdout(0.0, 1, pid, "k") for pid in range(100))


def test_wait_until_a_time_of_day_in_the_persons_time_zone() -> None:
    # 12:00 UTC is 13:00 in Oslo: 09:00 Oslo tomorrow is 08:00 UTC.
    at = next_time_of_day(NOW, "Europe/Oslo", 9, 0, ["mon", "tue", "wed", "thu", "fri"])
    assert at == parse_iso_ms("2026-11-24T08:00:00Z")
    # Only Saturdays: 2026-11-28.
    assert next_time_of_day(NOW, "Europe/Oslo", 9, 0, ["sat"]) == parse_iso_ms(
        "2026-11-28T08:00:00Z"
    )
    # An unknown zone is UTC rather than an error.
    assert next_time_of_day(NOW, "Mars/Olympus", 13, 0, ["mon"]) == parse_iso_ms(
        "2026-11-23T13:00:00Z"
    )


def test_wait_date_waits_for_an_attribute_and_passes_without_one() -> None:
    definition = read_definition(
        {
            "name": "Birthday",
            "entry": {"api": True},
            "steps": [
                {"id": "day_before", "type": "wait_date", "attribute": "next_birthday",
                 "offset": "-1d"},
                {"id": "wish", "type": "send", "channel": "email", "template": "b"},
            ],
        }
    )  # fmt: skip
    profile = ProfileFacts(7, True, {"next_birthday": "2026-12-01"}, {})
    out = advance(Enrollment(1, 7, NOW), definition, Happening("start", profile=profile), NOW)
    assert out.enrollment.wake_at == parse_iso_ms("2026-11-30T00:00:00Z")
    no_date = advance(Enrollment(2, 7, NOW), definition, Happening("start"), NOW)
    assert [a.template for a in no_date.actions if isinstance(a, Send)] == ["b"]


def test_a_step_nothing_leads_to_is_refused() -> None:
    with pytest.raises(JourneyInvalid, match='No path leads to step "never"'):
        read_definition(
            {
                "name": "Tagging",
                "entry": {"api": True},
                "steps": [
                    {"id": "bye", "type": "exit"},
                    {"id": "never", "type": "send", "channel": "email", "template": "x"},
                ],
            }
        )


def test_exit_step_and_actions_in_order() -> None:
    definition = read_definition(
        {
            "name": "Tagging",
            "entry": {"api": True},
            "steps": [
                {"id": "tag", "type": "update_profile", "tags": ["vip"],
                 "consent": {"sms": False}},
                {"id": "tell_crm", "type": "webhook", "url": "https://crm.example.com/hook"},
                {"id": "bye", "type": "exit"},
            ],
        }
    )  # fmt: skip
    out = advance(Enrollment(1, 7, NOW), definition, Happening("start"), NOW)
    assert [a for a in out.actions if not isinstance(a, Reached)] == [
        UpdateProfile("tag", {}, ("vip",), {"sms": False}),
        CallWebhook("tell_crm", "https://crm.example.com/hook", None),
        Ended(COMPLETED, 'exit step "bye"'),
    ]


def test_exit_condition_is_checked_at_every_step() -> None:
    definition = read_definition(
        {
            "name": "Nurture",
            "entry": {"api": True},
            "exit_when": "orders_count >= 1",
            "steps": [
                {"id": "w", "type": "wait", "duration": "1d"},
                {"id": "m", "type": "send", "channel": "email", "template": "x"},
            ],
        }
    )
    waiting = advance(Enrollment(1, 7, NOW), definition, Happening("start"), NOW).enrollment
    buyer = facts(orders_count=1)
    out = advance(waiting, definition, replace(with_profile(buyer)), NOW + 24 * HOUR)
    assert out.enrollment.status == EXITED
    assert not [a for a in out.actions if isinstance(a, Send)]
