"""The entries the scheduler starts: broadcasts to a segment, date attributes (birthdays,
N days after the last order), holidays in each person's own country, and catalog events
(back in stock, price drop) for the people who looked at the product.

Each task is `(db, settings, now_ms) -> number entered` and may run again at any time
(after a crash, or every few minutes): every entry has a key unique per journey
(`broadcast:<occasion>:<profile>`, `date:<local day>:<profile>`,
`holiday:<holiday>:<day>:<profile>`, `catalog:<catalog event>:<profile>`), so a rerun
enters nobody twice. People are entered a few hundred per transaction; profiles are read
in pages by id, never all at once.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from shopkeeper.catalog import service as catalog
from shopkeeper.config import Settings
from shopkeeper.journeys import store
from shopkeeper.journeys.definition import (
    BroadcastEntry,
    CatalogEntry,
    DateEntry,
    Definition,
    HolidayEntry,
    parse_time,
)
from shopkeeper.journeys.entries_holidays import (
    date_attribute,
    date_due,
    dates_anywhere,
    holiday_dates,
    holiday_name,
    key_of,
    person_zone,
)
from shopkeeper.journeys.runtime import JourneyRuntime
from shopkeeper.segments.audiences.fields import ProfileData, country_of
from shopkeeper.segments.store import conditions
from shopkeeper.storage import tables as t
from shopkeeper.storage.db import Database
from shopkeeper.timeutil import ms_to_iso, parse_iso_ms

log = logging.getLogger(__name__)

# People entered per transaction, and profiles read per page while scanning.
CHUNK = 500
PAGE = 1000
CATALOG_CURSOR = "journeys.catalog_cursor"
# A broadcast that enters at least this many people refreshes PostgreSQL's statistics.
_ANALYZE_AFTER = 1000
_BROADCAST_DONE = "journeys.broadcast.{journey_id}"
# Whoever asked about or looked at a product hears about it.
INTEREST_EVENTS = ("Product Viewed", "Product Added to Wishlist", "Back In Stock Requested")


@dataclass(frozen=True)
class Person:
    profile_id: int
    key: str
    properties: Mapping[str, Any]


def _journeys(db: Database, kind: type) -> list[tuple[store.Journey, Definition]]:
    with db.read() as conn:
        return [(j, d) for j, d in store.active_journeys(conn) if isinstance(d.entry, kind)]


def _enter_all(
    db: Database,
    runtime: JourneyRuntime,
    journey: store.Journey,
    definition: Definition,
    people: Sequence[Person],
    now_ms: int,
) -> int:
    """Enter each person once, CHUNK people per transaction; stops when the journey
    is switched off meanwhile."""
    entered = 0
    e = t.enrollments
    for start in range(0, len(people), CHUNK):
        chunk = people[start : start + CHUNK]
        with db.write() as conn:
            current = store.journey_by_id(conn, journey.id)
            if current is None or current.status != "active":
                return entered
            done = set(
                conn.execute(
                    sa.select(e.c.entry_key).where(
                        e.c.journey_id == journey.id, e.c.entry_key.in_([p.key for p in chunk])
                    )
                ).scalars()
            )
            segments = conditions(conn)
            entered += runtime.enter_many(
                conn,
                journey,
                definition,
                [(p.profile_id, p.key, p.properties) for p in chunk if p.key not in done],
                now_ms,
                segments,
            )
        runtime.after_commit()
    return entered


def _meta(db: Database, key: str) -> str | None:
    with db.read() as conn:
        value = conn.execute(sa.select(t.meta.c.value).where(t.meta.c.key == key)).scalar()
    return str(value) if value is not None else None


def _set_meta(db: Database, key: str, value: str) -> None:
    with db.write() as conn:
        conn.execute(db.upsert(t.meta, ["key"], ["value"]).values(key=key, value=value))


# -- broadcasts -----------------------------------------------------------------------


def broadcast_occasion(entry: BroadcastEntry, now_ms: int) -> str | None:
    """Which sending of a broadcast is due now, or None. A one-off is due from `at` on
    (so a journey switched on after `at` still sends once); a recurring one once per
    period of `every` (counted from `at` when given)."""
    start: int | None = None
    if entry.at is not None:
        start = parse_time(entry.at)
        if start is None or now_ms < start:
            return None
    if entry.every_ms:
        base = start or 0
        return ms_to_iso(base + (now_ms - base) // entry.every_ms * entry.every_ms)
    return entry.at if entry.at is not None else "once"


def _members(db: Database, segment_id: int) -> Iterator[list[int]]:
    sm = t.segment_members
    after = 0
    while True:
        with db.read() as conn:
            ids = [
                int(i)
                for i in conn.execute(
                    sa.select(sm.c.profile_id)
                    .where(sm.c.segment_id == segment_id, sm.c.profile_id > after)
                    .order_by(sm.c.profile_id)
                    .limit(PAGE)
                ).scalars()
            ]
        if not ids:
            return
        yield ids
        after = ids[-1]


def run_broadcasts(
    db: Database, settings: Settings, now_ms: int, runtime: JourneyRuntime | None = None
) -> int:
    """Everyone in the segment enters each due broadcast once. `runtime`: the process's
    own, which wakes its delivery loop as each chunk's messages are committed."""
    runtime = runtime or JourneyRuntime(db, settings)
    entered = 0
    next_analyze = _ANALYZE_AFTER
    for journey, definition in _journeys(db, BroadcastEntry):
        entry = definition.entry
        assert isinstance(entry, BroadcastEntry)
        if entry.at is not None and parse_time(entry.at) is None:
            log.warning("broadcast %s: at %r is not an ISO time", journey.key, entry.at)
            continue
        occasion = broadcast_occasion(entry, now_ms)
        marker = _BROADCAST_DONE.format(journey_id=journey.id)
        if occasion is None or _meta(db, marker) == occasion:
            continue
        with db.read() as conn:
            segment_id = conn.execute(
                sa.select(t.segments.c.id).where(t.segments.c.key == entry.segment)
            ).scalar()
        if segment_id is None:
            log.warning("broadcast %s: there is no segment %r", journey.key, entry.segment)
            continue
        properties = {"broadcast": occasion, "segment": entry.segment}
        for ids in _members(db, int(segment_id)):
            people = [Person(pid, f"broadcast:{occasion[:100]}:{pid}", properties) for pid in ids]
            entered += _enter_all(db, runtime, journey, definition, people, now_ms)
            if entered >= next_analyze:
                # The tables grow tenfold: their statistics must follow, or the checks
                # of the next people scan what the planner believes is a small table.
                _analyze(db)
                next_analyze *= 10
        # Marked done only once everyone was entered: a run cut short starts over, and
        # the entry keys skip those already in.
        _set_meta(db, marker, occasion)
    if entered >= _ANALYZE_AFTER:
        _analyze(db)
    return entered


