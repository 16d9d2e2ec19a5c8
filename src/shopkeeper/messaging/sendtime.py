"""Send-time optimisation: send at the hour of the day this person most often opens
messages or buys, learned from their own history, in their time zone."""

from __future__ import annotations

import datetime as dt
from collections import Counter
from collections.abc import Iterable

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from shopkeeper.journeys.engine import zone
from shopkeeper.storage import tables as t

# Look this far back; fewer than MIN_SIGNALS moments and the fallback hour is used.
HISTORY_MS = 180 * 86_400_000
MIN_SIGNALS = 3


def best_hour(moments: Iterable[int], timezone: str) -> int | None:
    """The local hour (0-23) with the most moments; ties go to the earliest hour."""
    tz = zone(timezone)
    hours = Counter(dt.datetime.fromtimestamp(ms / 1000, tz).hour for ms in moments)
    if sum(hours.values()) < MIN_SIGNALS:
        return None
    return min(hours, key=lambda h: (-hours[h], h))


def next_at_hour(now_ms: int, timezone: str, hour: int) -> int:
    """The next start of `hour` in the time zone, within a day from now (now itself when
    this is that hour)."""
    tz = zone(timezone)
    local = dt.datetime.fromtimestamp(now_ms / 1000, tz)
    if local.hour == hour:
        return now_ms
    for days in (0, 1, 2):
        day = (local + dt.timedelta(days=days)).date()
        candidate = dt.datetime(day.year, day.month, day.day, hour, tzinfo=tz)
        at = int(candidate.timestamp() * 1000)
        if at > now_ms:
            return at
    return now_ms


def best_hour_send_at(
    conn: Connection, profile_id: int, now_ms: int, timezone: str, fallback_hour: int
) -> int:
    since = now_ms - HISTORY_MS
    m = t.messages
    opens = conn.execute(
        sa.select(m.c.opened_at).where(
            m.c.profile_id == profile_id, m.c.opened_at.is_not(None), m.c.opened_at >= since
        )
    ).scalars()
    e = t.events
    orders = conn.execute(
        sa.select(e.c.timestamp).where(
            e.c.profile_id == profile_id,
            e.c.status == t.APPLIED,
            e.c.type == "track",
            e.c.event == "Order Completed",
            e.c.timestamp >= since,
        )
    ).scalars()
    moments = [int(v) for v in opens] + [int(v) for v in orders]
    hour = best_hour(moments, timezone)
    return next_at_hour(now_ms, timezone, fallback_hour if hour is None else hour)
