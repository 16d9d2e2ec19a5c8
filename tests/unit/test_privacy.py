"""The pure parts of privacy: which unapplied events are the person's, and how a
suppressed identifier is normalised and hashed."""

from __future__ import annotations

import hashlib
import hmac

from shopkeeper.identity.identifiers import Identifier
from shopkeeper.privacy.person import match_events
from shopkeeper.privacy.suppression import normalize_value, suppression_hash

ANA = Identifier("email", "ana@example.com")
TABLET = Identifier("anonymous_id", "tablet")
BOB = Identifier("user_id", "bob")


def test_events_carrying_a_known_identifier_match_and_bring_their_other_identifiers() -> None:
    matched, carried = match_events(
        {ANA},
        [(1, [ANA, TABLET]), (2, [BOB]), (3, [TABLET]), (4, []), (5, [BOB, ANA])],
    )
    assert matched == [1, 5]
    assert carried == {ANA, TABLET, BOB}
    # The next pass, with the tablet known, reaches its other event.
    assert match_events({ANA, TABLET}, [(1, [ANA, TABLET]), (2, [BOB]), (3, [TABLET])]) == (
        [1, 3],
        {ANA, TABLET},
    )


def test_the_hash_is_an_hmac_of_type_and_value_under_the_installation_key() -> None:
    key = bytes(range(32))
    expected = hmac.new(key, b"email\x00ana@example.com", hashlib.sha256).hexdigest()
    assert suppression_hash("email", "ana@example.com", key) == expected
    assert len(expected) == 64
    # Another installation's key, or the same value as another type, hashes differently.
    assert suppression_hash("email", "ana@example.com", bytes(32)) != expected
    assert suppression_hash("user_id", "42", key) != suppression_hash("device_id", "42", key)


def test_values_are_normalised_as_the_identity_extractor_stores_them() -> None:
    assert normalize_value("email", "  Ana@Example.COM ") == "ana@example.com"
    assert normalize_value("phone", "+47 912 34 567") == "+4791234567"
    assert normalize_value("phone", "912 34 567", "NO") == "+4791234567"
    # Not a number anyone can read as E.164 without a region: kept as typed (trimmed).
    assert normalize_value("phone", " 912 34 567 ") == "912 34 567"
    assert normalize_value("user_id", " 42 ") == "42"
    assert normalize_value("anonymous_id", "Abc-1") == "Abc-1"
