"""The pure rules of audiences: field lists, reading a profile's fields, the net change
of a stretch of membership history, members as of a mark, backoff, destination URLs."""

from __future__ import annotations

import random
import socket
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shopkeeper.segments.audiences.delta import backoff_ms, members_at_mark, net_changes
from shopkeeper.segments.audiences.destinations import DestinationRefused, check_url
from shopkeeper.segments.audiences.fields import (
    ExportField,
    ProfileData,
    UnknownField,
    field_value,
    parse_fields,
)

# -- field lists ----------------------------------------------------------------------------


def test_parse_fields_kinds_order_and_duplicates() -> None:
    parsed = parse_fields("email, traits.address.city,orders_count,computed.last_order.total,email")
    assert parsed == [
        ExportField("email", "built_in"),
        ExportField("traits.address.city", "trait", ("address", "city")),
        ExportField("orders_count", "computed", ("orders_count",)),
        ExportField("computed.last_order.total", "computed", ("last_order", "total")),
    ]
    assert [f.name for f in parse_fields(None)] == [
        "profile_id",
        "email",
        "phone",
        "first_name",
        "last_name",
        "country",
    ]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("emial", "Did you mean email?"),
        ("ordrs_count", "Did you mean orders_count?"),
        ("computed.nope", 'no computed attribute "nope"'),
        ("traits..x", "is not a field name"),
        ("favourite colour", "is not a field name"),
        ("plan", 'There is no field "plan"'),
    ],
)
def test_unknown_fields_say_what_is_wrong(text: str, message: str) -> None:
    with pytest.raises(UnknownField, match=message) as info:
        parse_fields(f"email,{text}")
    assert info.value.name == text.strip()


def _value(name: str, data: ProfileData, region: str | None = None) -> Any:
    return field_value(parse_fields([name])[0], data, region)


def test_field_values_prefer_identities_and_fall_back_to_traits() -> None:
    data = ProfileData(
        7,
        traits={
            "email": "Old@Example.com",
            "phone": "912 34 567",
            "name": "Ana Maria Lindqvist",
            "address": {"city": "Bergen", "country": "Norway", "postalCode": "5003"},
            "plan": {"tier": "gold"},
        },
        computed={"country": "SE", "city": "Stockholm", "locale": "nb-NO", "orders_count": 3},
        identities={"email": "ana@example.com", "user_id": "u-1"},
    )
    assert _value("email", data) == "ana@example.com"
    assert _value("user_id", data) == "u-1"
    # No phone identity: the trait, read in the person's country (computed.country: SE).
    assert _value("phone", data) == "+4691234567"
    assert _value("phone", ProfileData(7, traits={"phone": "912 34 567"}), "NO") == "+4791234567"
    assert _value("first_name", data) == "Ana"
    assert _value("last_name", data) == "Maria Lindqvist"
    assert _value("name", data) == "Ana Maria Lindqvist"
    assert _value("country", data) == "SE"
    assert _value("country", ProfileData(1, traits={"address": {"country": "Norway"}})) == "NO"
    assert _value("city", data) == "Bergen"
    assert _value("postal_code", data) == "5003"
    assert _value("locale", data) == "nb-NO"
    assert _value("orders_count", data) == 3
    assert _value("traits.plan.tier", data) == "gold"
    assert _value("traits.plan.missing", data) is None


def test_an_erased_profile_has_only_its_id() -> None:
    gone = ProfileData(9, exists=False)
    assert _value("profile_id", gone) == 9
    assert _value("email", gone) is None


# -- net change -------------------------------------------------------------------------------


def test_net_changes_collapse_per_profile() -> None:
    rows = [
        (1, True),  # entered: added
        (2, True),
        (2, False),  # entered then exited: nothing
        (3, False),
        (3, True),  # exited then entered: nothing
        (4, False),  # exited: removed
        (5, True),
        (5, False),
        (5, True),  # entered, exited, entered: added
    ]
    change = net_changes(rows)
    assert change.added == [1, 5]
    assert change.removed == [4]


