"""Identifier normalisation and hashing for advertising platforms, checked against the
examples the platforms publish (input, normalised form and SHA-256, copied from their
documentation), plus the rules around them."""

from __future__ import annotations

import hashlib

import pytest

from shopkeeper.identity.identifiers import normalize_phone
from shopkeeper.segments.audiences import hashing as hs


def sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


# -- Meta: published examples -------------------------------------------------------------
# https://developers.facebook.com/docs/marketing-api/conversions-api/parameters/customer-information-parameters
# (the same normalisation table as the Custom Audiences guide's "Hashing and normalization":
# https://developers.facebook.com/docs/marketing-api/audiences/guides/custom-audiences)


def test_meta_published_email() -> None:
    # "Input: John_Smith@gmail.com / Normalized format: john_smith@gmail.com"
    assert hs.meta_email("John_Smith@gmail.com") == "john_smith@gmail.com"
    assert hs.sha256_hex(hs.meta_email(" John_Smith@gmail.com ") or "") == (
        "62a14e44f765419d10fea99367361a727c12365e2520f32218d505ed9aa0f62f"
    )


def test_meta_published_phone_through_our_e164_reading() -> None:
    # "Input: US phone number (650)555-1212 / Normalized format: 16505551212"
    e164 = normalize_phone("(650)555-1212", "US")
    assert e164 == "+16505551212"
    assert hs.meta_phone(e164) == "16505551212"
    assert hs.sha256_hex(hs.meta_phone(e164) or "") == (
        "e323ec626319ca94ee8bff2e4c87cf613be6ea19919ed1364124e16807ab3176"
    )


@pytest.mark.parametrize(
    ("raw", "normalized", "digest"),
    [
        ("Mary", "mary", "6915771be1c5aa0c886870b6951b03d7eafc121fea0e80a5ea83beb7c449f4ec"),
        ("정", "정", "8fa8cd9c440be61d0151429310034083132b35975c4bea67fdd74158eb51db14"),
        ("Valéry", "valéry", "08e1996b5dd49e62a4b4c010d44e4345592a863bb9f8e3976219bac29417149c"),
    ],
)
def test_meta_published_first_names(raw: str, normalized: str, digest: str) -> None:
    assert hs.meta_name(raw) == normalized
    assert hs.sha256_hex(normalized) == digest


def test_meta_published_country() -> None:
    # country: "United States" -> "us"; we read codes, not names (fields.py turns names
    # into codes before this).
    assert hs.meta_country("US") == "us"
    assert hs.sha256_hex("us") == "79adb2a2fce5c6ba215fe5f27f532d4e7edbac4b6a5e09e1ef3a08084a904621"


def test_meta_rules_without_published_digests() -> None:
    # No published hash for these: the expected values follow the documented rules.
    assert hs.meta_name(" O'Brien-Smith ") == "obriensmith"
    assert hs.meta_name("Vale\u0301ry") == "valéry"  # decomposed accent: same bytes as composed
    assert hs.meta_city("New York") == "newyork"
    assert hs.meta_city("St. Louis") == "stlouis"
    assert hs.meta_zip("94035-1234", "US") == "94035"
    assert hs.meta_zip("M1 1AE", "GB") == "m11ae"
    assert hs.meta_phone("+47 912 34 567") == "4791234567"
    assert hs.meta_phone("91234567") is None  # no country code: cannot be matched
    assert hs.meta_email("not an email") is None
    assert hs.meta_country("Norway") is None


# -- Google: published examples -----------------------------------------------------------
# https://developers.google.com/data-manager/api/devguides/audiences/send-audience-members
# ("Prepare audience data": raw members, the same after formatting, then hashed and hex
# encoded), formatted per https://developers.google.com/data-manager/api/devguides/concepts/formatting

GOOGLE_PUBLISHED_EMAILS = [
    ("dana@example.com", "dana@example.com",
     "07e2f1394b0ea80e2adca010ea8318df697001a005ba7452720edda4b0ce57b3"),
    ("DanaM@example.com", "danam@example.com",
     "1df6b43bc68dd38eca94e6a65b4f466ae537b796c81a526918b40ac4a7b906c7"),
    ("ALEXF@example.com", "alexf@example.com",
     "19de0a9906ebee29fe82087be5ec44f3c01e40730bc808b663c71f19dd6b12f2"),
    ("AlexF@cymbalgroup.com", "alexf@cymbalgroup.com",
     "7d2d80e240594dcee2e57f57885ee286c4b232dd142234d7a0af6d31cc86679b"),
    ("alexF@altostrat.com", "alexf@altostrat.com",
     "063c45291827d4994f98357b72862b25885834fd53cf8f0e4af359916fc03c62"),
    ("quinn@CYMBALGROUP.com", "quinn@cymbalgroup.com",
     "05bb62526f091b45d20e243d194766cca8869137421047dc53fa4876d111a6f0"),
    ("baklavainthebalkans@gmail.com", "baklavainthebalkans@gmail.com",
     "f1fcde379f31f4d446b76ee8f34860eca2288adc6b6d6c0fdc56d9eee75a2fa5"),
    ("rosario@example.org", "rosario@example.org",
     "83a834cc5327bc4dee7c5408988040dc5813c7662611cd93b707aff72bf7d33f"),
    ("cloudySanFrancisco@GMAIL.com", "cloudysanfrancisco@gmail.com",
     "223ebda6f6889b1494551ba902d9d381daf2f642bae055888e96343d53e9f9c4"),
]  # fmt: skip

