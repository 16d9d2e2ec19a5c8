"""Identifiers found in a message, normalised, with junk values thrown out.

Pure functions: the pipeline passes a decoded Segment message (a dict) and gets back the
identifiers that may link it to a profile, strongest first.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import phonenumbers

USER_ID = "user_id"
ANONYMOUS_ID = "anonymous_id"
EMAIL = "email"
PHONE = "phone"
DEVICE_ID = "device_id"
PUSH_TOKEN = "push_token"  # noqa: S105 - an identifier type, not a secret

BUILT_IN_TYPES = (USER_ID, EMAIL, PHONE, ANONYMOUS_ID, DEVICE_ID, PUSH_TOKEN)

# Strongest first. When a message's identifiers point at profiles that cannot all be
# merged, the stronger identifiers decide where the message goes. Custom ids from
# context.externalIds (a CRM or shop-system id) rank just after the user id.
_PRIORITY = {USER_ID: 0, EMAIL: 2, PHONE: 3, DEVICE_ID: 4, PUSH_TOKEN: 5, ANONYMOUS_ID: 6}
_CUSTOM_PRIORITY = 1

# Values that tracking code produces when an id is missing; they must never link two
# people. Compared case-insensitively after trimming.
BUILT_IN_JUNK = frozenset(
    {
        "",
        "null",
        "nil",
        "none",
        "undefined",
        "nan",
        "0",
        "-1",
        "anonymous",
        "anon",
        "guest",
        "unknown",
        "n/a",
        "na",
        "[object object]",
        "{}",
        "[]",
        "true",
        "false",
        "<nil>",
        "(null)",
        "user",
        "visitor",
        "default",
        "test",
        "email",
        "id",
    }
)

_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_NOT_ALNUM = re.compile(r"[^0-9a-z]")
_TYPE_NAME = re.compile(r"^[a-z][a-z0-9_]{0,99}$")
MAX_VALUE_LENGTH = 500


@dataclass(frozen=True, slots=True, order=True)
class Identifier:
    type: str
    value: str

    @property
    def priority(self) -> int:
        return _PRIORITY.get(self.type, _CUSTOM_PRIORITY)

    def __str__(self) -> str:
        return f"{self.type}:{self.value}"


class JunkFilter:
    """Decides which values are too generic to identify anyone."""

    def __init__(self, extra: Iterable[str] = ()) -> None:
        self._junk = BUILT_IN_JUNK | {value.strip().lower() for value in extra}

    def is_junk(self, value: str) -> bool:
        lowered = value.strip().lower()
        if lowered in self._junk:
            return True
        # "0000-0000", "00000000-0000-0000-0000-000000000000" (a zeroed advertising
        # id), "---": nothing in it tells one person from another.
        core = _NOT_ALNUM.sub("", lowered)
        return core == "" or core.strip("0") == ""


def id_string(value: Any) -> str | None:
    """Segment ids may arrive as numbers; the profile keeps them as strings."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, str):
        text = value.strip()
        return text or None
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, float):
        return repr(value)
    return None


def normalize_email(value: Any) -> str | None:
    if not isinstance(value, str):
        return None
    email = value.strip().lower()
    if len(email) > MAX_VALUE_LENGTH or not _EMAIL.match(email):
        return None
    return email


def normalize_phone(value: Any, region: str | None) -> str | None:
    """E.164 (+4791234567), or None when the number cannot be read as a valid one."""
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str) or not value.strip():
        return None
    text = value.strip()
    if not text.startswith("+") and not text.startswith("00") and not region:
        return None
    try:
        number = phonenumbers.parse(text, region.upper() if region else None)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_valid_number(number):
        return None
    return str(phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164))


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def phone_region(message: dict[str, Any], default: str | None) -> str | None:
    """The country to read a local phone number in: the message's own, else the shop's."""
    context = _dict(message.get("context"))
    for candidate in (
        _dict(_dict(message.get("traits")).get("address")).get("country"),
        _dict(context.get("location")).get("country"),
    ):
        if isinstance(candidate, str) and len(candidate.strip()) == 2:
            return candidate.strip().upper()
    locale = context.get("locale")
    if isinstance(locale, str):
        parts = re.split(r"[-_]", locale.strip())
        if len(parts) >= 2 and len(parts[-1]) == 2:
            return parts[-1].upper()
    return default


class IdentifierExtractor:
    def __init__(self, junk: JunkFilter, default_phone_region: str | None = None) -> None:
        self.junk = junk
        self.default_phone_region = default_phone_region

    def _keep(self, out: dict[Identifier, None], type_: str, value: str | None) -> None:
        if value is None or len(value) > MAX_VALUE_LENGTH or self.junk.is_junk(value):
            return
        out[Identifier(type_, value)] = None

    def extract(self, message: dict[str, Any]) -> list[Identifier]:
        """Identifiers of one message, strongest first, without duplicates.

        For `alias`, previousId is not included: whether it names a user id or an
        anonymous id depends on what is already known (see `alias_candidates`).
        """
        out: dict[Identifier, None] = {}
        context = _dict(message.get("context"))
        traits = _dict(message.get("traits")) if message.get("type") == "identify" else {}
        context_traits = _dict(context.get("traits"))

        self._keep(out, USER_ID, id_string(message.get("userId")))
        for ext in context.get("externalIds") or ():
            if not isinstance(ext, dict):
                continue
            ext_type = ext.get("type")
            if not isinstance(ext_type, str):
                continue
            ext_type = ext_type.strip().lower()
            if ext_type in ("email", "phone"):
                continue  # read below with their own normalisation
            if ext_type in ("user_id", "userid"):
                self._keep(out, USER_ID, id_string(ext.get("id")))
            elif _TYPE_NAME.match(ext_type) and ext_type not in BUILT_IN_TYPES:
                self._keep(out, ext_type, id_string(ext.get("id")))
        region = None
        for source in (traits, context_traits, _external(context, "email")):
            self._keep(out, EMAIL, normalize_email(source.get("email")))
        for source in (traits, context_traits, _external(context, "phone")):
            raw = source.get("phone")
            if raw is not None:
                if region is None:
                    region = phone_region(message, self.default_phone_region) or ""
                self._keep(out, PHONE, normalize_phone(raw, region or None))
        device = _dict(context.get("device"))
        self._keep(out, DEVICE_ID, id_string(device.get("id")))
        self._keep(out, PUSH_TOKEN, id_string(device.get("token")))
        self._keep(out, ANONYMOUS_ID, id_string(message.get("anonymousId")))
        return sorted(out, key=lambda ident: ident.priority)

    def alias_candidates(self, message: dict[str, Any]) -> list[Identifier]:
        """previousId of an alias, as a user id and as an anonymous id."""
        previous = id_string(message.get("previousId"))
        if previous is None or self.junk.is_junk(previous) or len(previous) > MAX_VALUE_LENGTH:
            return []
        return [Identifier(USER_ID, previous), Identifier(ANONYMOUS_ID, previous)]


def _external(context: dict[str, Any], wanted: str) -> dict[str, Any]:
    """The first context.externalIds entry of a type, as {type: id}."""
    for ext in context.get("externalIds") or ():
        if isinstance(ext, dict) and str(ext.get("type", "")).strip().lower() == wanted:
            return {wanted: ext.get("id")}
    return {}