def _analyze(db: Database) -> None:
    """Fresh planner statistics during and after a bulk entry, on PostgreSQL: the
    enrollments and messages just written can outnumber what the statistics say the
    tables hold, and the batch queries then scan whole tables instead of using their
    indexes (autovacuum catches up only a minute or more later, mid-broadcast)."""
    if db.is_sqlite:
        return
    with db.write() as conn:
        conn.execute(sa.text("ANALYZE messages, enrollments, enrollment_steps"))


# -- dates and holidays -----------------------------------------------------------------


def _profiles(db: Database, where: Sequence[Any] = ()) -> Iterator[Sequence[Any]]:
    """Profiles (id, traits, computed) in pages by id; absorbed ones left out."""
    p = t.profiles
    after = 0
    while True:
        with db.read() as conn:
            rows = conn.execute(
                sa.select(p.c.id, p.c.traits, p.c.computed)
                .where(p.c.id > after, p.c.merged_into.is_(None), *where)
                .order_by(p.c.id)
                .limit(PAGE)
            ).all()
        if not rows:
            return
        yield rows
        after = int(rows[-1].id)


def _date_filter(entry: DateEntry, utc_day: dt.date) -> Any:
    """Narrows the scan to profiles whose date text is near the day wanted: local days
    are within a day of UTC's, and a time's own offset moves its day by one more."""
    path = entry.attribute.split(".")
    traits, computed = t.profiles.c.traits, t.profiles.c.computed
    if path[0] in ("traits", "computed") and len(path) > 1:
        column = traits if path[0] == "traits" else computed
        value = column[tuple(path[1:])].as_string()
    else:
        value = sa.func.coalesce(traits[tuple(path)].as_string(), computed[tuple(path)].as_string())
    days = [utc_day + dt.timedelta(days=d - entry.offset_days) for d in range(-3, 4)]
    if entry.annual:
        month_days = {day.strftime("%m-%d") for day in days}
        if "02-28" in month_days:
            month_days.add("02-29")  # kept on Feb 28 in other years
        return sa.func.substr(value, 6, 5).in_(sorted(month_days))
    return sa.func.substr(value, 1, 10).in_(sorted(day.isoformat() for day in days))


