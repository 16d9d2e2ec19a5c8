"""The fields an export or an audience sync can carry, and how each is read from a
profile. Pure: members.py reads the rows, this module decides what they mean.

A field list is written the way a marketer would: `email,first_name,country`, a trait
path (`traits.address.city`), a computed attribute (`orders_count`, or
`computed.last_order.total`).
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from shopkeeper.identity.identifiers import normalize_email, normalize_phone
from shopkeeper.profiles.context_attrs import country_code
from shopkeeper.segments.lang.fields import COMPUTED

# The fields every profile can answer, with what they are (for error messages and docs).
BUILT_IN: dict[str, str] = {
    "profile_id": "the profile's id",
    "email": "the email identity, else traits.email",
    "phone": "the phone identity (E.164), else traits.phone read in the person's country",
    "user_id": "the shop's user id",
    "first_name": "traits.firstName (or first_name), else the first word of traits.name",
    "last_name": "traits.lastName (or last_name), else the rest of traits.name",
    "name": "traits.name, else first and last name",
    "country": "computed.country, else traits.address.country (ISO 3166 alpha-2)",
    "city": "traits.address.city, else computed.city",
    "postal_code": "traits.address.postalCode (or postal_code, zip)",
    "locale": "computed.locale",
}
DEFAULT_FIELDS = ("profile_id", "email", "phone", "first_name", "last_name", "country")
MAX_FIELDS = 100

_PART = re.compile(r"^[A-Za-z0-9_\-$]{1,100}$")


class UnknownField(ValueError):
    def __init__(self, message: str, name: str) -> None:
        super().__init__(message)
        self.name = name


@dataclass(frozen=True, slots=True)
class ExportField:
    name: str  # as written, and the column's header
    source: Literal["built_in", "trait", "computed"]
    path: tuple[str, ...] = ()


def parse_field(name: str) -> ExportField:
    name = name.strip()
    if name in BUILT_IN:
        return ExportField(name, "built_in")
    parts = name.split(".")
    if not all(_PART.match(part) for part in parts):
        raise UnknownField(
            f'"{name}" is not a field name: parts are letters, digits, "_" and "-", '
            "separated by dots",
            name,
        )
    head, rest = parts[0], tuple(parts[1:])
    if head == "traits" and rest:
        return ExportField(name, "trait", rest)
    if head == "computed" and rest:
        if rest[0] not in COMPUTED:
            raise UnknownField(_unknown(rest[0], COMPUTED, "computed attribute"), name)
        return ExportField(name, "computed", rest)
    if head in COMPUTED:
        return ExportField(name, "computed", (head, *rest))
    raise UnknownField(_unknown(name, [*BUILT_IN, *COMPUTED], "field"), name)


def _unknown(name: str, known: Iterable[str], what: str) -> str:
    close = difflib.get_close_matches(name, list(known), n=1, cutoff=0.75)
    hint = f" Did you mean {close[0]}?" if close else ""
    return (
        f'There is no {what} "{name}".{hint} Fields are '
        + ", ".join(BUILT_IN)
        + ", a computed attribute (orders_count...), or a trait path (traits.plan)."
    )


def parse_fields(
    value: str | Iterable[str] | None, default: Iterable[str] = DEFAULT_FIELDS
) -> list[ExportField]:
    """`email,first_name,traits.plan` (or a list) -> fields in that order, each once.
    Empty or None: the default. Raises UnknownField."""
    names = value.split(",") if isinstance(value, str) else list(value or [])
    names = [name.strip() for name in names if name and name.strip()]
    if not names:
        names = list(default)
    if len(names) > MAX_FIELDS:
        raise UnknownField(f"At most {MAX_FIELDS} fields, not {len(names)}.", names[MAX_FIELDS])
    out: dict[str, ExportField] = {}
    for name in names:
        parsed = parse_field(name)
        out.setdefault(parsed.name, parsed)
    return list(out.values())


@dataclass(frozen=True, slots=True)
class ProfileData:
    """What an export reads about one profile; `exists` is False for an erased one."""

    profile_id: int
    exists: bool = True
    traits: Mapping[str, Any] = field(default_factory=dict)
    computed: Mapping[str, Any] = field(default_factory=dict)
    # The most recently seen value of each identifier type (email, phone, user_id).
    identities: Mapping[str, str] = field(default_factory=dict)


def _path(data: Any, path: Iterable[str]) -> Any:
    for part in path:
        if not isinstance(data, Mapping):
            return None
        data = data.get(part)
    return data


def _first_text(*values: Any) -> str | None:
    for value in values:
        if isinstance(value, str) and value.strip():
            return value.strip()
    return None


def _name_parts(traits: Mapping[str, Any]) -> tuple[str | None, str | None]:
    first = _first_text(traits.get("firstName"), traits.get("first_name"))
    last = _first_text(traits.get("lastName"), traits.get("last_name"))
    if first is None and last is None:
        # Segment's spec allows a single `name`; split it only when it has two words or
        # more (a guess, but the one every advertising upload tool makes).
        words = (_first_text(traits.get("name")) or "").split()
        if len(words) >= 2:
            return words[0], " ".join(words[1:])
    return first, last


def _address(traits: Mapping[str, Any], *keys: str) -> Any:
    address = traits.get("address")
    if not isinstance(address, Mapping):
        return None
    return _first_text(*(address.get(key) for key in keys))


def country_of(data: ProfileData) -> str | None:
    # computed.country already prefers where the person is (GeoIP) over their language.
    computed = data.computed.get("country")
    if isinstance(computed, str) and computed:
        return computed
    typed = _address(data.traits, "country")
    return country_code(typed) if typed else None


def phone_of(data: ProfileData, default_region: str | None) -> str | None:
    """E.164, or None when no phone can be read as a valid number."""
    held = data.identities.get("phone")
    if held:
        return held
    return normalize_phone(data.traits.get("phone"), country_of(data) or default_region)


def built_in_value(name: str, data: ProfileData, default_region: str | None) -> Any:
    traits = data.traits
    if name == "profile_id":
        return data.profile_id
    if name == "email":
        return data.identities.get("email") or normalize_email(traits.get("email"))
    if name == "phone":
        return phone_of(data, default_region)
    if name == "user_id":
        return data.identities.get("user_id")
    if name in ("first_name", "last_name"):
        first, last = _name_parts(traits)
        return first if name == "first_name" else last
    if name == "name":
        first, last = _name_parts(traits)
        return _first_text(traits.get("name")) or " ".join(p for p in (first, last) if p) or None
    if name == "country":
        return country_of(data)
    if name == "city":
        # The address a person typed beats the city their IP address was placed in.
        return _address(traits, "city") or _first_text(data.computed.get("city"))
    if name == "postal_code":
        return _address(traits, "postalCode", "postal_code", "zip")
    if name == "locale":
        return _first_text(data.computed.get("locale"))
    raise KeyError(name)


def field_value(spec: ExportField, data: ProfileData, default_region: str | None) -> Any:
    if spec.source == "built_in":
        if not data.exists and spec.name != "profile_id":
            return None
        return built_in_value(spec.name, data, default_region)
    if spec.source == "trait":
        return _path(data.traits, spec.path)
    return _path(data.computed, spec.path)


def identifier_values(data: ProfileData, default_region: str | None) -> dict[str, Any]:
    """The identifier fields hashing.py normalises, raw (phone already E.164)."""
    if not data.exists:
        return {}
    names = ("email", "phone", "first_name", "last_name", "city", "country", "postal_code")
    return {name: built_in_value(name, data, default_region) for name in names}
