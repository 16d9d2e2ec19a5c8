from __future__ import annotations

import pytest

from shopkeeper.identity.identifiers import (
    Identifier,
    IdentifierExtractor,
    JunkFilter,
    normalize_email,
    normalize_phone,
)

extractor = IdentifierExtractor(JunkFilter(["banned-id"]), default_phone_region=None)


@pytest.mark.parametrize(
    "value",
    [
        "null",
        "NULL",
        " undefined ",
        "0",
        "anonymous",
        "Guest",
        "[object Object]",
        "",
        "00000000-0000-0000-0000-000000000000",
        "---",
        "none",
        "NaN",
        "banned-id",
        "0000",
    ],
)
def test_junk_values_never_identify(value: str) -> None:
    assert JunkFilter(["banned-id"]).is_junk(value)


@pytest.mark.parametrize("value", ["42", "u-1", "ana@example.com", "a1b2", "guest-7"])
def test_real_values_are_not_junk(value: str) -> None:
    assert not JunkFilter().is_junk(value)


def test_identify_yields_every_identifier_strongest_first() -> None:
    message = {
        "type": "identify",
        "userId": 42,
        "anonymousId": "anon-1",
        "traits": {"email": "  Ana@Example.COM ", "phone": "+47 912 34 567"},
        "context": {
            "device": {"id": "dev-1", "token": "push-abc"},
            "externalIds": [
                {"id": "cust_9", "type": "shopify_customer_id", "collection": "users"},
                {"id": "null", "type": "crm_id"},
            ],
        },
    }
    assert extractor.extract(message) == [
        Identifier("user_id", "42"),
        Identifier("shopify_customer_id", "cust_9"),
        Identifier("email", "ana@example.com"),
        Identifier("phone", "+4791234567"),
        Identifier("device_id", "dev-1"),
        Identifier("push_token", "push-abc"),
        Identifier("anonymous_id", "anon-1"),
    ]


def test_track_reads_email_from_context_traits_but_not_properties() -> None:
    message = {
        "type": "track",
        "anonymousId": "a",
        "properties": {"email": "gift@example.com"},
        "context": {"traits": {"email": "buyer@example.com"}},
    }
    assert extractor.extract(message) == [
        Identifier("email", "buyer@example.com"),
        Identifier("anonymous_id", "a"),
    ]


def test_group_traits_are_not_the_persons() -> None:
    message = {"type": "group", "userId": "u", "groupId": "g", "traits": {"email": "co@x.com"}}
    assert extractor.extract(message) == [Identifier("user_id", "u")]


def test_junk_ids_are_dropped() -> None:
    message = {"type": "track", "userId": "undefined", "anonymousId": "null"}
    assert extractor.extract(message) == []


def test_phone_needs_a_region_when_written_locally() -> None:
    assert normalize_phone("912 34 567", None) is None
    assert normalize_phone("912 34 567", "NO") == "+4791234567"
    assert normalize_phone("+1 123-456-7890", None) is None  # no US area code starts with 1
    assert normalize_phone("+1 650-253-0000", None) == "+16502530000"
    assert normalize_phone("not a phone", "US") is None


def test_phone_region_comes_from_the_message() -> None:
    message = {
        "type": "identify",
        "userId": "u",
        "traits": {"phone": "081 234 5678"},
        "context": {"locale": "th-TH"},
    }
    assert Identifier("phone", "+66812345678") in extractor.extract(message)


def test_email_must_look_like_one() -> None:
    assert normalize_email(" A@B.CO ") == "a@b.co"
    assert normalize_email("no-at-sign") is None
    assert normalize_email("two@@x.com") is None
    assert normalize_email(17) is None


def test_alias_previous_id_is_offered_as_user_and_anonymous_id() -> None:
    message = {"type": "alias", "userId": "new", "previousId": "old"}
    assert extractor.alias_candidates(message) == [
        Identifier("user_id", "old"),
        Identifier("anonymous_id", "old"),
    ]
    assert extractor.alias_candidates({"type": "alias", "previousId": "null"}) == []
