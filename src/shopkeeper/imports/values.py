"""Reading one field of a row: text, numbers, dates, yes/no flags, JSON lists.

Pure. CSV values arrive as text, JSON Lines values as JSON types; both are accepted.
A value that cannot be read raises RowError naming the field, never quoting the value
(it may be personal data).
"""

from __future__ import annotations

import hashlib
import math
from typing import Any

import msgspec

from shopkeeper.identity.identifiers import id_string, normalize_email
from shopkeeper.imports.mapping import MappedRow
from shopkeeper.imports.model import RowError
from shopkeeper.timeutil import ms_to_iso, parse_iso_ms

MAX_TEXT = 500
_MIN_MS = parse_iso_ms("1900-01-01T00:00:00Z")
_MAX_MS = parse_iso_ms("2200-01-01T00:00:00Z")
_TRUE = frozenset({"true", "yes", "y", "1", "t", "on", "subscribed", "opted_in", "opt_in"})
_FALSE = frozenset({"false", "no", "n", "0", "f", "off", "unsubscribed", "not_subscribed",
                    "opted_out", "opt_out"})  # fmt: skip


def text(row: MappedRow, target: str, limit: int = MAX_TEXT) -> str | None:
    value = row.values.get(target)
    if value is None:
        return None
    if isinstance(value, str):
        result: str | None = value
    elif isinstance(value, bool):
        result = "true" if value else "false"
    else:
        result = id_string(value)
    if result is None:
        raise RowError(f"{row.label(target)} must be text, not a JSON {type(value).__name__}")
    if len(result) > limit:
        raise RowError(f"{row.label(target)} is longer than {limit} characters")
    return result


def identifier(row: MappedRow, target: str) -> str | None:
    """An id: text or a whole number (CSV exports write 42 as "42.0" now and then)."""
    value = text(row, target)
    if value is not None and value.endswith(".0") and value[:-2].isdigit():
        return value[:-2]
    return value


def number(row: MappedRow, target: str, *, signed: bool = False) -> float | None:
    value = row.values.get(target)
    if value is None:
        return None
    result: float | None = None
    if isinstance(value, int | float) and not isinstance(value, bool):
        result = float(value)
    elif isinstance(value, str) and len(value) <= 40:
        try:
            result = float(value.strip())
        except ValueError:
            result = None
    if result is None or not math.isfinite(result) or abs(result) > 1e12:
        raise RowError(f"{row.label(target)} is not a number (write it as 1234.50)")
    if result < 0 and not signed:
        raise RowError(f"{row.label(target)} is negative")
    return int(result) if result.is_integer() else result


def flag(row: MappedRow, target: str) -> bool | None:
    value = row.values.get(target)
    if value is None:
        return None
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float) and value in (0, 1):
        return bool(value)
    if isinstance(value, str):
        word = value.strip().casefold().replace(" ", "_").replace("-", "_")
        if word in _TRUE:
            return True
        if word in _FALSE:
            return False
    raise RowError(f"{row.label(target)} is not a yes/no value (true, false, yes, no, 1, 0)")


def time_ms(row: MappedRow, target: str) -> int | None:
    """An ISO-8601 date or date-time (UTC when it names no zone), or epoch seconds or
    milliseconds."""
    value = row.values.get(target)
    if value is None:
        return None
    ms: int | None = None
    if isinstance(value, int | float) and not isinstance(value, bool):
        ms = int(value * 1000) if abs(value) < 1e11 else int(value)
    elif isinstance(value, str):
        stripped = value.strip()
        if stripped.isdigit() and len(stripped) <= 13:
            ms = int(stripped) * (1000 if len(stripped) <= 11 else 1)
        else:
            try:
                ms = parse_iso_ms(stripped)
            except (ValueError, OverflowError):
                ms = None
    if ms is None:
        raise RowError(
            f"{row.label(target)} is not a date (write it as 2024-03-05 or 2024-03-05T14:30:00Z)"
        )
    if not _MIN_MS <= ms < _MAX_MS:
        raise RowError(f"{row.label(target)} is not between the years 1900 and 2200")
    return ms


def iso(ms: int | None) -> str | None:
    return ms_to_iso(ms) if ms is not None else None


def json_list(row: MappedRow, target: str) -> list[Any] | None:
    value = row.values.get(target)
    if value is None:
        return None
    if isinstance(value, str):
        try:
            value = msgspec.json.decode(value)
        except msgspec.DecodeError:
            raise RowError(f"{row.label(target)} is not valid JSON") from None
    if not isinstance(value, list) or not all(isinstance(item, dict) for item in value):
        raise RowError(f"{row.label(target)} must be a JSON list of objects")
    return value


def derived_anonymous_id(type_: str, value: str) -> str:
    """A stable anonymous id for a record that names a person only by email or phone,
    so that every message needs no userId yet all of them land on one profile. A hash:
    the id itself does not reveal the address."""
    digest = hashlib.sha256(f"{type_}:{value}".encode()).hexdigest()[:32]
    return f"imp-{type_}-{digest}"


def phone_digits(phone: str) -> str:
    """A phone number's digits (with its leading +), so that spacing does not change the
    id derived from it."""
    digits = "".join(char for char in phone if char.isdigit())
    return f"+{digits}" if phone.strip().startswith("+") else digits


class Contact(msgspec.Struct, frozen=True):
    """Who a row is about: the customer id, email and phone it gives (at least one)."""

    user_id: str | None
    email: str | None
    phone: str | None

    def identity(self) -> dict[str, str]:
        """The message's userId, else a stable anonymousId derived from email or phone."""
        if self.user_id is not None:
            return {"userId": self.user_id}
        if self.email is not None:
            return {"anonymousId": derived_anonymous_id("email", self.email)}
        assert self.phone is not None
        return {"anonymousId": derived_anonymous_id("phone", phone_digits(self.phone))}


def contact(row: MappedRow, missing: str) -> Contact:
    """The row's customer id, email (normalized; an invalid one is an error) and phone;
    RowError(`missing`) when it has none of them."""
    user_id = identifier(row, "user_id")
    raw_email = text(row, "email")
    email = normalize_email(raw_email) if raw_email is not None else None
    if raw_email is not None and email is None:
        raise RowError(f"{row.label('email')} is not a valid email address")
    phone = text(row, "phone", 100)
    if user_id is None and email is None and phone is None:
        raise RowError(missing)
    return Contact(user_id, email, phone)
