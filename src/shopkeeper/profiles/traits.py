"""Profile traits: newest value wins, per top-level trait, by event time.

`trait_times` holds when each trait was last written (ISO strings, which compare in time
order). A null removes the trait but keeps its time, so an older value arriving late
cannot bring it back. Segment's reserved traits are normalised on the way in.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Iterable, Mapping, Sequence
from datetime import date
from typing import Any

# Segment's reserved traits (https://segment.com/docs/connections/spec/identify/#traits).
RESERVED_TRAITS = frozenset(
    {
        "address",
        "age",
        "avatar",
        "birthday",
        "company",
        "createdAt",
        "description",
        "email",
        "firstName",
        "gender",
        "id",
        "lastName",
        "name",
        "phone",
        "title",
        "username",
        "website",
    }
)

# The snake_case spellings senders use for the camelCase reserved traits.
TRAIT_ALIASES = {
    "first_name": "firstName",
    "last_name": "lastName",
    "created_at": "createdAt",
}

_DISPLAY_NAME_LIMIT = 500
_BIRTHDAY = re.compile(r"(\d{4})([-/.]?)(\d{2})\2(\d{2})(?:$|[T ])")
_MISSING = object()


def normalise_birthday(value: Any) -> Any:
    """YYYY-MM-DD when the value starts with a valid year-month-day, else as sent.

    The date part of a date-time is taken as written: converting a midnight birthday
    from the sender's zone to UTC would move it to the day before.
    """
    if not isinstance(value, str):
        return value
    text = value.strip()
    match = _BIRTHDAY.match(text)
    if match is None:
        return value
    try:
        return date(int(match[1]), int(match[3]), int(match[4])).isoformat()
    except ValueError:
        return value


def normalise_traits(incoming: Mapping[str, Any]) -> dict[str, Any]:
    """Reserved traits in Segment's spelling and form; other traits untouched.

    When both spellings arrive together (first_name and firstName) the camelCase wins.
    An email that is empty after trimming reads as null.
    """
    traits: dict[str, Any] = {}
    for key, value in incoming.items():
        if not isinstance(key, str):
            continue
        name = TRAIT_ALIASES.get(key, key)
        if name != key and name in incoming:
            continue
        if name == "email" and isinstance(value, str):
            value = value.strip().lower() or None
        elif name == "birthday":
            value = normalise_birthday(value)
        traits[name] = value
    return traits


def _full_name(first: Any, last: Any) -> str | None:
    parts = [p.strip() for p in (first, last) if isinstance(p, str) and p.strip()]
    return " ".join(parts) or None


def _same(a: Any, b: Any) -> bool:
    # 1 == True in Python, but a trait that turns from 1 into true did change.
    return type(a) is type(b) and bool(a == b)


def apply_traits(
    traits: dict[str, Any], trait_times: dict[str, str], incoming: dict[str, Any], at: str
) -> bool:
    """Apply one message's traits at time `at`; True if traits or times changed.

    A trait is written when `at >= trait_times[key]` (ties: this later call wins).
    `name` follows firstName + lastName, as Segment derives it, unless a name was sent
    that differs from the derived one.
    """
    values = normalise_traits(incoming)
    old_first, old_last = traits.get("firstName"), traits.get("lastName")
    changed = False
    for key, value in values.items():
        if at < trait_times.get(key, ""):
            continue
        if trait_times.get(key) != at:
            trait_times[key] = at
            changed = True
        if value is None:
            if key in traits:
                del traits[key]
                changed = True
        elif not _same(traits.get(key, _MISSING), value):
            traits[key] = copy.deepcopy(value)
            changed = True
    if "name" not in values and ("firstName" in values or "lastName" in values):
        changed = _derive_name(traits, trait_times, old_first, old_last, at) or changed
    return changed


def _derive_name(
    traits: dict[str, Any], trait_times: dict[str, str], old_first: Any, old_last: Any, at: str
) -> bool:
    current = traits.get("name")
    if current is not None and current != _full_name(old_first, old_last):
        return False  # a name that was sent, not derived: keep it
    if at < trait_times.get("name", ""):
        return False
    derived = _full_name(traits.get("firstName"), traits.get("lastName"))
    if derived == current:
        return False
    trait_times["name"] = at
    if derived is None:
        traits.pop("name", None)
    else:
        traits["name"] = derived
    return True


def merge_traits(
    a_traits: Mapping[str, Any],
    a_times: Mapping[str, str],
    b_traits: Mapping[str, Any],
    b_times: Mapping[str, str],
) -> tuple[dict[str, Any], dict[str, str]]:
    """Traits of two merged profiles: per trait the newer time wins; ties go to `a`.

    A trait without a time counts as oldest. A trait removed (null) at the newer time
    stays removed. Returns new dicts; the inputs are not changed.
    """
    traits: dict[str, Any] = {}
    times: dict[str, str] = {}
    keys = sorted({*a_traits, *a_times, *b_traits, *b_times})
    for key in keys:
        a_time, b_time = a_times.get(key, ""), b_times.get(key, "")
        source, time = (b_traits, b_time) if b_time > a_time else (a_traits, a_time)
        if key in source:
            traits[key] = copy.deepcopy(source[key])
        if time:
            times[key] = time
    return traits, times


def display_name(traits: Mapping[str, Any], identities: Iterable[Sequence[str]]) -> str | None:
    """What a person would recognise: name, else email, else phone, else the first
    user id among `identities` ([type, value] pairs, as in the identities table)."""
    for key in ("name", "email", "phone"):
        value = traits.get(key)
        if isinstance(value, str) and value.strip():
            return value.strip()[:_DISPLAY_NAME_LIMIT]
    for pair in identities:
        if len(pair) >= 2 and pair[0] == "user_id" and pair[1]:
            return str(pair[1])[:_DISPLAY_NAME_LIMIT]
    return None