@given(
    st.sets(st.integers(1, 20)),
    st.lists(st.tuples(st.integers(1, 20), st.booleans()), max_size=60),
)
def test_net_change_applied_to_the_start_gives_the_end(
    start: set[int], moves: list[tuple[int, bool]]
) -> None:
    """Replaying consistent history from a starting membership: the start plus the net
    change is the end, whatever happened in between."""
    members = set(start)
    rows = []
    for profile_id, _ in moves:
        entered = profile_id not in members  # history alternates per profile
        (members.add if entered else members.discard)(profile_id)
        rows.append((profile_id, entered))
    change = net_changes(rows)
    assert (start | set(change.added)) - set(change.removed) == members
    assert not set(change.added) & start
    assert set(change.removed) <= start


@given(
    st.sets(st.integers(1, 30)),
    st.lists(st.integers(1, 30), max_size=60),
)
def test_members_at_mark_undoes_later_history(mark_members: set[int], later: list[int]) -> None:
    members = set(mark_members)
    rows = []
    for profile_id in later:
        entered = profile_id not in members
        (members.add if entered else members.discard)(profile_id)
        rows.append((profile_id, entered))
    assert members_at_mark(sorted(members), rows) == sorted(mark_members)


def test_backoff_doubles_up_to_an_hour() -> None:
    assert [backoff_ms(n, 60_000) for n in (1, 2, 3, 4)] == [60_000, 120_000, 240_000, 480_000]
    assert backoff_ms(7, 60_000) == 3_600_000
    assert backoff_ms(500, 60_000) == 3_600_000


# -- destination URLs --------------------------------------------------------------------------


def resolver(*addresses: str) -> Any:
    def resolve(host: str, port: int, family: int, kind: int) -> list[tuple[Any, ...]]:
        family_of = socket.AF_INET6 if ":" in addresses[0] else socket.AF_INET
        return [(family_of, kind, 6, "", (address, port)) for address in addresses]

    return resolve


def test_public_destinations_pass() -> None:
    check_url(
        "https://hooks.example.com/a?b=c", allow_private=False, resolve=resolver("93.184.216.34")
    )
    check_url("http://93.184.216.34:8080/hook", allow_private=False)  # a literal: no lookup


@pytest.mark.parametrize(
    ("addresses", "problem"),
    [
        (("127.0.0.1",), "loopback"),
        (("10.1.2.3",), "private"),
        (("192.168.1.10",), "private"),
        (("169.254.169.254",), "link-local"),
        (("::1",), "loopback"),
        (("fe80::1%eth0",), "link-local"),
        (("::ffff:127.0.0.1",), "loopback"),
        (("100.64.0.1",), "not a public address"),
        (("0.0.0.0",), "not a unicast address"),  # noqa: S104 - resolved, not bound
        # One bad address among good ones is enough to refuse.
        (("93.184.216.34", "10.0.0.1"), "private"),
    ],
)
def test_private_destinations_are_refused(addresses: tuple[str, ...], problem: str) -> None:
    with pytest.raises(DestinationRefused, match=problem):
        check_url("https://hooks.example.com/", allow_private=False, resolve=resolver(*addresses))
    check_url("https://hooks.example.com/", allow_private=True, resolve=resolver(*addresses))


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("ftp://example.com/x", "https://"),
        ("file:///etc/passwd", "https://"),
        ("https://", "no host name"),
        ("https://user:secret@example.com/", "credentials in a header"),
        ("https://example.com:99999/", "not a URL"),
        ("https://" + "a" * 2000 + ".com/", "longer than"),
    ],
)
def test_malformed_urls_are_refused_even_when_private_is_allowed(url: str, message: str) -> None:
    with pytest.raises(DestinationRefused, match=message):
        check_url(url, allow_private=True)


def test_unresolvable_host() -> None:
    def fail(*_args: Any) -> list[Any]:
        raise socket.gaierror("Name or service not known")

    with pytest.raises(DestinationRefused, match="cannot be resolved"):
        check_url("https://nowhere.invalid/", allow_private=False, resolve=fail)


def test_rows_order_does_not_matter_for_members_at_mark_start() -> None:
    current = list(range(1, 50))
    random.Random(3).shuffle(current)
    assert members_at_mark(current, []) == list(range(1, 50))
