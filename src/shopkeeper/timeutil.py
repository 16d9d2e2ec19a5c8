"""Timestamps: epoch milliseconds in tables, fixed-width ISO-8601 UTC strings in JSON.

The ISO form `2026-11-23T08:00:00.000Z` always has the same width, so strings compare in
time order, in Python and in SQL alike.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def parse_iso_ms(value: str) -> int:
    """Parse an ISO-8601 date or date-time to epoch milliseconds (UTC when no zone).

    Raises ValueError with a readable message when the value is not a date.
    """
    text = value.strip()
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"{value!r} is not an ISO-8601 date-time") from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    delta = parsed - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1000 + delta.microseconds // 1000


_DAYS: dict[int, str] = {}


def ms_to_iso(ms: int) -> str:
    """Epoch milliseconds to `YYYY-MM-DDTHH:MM:SS.mmmZ`. Runs several times per event,
    so the date part is cached per day instead of formatted with strftime each time."""
    seconds, millis = divmod(ms, 1000)
    day, second = divmod(seconds, 86_400)
    date = _DAYS.get(day)
    if date is None:
        if len(_DAYS) > 20_000:
            _DAYS.clear()
        date = _DAYS[day] = time.strftime("%Y-%m-%dT", time.gmtime(day * 86_400))
    hours, rest = divmod(second, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{date}{hours:02d}:{minutes:02d}:{secs:02d}.{millis:03d}Z"


def iso_to_ms(value: str) -> int:
    return parse_iso_ms(value)
