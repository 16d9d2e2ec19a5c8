"""The rules every marketing message passes just before it is sent: frequency caps and
quiet hours. Pure: counts and times in, a decision out."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass

from shopkeeper.journeys.engine import zone

DAY = 86_400_000
WEEK = 7 * DAY


@dataclass(frozen=True)
class Caps:
    per_channel_day: int = 0
    per_channel_week: int = 0
    all_day: int = 0
    all_week: int = 0
    # Per journey: at most this many of its messages to one person per day and week.
    journey_day: int = 0
    journey_week: int = 0


def cap_reason(
    channel: str,
    day: Mapping[str, int],
    week: Mapping[str, int],
    caps: Caps,
    journey_day: int = 0,
    journey_week: int = 0,
) -> str | None:
    """Why one more message would break a cap (None: it would not). `day` and `week`
    count the person's marketing messages by channel, "*" for all channels."""
    name = channel.replace("_", " ")
    checks = (
        (caps.per_channel_day, day.get(channel, 0), f"{name} messages today"),
        (caps.per_channel_week, week.get(channel, 0), f"{name} messages in 7 days"),
        (caps.all_day, day.get("*", 0), "messages today"),
        (caps.all_week, week.get("*", 0), "messages in 7 days"),
        (caps.journey_day, journey_day, "messages of this journey today"),
        (caps.journey_week, journey_week, "messages of this journey in 7 days"),
    )
    for limit, count, what in checks:
        if limit and count >= limit:
            return f"frequency cap: {count} {what} (limit {limit})"
    return None


def quiet_until(now_ms: int, timezone: str, start: int, end: int) -> int | None:
    """When quiet hours end, if `now` falls in them in the person's time zone; None when
    a message may go now. start > end wraps midnight (21 to 8); start == end: none."""
    if start == end:
        return None
    tz = zone(timezone)
    local = dt.datetime.fromtimestamp(now_ms / 1000, tz)
    hour = local.hour
    quiet = start <= hour < end if start < end else hour >= start or hour < end
    if not quiet:
        return None
    day = local.date()
    if start > end and hour >= start:
        day = day + dt.timedelta(days=1)
    until = dt.datetime(day.year, day.month, day.day, end, tzinfo=tz)
    return int(until.timestamp() * 1000)
