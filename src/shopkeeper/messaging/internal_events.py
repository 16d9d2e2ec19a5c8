"""Events Shopkeeper writes about a person itself: a journey's profile update (an
identify), and what happened to a message (Email Sent, Email Opened, Message Clicked...).

They go into the event log like any other message, from the "shopkeeper" source, so the
pipeline applies them with the same rules (traits, consents, the timeline, lead scores,
segments) instead of a second path that writes profiles directly.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from shopkeeper.ingest.spec import partition_of
from shopkeeper.storage import tables as t
from shopkeeper.storage.db import Database
from shopkeeper.timeutil import ms_to_iso

SOURCE_NAME = "shopkeeper"


def source_id(conn: Connection, db: Database, now_ms: int) -> int:
    """The internal source's id, created in this transaction when missing (an insert
    that skips a name another process created first, then a read)."""
    query = sa.select(t.sources.c.id).where(t.sources.c.name == SOURCE_NAME)
    found = conn.execute(query).scalar()
    if found is not None:
        return int(found)
    conn.execute(
        db.insert_ignore(t.sources).values(
            name=SOURCE_NAME,
            kind="other",
            write_key="internal-" + secrets.token_urlsafe(24),
            created_at=now_ms,
        )
    )
    return int(conn.execute(query).scalar_one())


def identifiers(conn: Connection, profile_id: int) -> tuple[str | None, str | None]:
    """(userId, anonymousId) to address the person with: their user id when they have
    one, else their most recent anonymous id."""
    ids = t.identities
    rows = conn.execute(
        sa.select(ids.c.type, ids.c.value)
        .where(ids.c.profile_id == profile_id, ids.c.type.in_(("user_id", "anonymous_id")))
        .order_by(ids.c.last_seen_at.desc())
    ).all()
    user = next((r.value for r in rows if r.type == "user_id"), None)
    anonymous = next((r.value for r in rows if r.type == "anonymous_id"), None)
    return user, (None if user else anonymous)


def identifiers_many(
    conn: Connection, profile_ids: Iterable[int]
) -> dict[int, tuple[str | None, str | None]]:
    """`identifiers` for many people, in one query per 500 of them."""
    ids = sorted(set(profile_ids))
    found: dict[int, dict[str, str]] = {pid: {} for pid in ids}
    table = t.identities
    for start in range(0, len(ids), 500):
        rows = conn.execute(
            sa.select(table.c.profile_id, table.c.type, table.c.value)
            # The types are filtered here, not in SQL: given `type IN (...)`, SQLite
            # walks the primary key by type (everyone's user ids) instead of the
            # profile_id index.
            .where(table.c.profile_id.in_(ids[start : start + 500]))
            .order_by(table.c.last_seen_at.desc())
        )
        for row in rows:
            if row.type not in ("user_id", "anonymous_id"):
                continue
            # Newest first: the first value of each type is the one `identifiers` takes.
            found[int(row.profile_id)].setdefault(row.type, row.value)
    out: dict[int, tuple[str | None, str | None]] = {}
    for pid, values in found.items():
        user = values.get("user_id")
        out[pid] = (user, None if user else values.get("anonymous_id"))
    return out


def _row(
    source: int,
    user_id: str | None,
    anonymous_id: str | None,
    message: Mapping[str, Any],
    message_id: str,
    now_ms: int,
) -> dict[str, Any]:
    """The events row of one Segment message from the internal source."""
    payload: dict[str, Any] = {
        **message,
        "messageId": message_id,
        "timestamp": ms_to_iso(now_ms),
        "context": {"library": {"name": "shopkeeper", "version": "internal"}},
    }
    if user_id:
        payload["userId"] = user_id
    else:
        payload["anonymousId"] = anonymous_id
    return {
        "source_id": source,
        "message_id": message_id[:200],
        "type": payload["type"],
        "event": payload.get("event"),
        "user_id": user_id,
        "anonymous_id": anonymous_id,
        "partition": partition_of(str(anonymous_id or user_id)),
        "timestamp": now_ms,
        "received_at": now_ms,
        "status": t.PENDING,
        "payload": payload,
    }


def append(
    conn: Connection,
    db: Database,
    profile_id: int,
    message: Mapping[str, Any],
    *,
    message_id: str,
    now_ms: int,
) -> bool:
    """Write one Segment message about the person. False when they have no user id or
    anonymous id to write it to (or the message id was written before)."""
    user_id, anonymous_id = identifiers(conn, profile_id)
    if user_id is None and anonymous_id is None:
        return False
    row = _row(source_id(conn, db, now_ms), user_id, anonymous_id, message, message_id, now_ms)
    result = conn.execute(
        db.insert_ignore(t.events).values(**row).returning(t.events.c.seq)
    ).first()
    return result is not None


def track(
    conn: Connection,
    db: Database,
    profile_id: int,
    event: str,
    properties: Mapping[str, Any],
    *,
    message_id: str,
    now_ms: int,
) -> bool:
    return append(
        conn,
        db,
        profile_id,
        {"type": "track", "event": event, "properties": dict(properties)},
        message_id=message_id,
        now_ms=now_ms,
    )


@dataclass(frozen=True)
class Track:
    """One track event about a person, for `track_many`."""

    profile_id: int
    event: str
    properties: Mapping[str, Any]
    message_id: str
    now_ms: int


def track_many(conn: Connection, db: Database, tracks: Sequence[Track]) -> int:
    """`track` for many events: the source and everyone's identifiers read once, the
    events written in one insert that skips message ids written before. Returns how
    many had someone to be written to (written now or before)."""
    if not tracks:
        return 0
    people = identifiers_many(conn, [track.profile_id for track in tracks])
    known = [(track, people[track.profile_id]) for track in tracks]
    known = [(track, ids) for track, ids in known if ids != (None, None)]
    if not known:
        return 0
    source = source_id(conn, db, known[0][0].now_ms)
    rows = [
        _row(
            source,
            user_id,
            anonymous_id,
            {"type": "track", "event": track.event, "properties": dict(track.properties)},
            track.message_id,
            track.now_ms,
        )
        for track, (user_id, anonymous_id) in known
    ]
    conn.execute(db.insert_ignore(t.events), rows)
    return len(rows)