def _local(now_ms: int, timezone: dt.tzinfo) -> dt.datetime:
    return dt.datetime.fromtimestamp(now_ms / 1000, timezone)


def run_date_entries(
    db: Database, settings: Settings, now_ms: int, runtime: JourneyRuntime | None = None
) -> int:
    """People whose date attribute plus offset_days is today where they are, from the
    entry's hour on."""
    runtime = runtime or JourneyRuntime(db, settings)
    utc_day = _local(now_ms, dt.UTC).date()
    entered = 0
    for journey, definition in _journeys(db, DateEntry):
        entry = definition.entry
        assert isinstance(entry, DateEntry)
        for rows in _profiles(db, [_date_filter(entry, utc_day)]):
            people = []
            for row in rows:
                traits, computed = row.traits or {}, row.computed or {}
                timezone = person_zone(traits, computed, settings.default_timezone)
                local = _local(now_ms, timezone)
                value = date_attribute(traits, computed, entry.attribute)
                if local.hour < entry.hour or not date_due(
                    value,
                    local.date(),
                    timezone,
                    offset_days=entry.offset_days,
                    annual=entry.annual,
                ):
                    continue
                today = local.date().isoformat()
                people.append(
                    Person(
                        int(row.id),
                        f"date:{today}:{row.id}",
                        {"date_attribute": entry.attribute, "date": value, "day": today},
                    )
                )
            entered += _enter_all(db, runtime, journey, definition, people, now_ms)
    return entered


def run_holiday_entries(
    db: Database, settings: Settings, now_ms: int, runtime: JourneyRuntime | None = None
) -> int:
    """People `days_before` a holiday of their own country, from the entry's hour on in
    their time zone. Known people only: a greeting needs someone to write to, and
    anonymous visitors would fill the journey with enrollments that send nothing."""
    runtime = runtime or JourneyRuntime(db, settings)
    utc_day = _local(now_ms, dt.UTC).date()
    entered = 0
    for journey, definition in _journeys(db, HolidayEntry):
        entry = definition.entry
        assert isinstance(entry, HolidayEntry)
        near = [utc_day + dt.timedelta(days=d + entry.days_before) for d in (-1, 0, 1)]
        if not any(day in dates_anywhere(entry.holiday, day.year) for day in near):
            continue  # the holiday is nowhere near for anyone: no scan
        key = key_of(entry.holiday)[:100]
        for rows in _profiles(db, [t.profiles.c.is_known.is_(True)]):
            people = []
            for row in rows:
                traits, computed = row.traits or {}, row.computed or {}
                local = _local(now_ms, person_zone(traits, computed, settings.default_timezone))
                if local.hour < entry.hour:
                    continue
                day = local.date() + dt.timedelta(days=entry.days_before)
                data = ProfileData(int(row.id), traits=traits, computed=computed)
                country = country_of(data) or settings.default_phone_region
                if day not in holiday_dates(entry.holiday, country, day.year):
                    continue
                properties = {
                    "holiday": key,
                    "holiday_name": holiday_name(entry.holiday, country, day),
                    "holiday_date": day.isoformat(),
                    "country": country,
                }
                people.append(Person(int(row.id), f"holiday:{key}:{day}:{row.id}", properties))
            entered += _enter_all(db, runtime, journey, definition, people, now_ms)
    return entered