GOOGLE_PUBLISHED_PHONES = [
    ("+1-800-555-0100", "+18005550100",
     "fb4f73a6ec5fdb7077d564cdd22c3554b43ce49168550c3b12c547b78c517b30"),
    ("+1 800-555-0101", "+18005550101",
     "61d6c2976b5d92b1ad63073a12fddd26040cd980067d03a93dd1cc50f1a3ac68"),
    ("+1 800-555-0102", "+18005550102",
     "c5383c2eeada28210d27f011bc127d4f9562cf38ff0c9bba33dd45ae79b9fe7c"),
    ("+1-800-555-0110", "+18005550110",
     "525c2390a4e2a9766fa8ddc341dd10414603baebefa401f5a5e29f55e176525d"),
]  # fmt: skip


@pytest.mark.parametrize(("raw", "normalized", "digest"), GOOGLE_PUBLISHED_EMAILS)
def test_google_published_emails(raw: str, normalized: str, digest: str) -> None:
    assert hs.google_email(raw) == normalized
    assert hs.sha256_hex(normalized) == digest


@pytest.mark.parametrize(("raw", "normalized", "digest"), GOOGLE_PUBLISHED_PHONES)
def test_google_published_phones_through_our_e164_reading(
    raw: str, normalized: str, digest: str
) -> None:
    assert hs.google_phone(normalize_phone(raw, None)) == normalized
    assert hs.sha256_hex(normalized) == digest


def test_google_gmail_dots_and_plus_only_for_google_mail() -> None:
    # Both examples are in the formatting guide (no digests there).
    assert hs.google_email("cloudy.sanfrancisco+shopping@gmail.com") == (
        "cloudysanfrancisco@gmail.com"
    )
    assert hs.google_email("user.name+NYC@Example.com") == "user.name+nyc@example.com"
    assert hs.google_email("j.o.e+x@googlemail.com") == "joe@googlemail.com"
    # "Trim leading, trailing and intermediate whitespace."
    assert hs.google_email("  ana @ example.com ") == "ana@example.com"
    # Meta keeps the dots and the plus: each platform hashes what it documents.
    assert hs.meta_email("cloudy.sanfrancisco+shopping@gmail.com") == (
        "cloudy.sanfrancisco+shopping@gmail.com"
    )


def test_google_phone_keeps_the_plus_and_meta_drops_it() -> None:
    e164 = "+4791234567"
    assert hs.google_phone(e164) == "+4791234567"
    assert hs.meta_phone(e164) == "4791234567"
    assert sha(hs.google_phone(e164) or "") != sha(hs.meta_phone(e164) or "")


def test_hashed_values_per_platform_columns() -> None:
    identifiers = {
        "email": "CloudySanFrancisco@GMAIL.com",
        "phone": "+18005550110",
        "first_name": "Valéry",
        "last_name": "Dupont",
        "country": "US",
        "postal_code": "94035-1234",
        "city": "New York",
    }
    google = hs.columns_for("google", ["email", "phone", "country", "postal_code"])
    assert [c.header for c in google] == ["Email", "Phone", "Country", "Zip"]
    assert hs.hashed_values(google, identifiers) == [
        "223ebda6f6889b1494551ba902d9d381daf2f642bae055888e96343d53e9f9c4",
        "525c2390a4e2a9766fa8ddc341dd10414603baebefa401f5a5e29f55e176525d",
        "US",  # Google does not hash country and zip
        "94035-1234",
    ]
    meta = hs.columns_for("meta", ["first_name", "email", "country", "postal_code", "city"])
    assert [c.key for c in meta] == ["EMAIL", "FN", "CT", "COUNTRY", "ZIP"]
    assert hs.hashed_values(meta, identifiers) == [
        sha("cloudysanfrancisco@gmail.com"),
        "08e1996b5dd49e62a4b4c010d44e4345592a863bb9f8e3976219bac29417149c",
        sha("newyork"),
        "79adb2a2fce5c6ba215fe5f27f532d4e7edbac4b6a5e09e1ef3a08084a904621",
        sha("94035"),
    ]
    assert hs.hashed_values(meta, {}) == [None] * 5


def test_columns_for_refuses_what_a_platform_cannot_match_on() -> None:
    with pytest.raises(ValueError, match='google audiences cannot match on "city"'):
        hs.columns_for("google", ["email", "city"])
    with pytest.raises(ValueError, match=r"traits\.plan"):
        hs.columns_for("meta", ["traits.plan"])
