"""Traits: newest value wins per trait, Segment's reserved traits normalised."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shopkeeper.profiles.traits import (
    apply_traits,
    display_name,
    merge_traits,
    normalise_birthday,
    normalise_traits,
)

T1 = "2026-03-01T10:00:00.000Z"
T2 = "2026-03-01T11:00:00.000Z"
T3 = "2026-03-02T09:30:00.000Z"


def test_newer_values_win_and_older_ones_are_ignored() -> None:
    traits: dict[str, Any] = {}
    times: dict[str, str] = {}
    assert apply_traits(traits, times, {"plan": "pro", "age": 30}, T2)
    assert not apply_traits(traits, times, {"plan": "free"}, T1)
    assert traits == {"plan": "pro", "age": 30}
    assert apply_traits(traits, times, {"plan": "team"}, T3)
    assert traits == {"plan": "team", "age": 30}
    assert times == {"plan": T3, "age": T2}


def test_ties_go_to_the_later_call() -> None:
    traits: dict[str, Any] = {}
    times: dict[str, str] = {}
    apply_traits(traits, times, {"plan": "a"}, T1)
    assert apply_traits(traits, times, {"plan": "b"}, T1)
    assert traits == {"plan": "b"}


def test_null_removes_and_an_older_value_cannot_come_back() -> None:
    traits: dict[str, Any] = {}
    times: dict[str, str] = {}
    apply_traits(traits, times, {"phone": "+4712345678"}, T1)
    assert apply_traits(traits, times, {"phone": None}, T2)
    assert traits == {}
    assert times == {"phone": T2}
    assert not apply_traits(traits, times, {"phone": "+4799999999"}, T1)
    assert traits == {}


def test_reports_whether_anything_changed() -> None:
    traits: dict[str, Any] = {}
    times: dict[str, str] = {}
    apply_traits(traits, times, {"plan": "pro"}, T1)
    assert not apply_traits(traits, times, {"plan": "pro"}, T1)  # same value, same time
    assert apply_traits(traits, times, {"plan": "pro"}, T2)  # the time moved
    assert apply_traits(traits, times, {"gone": None}, T1)  # the removal's time is kept
    assert times["gone"] == T1
    assert not apply_traits(traits, times, {}, T3)


def test_a_change_of_type_is_a_change() -> None:
    traits: dict[str, Any] = {}
    times: dict[str, str] = {}
    apply_traits(traits, times, {"vip": 1}, T1)
    assert apply_traits(traits, times, {"vip": True}, T1)
    assert traits["vip"] is True


def test_values_are_copied_not_shared() -> None:
    lines = ["Storgata 1"]
    incoming: dict[str, Any] = {"address": {"city": "Oslo", "lines": lines}}
    traits: dict[str, Any] = {}
    apply_traits(traits, {}, incoming, T1)
    lines.append("changed")
    assert traits == {"address": {"city": "Oslo", "lines": ["Storgata 1"]}}


def test_nested_traits_are_replaced_whole() -> None:
    traits: dict[str, Any] = {}
    times: dict[str, str] = {}
    apply_traits(traits, times, {"address": {"city": "Oslo", "country": "NO"}}, T1)
    apply_traits(traits, times, {"address": {"city": "Bergen"}}, T2)
    assert traits == {"address": {"city": "Bergen"}}


def test_snake_case_reserved_traits_become_camel_case() -> None:
    assert normalise_traits(
        {"first_name": "Ana", "last_name": "Lima", "created_at": "2020-01-01", "plan_id": 1}
    ) == {"firstName": "Ana", "lastName": "Lima", "createdAt": "2020-01-01", "plan_id": 1}


def test_camel_case_wins_when_both_spellings_arrive() -> None:
    assert normalise_traits({"first_name": "snake", "firstName": "camel"}) == {"firstName": "camel"}


@pytest.mark.parametrize(
    ("email", "stored"),
    [("  Ana.Lima@Example.COM ", "ana.lima@example.com"), ("   ", None), (42, 42)],
)
def test_email_is_trimmed_and_lower_cased(email: Any, stored: Any) -> None:
    assert normalise_traits({"email": email}) == {"email": stored}


def test_empty_email_removes_the_trait() -> None:
    traits: dict[str, Any] = {"email": "a@b.c"}
    times = {"email": T1}
    assert apply_traits(traits, times, {"email": " "}, T2)
    assert traits == {}


def test_name_is_derived_from_first_and_last_name() -> None:
    traits: dict[str, Any] = {}
    times: dict[str, str] = {}
    apply_traits(traits, times, {"first_name": " Ana ", "lastName": "Lima"}, T1)
    assert traits["name"] == "Ana Lima"
    assert times["name"] == T1
    apply_traits(traits, times, {"lastName": "Souza"}, T2)
    assert traits["name"] == "Ana Souza"
    apply_traits(traits, times, {"firstName": None, "lastName": None}, T3)
    assert "name" not in traits


def test_first_name_alone_derives_a_name() -> None:
    traits: dict[str, Any] = {}
    apply_traits(traits, {}, {"firstName": "Ana"}, T1)
    assert traits == {"firstName": "Ana", "name": "Ana"}


def test_a_sent_name_is_not_overwritten_by_a_derived_one() -> None:
    traits: dict[str, Any] = {}
    times: dict[str, str] = {}
    apply_traits(traits, times, {"name": "Dr. Ana Lima", "firstName": "Ana"}, T1)
    assert traits["name"] == "Dr. Ana Lima"
    apply_traits(traits, times, {"firstName": "Anna"}, T2)
    assert traits["name"] == "Dr. Ana Lima"


@pytest.mark.parametrize(
    ("value", "normalised"),
    [
        ("1990-05-17", "1990-05-17"),
        ("1990-05-17T00:00:00.000Z", "1990-05-17"),
        (" 1990/05/17 ", "1990-05-17"),
        ("19900517", "1990-05-17"),
        ("1990.05.17 08:00", "1990-05-17"),
        ("1990-02-30", "1990-02-30"),  # no such day: kept as sent
        ("1990-05/17", "1990-05/17"),  # mixed separators: kept
        ("May 17, 1990", "May 17, 1990"),
        (19900517, 19900517),
        (None, None),
    ],
)
def test_birthday(value: Any, normalised: Any) -> None:
    assert normalise_birthday(value) == normalised
    assert normalise_traits({"birthday": value}) == {"birthday": normalised}


def test_merge_traits_takes_the_newer_per_trait() -> None:
    a = ({"plan": "pro", "city": "Oslo", "vip": True}, {"plan": T2, "city": T1, "vip": T1})
    b = ({"plan": "free", "city": "Lund", "age": 40}, {"plan": T1, "city": T3, "age": T1})
    traits, times = merge_traits(*a, *b)
    assert traits == {"plan": "pro", "city": "Lund", "vip": True, "age": 40}
    assert times == {"plan": T2, "city": T3, "vip": T1, "age": T1}


def test_merge_traits_ties_go_to_a_and_removals_stay_removed() -> None:
    a_traits = {"plan": "pro", "phone": "+47"}
    a_times = {"plan": T1, "phone": T1}
    b_traits = {"plan": "free"}
    b_times = {"plan": T1, "phone": T2}  # b removed the phone later
    traits, times = merge_traits(a_traits, a_times, b_traits, b_times)
    assert traits == {"plan": "pro"}
    assert times == {"plan": T1, "phone": T2}
    assert a_traits == {"plan": "pro", "phone": "+47"}  # inputs untouched


def test_merge_traits_treats_a_trait_without_time_as_oldest() -> None:
    traits, times = merge_traits({"x": 1}, {}, {"x": 2}, {"x": T1})
    assert (traits, times) == ({"x": 2}, {"x": T1})
    traits, times = merge_traits({"x": 1}, {}, {"x": 2}, {})
    assert (traits, times) == ({"x": 1}, {})


@pytest.mark.parametrize(
    ("traits", "identities", "shown"),
    [
        ({"name": "Ana Lima", "email": "a@b.c"}, [("user_id", "u1")], "Ana Lima"),
        ({"name": " ", "email": "a@b.c", "phone": "+47"}, [], "a@b.c"),
        ({"phone": "+4712345678"}, [("user_id", "u1")], "+4712345678"),
        ({}, [("anonymous_id", "anon"), ("user_id", "u1"), ("user_id", "u2")], "u1"),
        ({}, [["user_id", "from-json"]], "from-json"),
        ({"name": 5}, [("anonymous_id", "anon")], None),
    ],
)
def test_display_name(traits: dict[str, Any], identities: list[Any], shown: str | None) -> None:
    assert display_name(traits, identities) == shown


updates = st.lists(
    st.tuples(
        st.sampled_from(["plan", "email", "age", "address"]),
        st.one_of(st.none(), st.integers(0, 3), st.sampled_from(["X@Y.Z", "b", ""])),
    ),
    max_size=12,
)


@settings(max_examples=200, deadline=None)
@given(st.data())
def test_arrival_order_does_not_matter(data: st.DataObject) -> None:
    """With distinct times, any arrival order ends in the same traits and times."""
    sent = data.draw(updates)
    timed = [(f"2026-01-01T00:00:{i:02d}.000Z", key, value) for i, (key, value) in enumerate(sent)]
    shuffled = data.draw(st.permutations(timed))
    results = []
    for order in (timed, shuffled):
        traits: dict[str, Any] = {}
        times: dict[str, str] = {}
        for at, key, value in order:
            apply_traits(traits, times, {key: value}, at)
        results.append((traits, times))
    assert results[0] == results[1]