def run_dates(
    db: Database, settings: Settings, now_ms: int, runtime: JourneyRuntime | None = None
) -> int:
    """The scheduler's task for date and holiday entries."""
    return run_date_entries(db, settings, now_ms, runtime) + run_holiday_entries(
        db, settings, now_ms, runtime
    )


# -- catalog events ---------------------------------------------------------------------

_INTERESTED_SQLITE = f"""
SELECT DISTINCT profile_id FROM events
WHERE status = {t.APPLIED} AND type = 'track' AND event IN (:e0, :e1, :e2)
  AND timestamp >= :since AND profile_id IS NOT NULL
  AND CAST(COALESCE(json_extract(payload, '$.properties.product_id'),
                    json_extract(payload, '$.properties.sku'),
                    json_extract(payload, '$.properties.id')) AS TEXT) = :pid
"""

_INTERESTED_PG = f"""
SELECT DISTINCT profile_id FROM events
WHERE status = {t.APPLIED} AND type = 'track' AND event IN (:e0, :e1, :e2)
  AND timestamp >= :since AND profile_id IS NOT NULL
  AND COALESCE(payload->'properties'->>'product_id', payload->'properties'->>'sku',
               payload->'properties'->>'id') = :pid
"""


def interested(db: Database, product_id: str, since_ms: int) -> list[int]:
    """The profiles (survivors of merges) that viewed, wishlisted or asked about a
    product since `since_ms`, in id order."""
    sql = _INTERESTED_SQLITE if db.is_sqlite else _INTERESTED_PG
    names = {f"e{i}": name for i, name in enumerate(INTEREST_EVENTS)}
    with db.read() as conn:
        ids = [
            int(i)
            for i in conn.execute(
                sa.text(sql), {**names, "since": since_ms, "pid": product_id}
            ).scalars()
        ]
        found: set[int] = set()
        p = t.profiles
        for start in range(0, len(ids), PAGE):
            for row in conn.execute(
                sa.select(p.c.id, p.c.merged_into).where(p.c.id.in_(ids[start : start + PAGE]))
            ):
                found.add(int(row.merged_into if row.merged_into is not None else row.id))
    return sorted(found)


def _catalog_cursor(db: Database) -> int | None:
    """Where the last run stopped; None on the first run, which starts from now rather
    than from the whole history."""
    value = _meta(db, CATALOG_CURSOR)
    if value is not None:
        return int(value)
    with db.write() as conn:
        latest = conn.execute(sa.select(sa.func.max(t.catalog_events.c.id))).scalar()
        conn.execute(db.insert_ignore(t.meta).values(key=CATALOG_CURSOR, value=str(latest or 0)))
    return None


def run_catalog(
    db: Database,
    settings: Settings,
    now_ms: int,
    limit: int = 500,
    runtime: JourneyRuntime | None = None,
) -> int:
    """People interested in a product enter the journeys on its catalog events."""
    cursor = _catalog_cursor(db)
    if cursor is None:
        return 0
    with db.read() as conn:
        events = catalog.catalog_events(conn, after_id=cursor, limit=limit)
    if not events:
        return 0
    runtime = runtime or JourneyRuntime(db, settings)
    journeys = _journeys(db, CatalogEntry)
    entered = 0
    for event in events:
        at = parse_iso_ms(event["at"])
        for journey, definition in journeys:
            entry = definition.entry
            assert isinstance(entry, CatalogEntry)
            if entry.event != event["type"] or at < journey.updated_at:
                continue  # another event, or one from before the journey was switched on
            properties = {
                **event["details"],
                "product_id": event["product_id"],
                "catalog_event": event["type"],
                "catalog_event_id": event["id"],
            }
            people = [
                Person(pid, f"catalog:{event['id']}:{pid}", properties)
                for pid in interested(db, event["product_id"], at - entry.viewed_within_ms)
            ]
            entered += _enter_all(db, runtime, journey, definition, people, now_ms)
    # Moved after the entries: a run cut short reads the same events again, and the
    # entry keys skip those already in.
    _set_meta(db, CATALOG_CURSOR, str(events[-1]["id"]))
    return entered
