"""Identifiers normalised and hashed the way each advertising platform matches them.

Pure functions. A platform matches a person only when our SHA-256 of an identifier
equals its own, byte for byte, so each rule below follows the platform's documentation
(cited beside it) and the tests check the platforms' published examples.

Phones come in already read as E.164 ("+4791234567", shopkeeper.identity.identifiers
.normalize_phone): reading a local number needs the person's country, which the caller
knows and this module does not.
"""

from __future__ import annotations

import hashlib
import unicodedata
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Literal

Platform = Literal["meta", "google"]
PLATFORMS: tuple[Platform, ...] = ("meta", "google")

# The identifier fields a hashed record can hold (names from fields.py).
IDENTIFIER_FIELDS = ("email", "phone", "first_name", "last_name", "city", "country", "postal_code")


def sha256_hex(text: str) -> str:
    """Lower-case hex SHA-256 of the UTF-8 bytes (the encoding both platforms document)."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _text(value: object) -> str | None:
    if not isinstance(value, str):
        return None
    # NFC so that "é" typed as e + combining accent hashes like the composed letter.
    text = unicodedata.normalize("NFC", value).strip()
    return text or None


def _email_parts(value: object) -> tuple[str, str] | None:
    text = _text(value)
    if text is None:
        return None
    local, at, domain = "".join(text.split()).lower().rpartition("@")
    if not at or not local or "." not in domain:
        return None
    return local, domain


def _letters(value: object) -> str | None:
    """Lower case, letters of any script only (no punctuation, digits or spaces)."""
    text = _text(value)
    if text is None:
        return None
    letters = "".join(ch for ch in text.lower() if ch.isalpha())
    return letters or None


def _country_code(value: object) -> str | None:
    text = _text(value)
    if text is None or len(text) != 2 or not text.isascii() or not text.isalpha():
        return None
    return text.upper()


def _e164_digits(value: object) -> str | None:
    text = _text(value)
    if text is None or not text.startswith("+"):
        return None
    digits = "".join(ch for ch in text if ch.isdigit()).lstrip("0")
    # E.164: a country code and subscriber number, at most 15 digits in all.
    return digits if 7 <= len(digits) <= 15 else None


# -- Meta (Custom Audiences) ------------------------------------------------------------------
# Rules: https://developers.facebook.com/docs/marketing-api/audiences/guides/custom-audiences
# ("Hashing and normalization"), the same table as the Conversions API's customer
# information parameters (https://developers.facebook.com/docs/marketing-api/
# conversions-api/parameters/customer-information-parameters), which also gives worked
# examples with their SHA-256 (used in the tests).


def meta_email(value: object) -> str | None:
    """Trim and lower-case: "John_Smith@gmail.com" -> "john_smith@gmail.com"."""
    parts = _email_parts(value)
    return f"{parts[0]}@{parts[1]}" if parts else None


def meta_phone(e164: object) -> str | None:
    """Digits only, with the country code, no leading zeros: "+16505551212" -> "16505551212"."""
    return _e164_digits(e164)


def meta_name(value: object) -> str | None:
    """First or last name: lower case, no punctuation; letters outside a-z are kept (and
    hashed as UTF-8): "Valéry" -> "valéry", "O'Brien" -> "obrien"."""
    return _letters(value)


def meta_city(value: object) -> str | None:
    """Lower case, no punctuation, no special characters, no spaces: "New York" -> "newyork"."""
    return _letters(value)


def meta_country(value: object) -> str | None:
    """ISO 3166-1 alpha-2 in lower case: "US" -> "us"."""
    code = _country_code(value)
    return code.lower() if code else None


def meta_zip(value: object, country: object = None) -> str | None:
    """Lower case, no spaces or dashes; U.S. zip codes keep their first five digits."""
    text = _text(value)
    if text is None:
        return None
    compact = "".join(ch for ch in text.lower() if ch not in " -")
    if _country_code(country) == "US":
        compact = compact[:5]
    return compact or None


# -- Google (Customer Match, Data Manager API) -----------------------------------------------
# Rules: https://developers.google.com/data-manager/api/devguides/concepts/formatting and
# https://developers.google.com/google-ads/api/docs/remarketing/audience-types/customer-match
# Worked examples with their SHA-256 (used in the tests):
# https://developers.google.com/data-manager/api/devguides/audiences/send-audience-members

_GOOGLE_MAIL = frozenset({"gmail.com", "googlemail.com"})


def google_email(value: object) -> str | None:
    """Lower case, no whitespace anywhere. For gmail.com and googlemail.com addresses only,
    the formatting guide says to remove every dot before the @ and the plus sign with
    everything after it ("cloudy.sanfrancisco+shopping@gmail.com" ->
    "cloudysanfrancisco@gmail.com"); other domains keep dots and plus signs
    ("user.name+NYC@Example.com" -> "user.name+nyc@example.com"). The Google Ads API's
    Customer Match page calls removing the gmail dots optional ("they'll still be
    accepted"); the Data Manager guide asks for it, so we do it."""
    parts = _email_parts(value)
    if parts is None:
        return None
    local, domain = parts
    if domain in _GOOGLE_MAIL:
        local = local.split("+", 1)[0].replace(".", "")
        if not local:
            return None
    return f"{local}@{domain}"


def google_phone(e164: object) -> str | None:
    """E.164 with the plus sign: "+1 800-555-0100" -> "+18005550100"."""
    digits = _e164_digits(e164)
    return f"+{digits}" if digits else None


def google_name(value: object) -> str | None:
    """Lower case, leading and trailing whitespace trimmed (prefixes are the shop's data)."""
    text = _text(value)
    return text.lower() if text else None


def google_country(value: object) -> str | None:
    """ISO 3166-1 alpha-2, not hashed: "no" -> "NO"."""
    return _country_code(value)


def google_postal_code(value: object) -> str | None:
    """Not hashed; trimmed."""
    return _text(value)


# -- hashed records -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class HashedColumn:
    field: str  # the identifier field it comes from (IDENTIFIER_FIELDS)
    header: str  # the column name in the platform's customer-list file upload
    key: str  # the name in a webhook record (the platform's API field name)
    normalize: Callable[[Mapping[str, object]], str | None]
    hashed: bool


def _of(
    field: str, fn: Callable[[object], str | None]
) -> Callable[[Mapping[str, object]], str | None]:
    return lambda values: fn(values.get(field))


COLUMNS: dict[Platform, tuple[HashedColumn, ...]] = {
    # Meta's customer-list file identifiers, and the Marketing API's schema names.
    "meta": (
        HashedColumn("email", "email", "EMAIL", _of("email", meta_email), True),
        HashedColumn("phone", "phone", "PHONE", _of("phone", meta_phone), True),
        HashedColumn("first_name", "fn", "FN", _of("first_name", meta_name), True),
        HashedColumn("last_name", "ln", "LN", _of("last_name", meta_name), True),
        HashedColumn("city", "ct", "CT", _of("city", meta_city), True),
        HashedColumn("country", "country", "COUNTRY", _of("country", meta_country), True),
        HashedColumn(
            "postal_code",
            "zip",
            "ZIP",
            lambda values: meta_zip(values.get("postal_code"), values.get("country")),
            True,
        ),
    ),
    # Google's hashed-upload headers, and the Google Ads API UserIdentifier field names.
    # Country and zip are sent in clear: Google does not hash them.
    "google": (
        HashedColumn("email", "Email", "hashed_email", _of("email", google_email), True),
        HashedColumn("phone", "Phone", "hashed_phone_number", _of("phone", google_phone), True),
        HashedColumn(
            "first_name", "First Name", "hashed_first_name", _of("first_name", google_name), True
        ),
        HashedColumn(
            "last_name", "Last Name", "hashed_last_name", _of("last_name", google_name), True
        ),
        HashedColumn("country", "Country", "country_code", _of("country", google_country), False),
        HashedColumn(
            "postal_code", "Zip", "postal_code", _of("postal_code", google_postal_code), False
        ),
    ),
}


def columns_for(platform: Platform, fields: list[str]) -> list[HashedColumn]:
    """The platform's columns for these identifier fields, in the platform's order.
    Raises ValueError naming a field the platform cannot match on."""
    known = {column.field: column for column in COLUMNS[platform]}
    for field in fields:
        if field not in known:
            raise ValueError(
                f'{platform} audiences cannot match on "{field}"; they take ' + ", ".join(known)
            )
    wanted = set(fields)
    return [column for column in COLUMNS[platform] if column.field in wanted]


def hashed_values(
    columns: list[HashedColumn], identifiers: Mapping[str, object]
) -> list[str | None]:
    """One person's values for these columns: normalised, and hashed where the platform
    hashes; None where the person has no usable value."""
    out: list[str | None] = []
    for column in columns:
        value = column.normalize(identifiers)
        out.append(sha256_hex(value) if value is not None and column.hashed else value)
    return out
