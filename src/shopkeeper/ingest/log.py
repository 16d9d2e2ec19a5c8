"""The event log: claiming pending events in order, marking them, and reading history.

The log is the `events` table. Ingest appends (writer.py); the pipeline claims pending
events partition by partition, so that one identity's events are applied by one worker at
a time and in log order; the profile timeline reads applied events by profile.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from shopkeeper.storage import tables as t
from shopkeeper.storage.db import Database

# pg_try_advisory_xact_lock(class, partition): "SK" marks Shopkeeper's partition locks.
_LOCK_CLASS = 0x534B


@dataclass(frozen=True, slots=True)
class LoggedEvent:
    seq: int
    source_id: int
    message_id: str
    type: str
    timestamp_ms: int
    partition: int
    payload: dict[str, Any]


_CLAIM_COLUMNS = (
    t.events.c.seq,
    t.events.c.source_id,
    t.events.c.message_id,
    t.events.c.type,
    t.events.c.timestamp,
    t.events.c.partition,
    t.events.c.payload,
)


def _logged(row: Any) -> LoggedEvent:
    return LoggedEvent(int(row[0]), int(row[1]), row[2], row[3], int(row[4]), int(row[5]), row[6])


def claim(db: Database, conn: Connection, limit: int) -> list[LoggedEvent]:
    """Pending events this transaction may apply, in log order.

    SQLite: the write transaction (BEGIN IMMEDIATE) already excludes every other writer,
    so the oldest pending events are ours. PostgreSQL: lock the partitions of the oldest
    pending events with transaction-scoped advisory locks, skipping those another worker
    holds, then take the pending events of the locked partitions. The locks end with the
    transaction, when the events are marked applied.
    """
    if db.is_sqlite:
        rows = conn.execute(
            sa.select(*_CLAIM_COLUMNS)
            .where(t.events.c.status == t.PENDING)
            .order_by(t.events.c.seq)
            .limit(limit)
        ).all()
        return [_logged(row) for row in rows]

    window = conn.execute(
        sa.select(t.events.c.partition)
        .where(t.events.c.status == t.PENDING)
        .order_by(t.events.c.seq)
        .limit(limit * 4)
    ).all()
    if not window:
        return []
    counts: dict[int, int] = {}
    for (partition,) in window:
        counts[partition] = counts.get(partition, 0) + 1
    locked: list[int] = []
    covered = 0
    candidates = list(counts)
    for start in range(0, len(candidates), 8):
        chunk = candidates[start : start + 8]
        got = conn.execute(
            sa.text(
                "SELECT p FROM unnest(CAST(:parts AS int[])) AS p "
                "WHERE pg_try_advisory_xact_lock(:cls, p)"
            ),
            {"parts": chunk, "cls": _LOCK_CLASS},
        ).scalars()
        for partition in got:
            locked.append(int(partition))
            covered += counts[int(partition)]
        if covered >= limit:
            break
    if not locked:
        return []
    rows = conn.execute(
        sa.select(*_CLAIM_COLUMNS)
        .where(t.events.c.status == t.PENDING, t.events.c.partition.in_(locked))
        .order_by(t.events.c.seq)
        .limit(limit)
    ).all()
    return [_logged(row) for row in rows]


def claim_one(db: Database, conn: Connection, seq: int, partition: int) -> LoggedEvent | None:
    """One event, if still pending, with its partition locked (waiting for it) on
    PostgreSQL: the slow path that isolates a poison event."""
    if not db.is_sqlite:
        conn.execute(
            sa.text("SELECT pg_advisory_xact_lock(:cls, :p)"), {"cls": _LOCK_CLASS, "p": partition}
        )
    row = conn.execute(
        sa.select(*_CLAIM_COLUMNS).where(t.events.c.seq == seq, t.events.c.status == t.PENDING)
    ).first()
    return _logged(row) if row is not None else None


_MARK_APPLIED = (
    f"UPDATE events SET status = {t.APPLIED}, profile_id = ?, processed_at = ?, error = NULL "
    "WHERE seq = ?"
)


def mark_applied(
    db: Database, conn: Connection, applied: Sequence[tuple[int, int]], now_ms: int
) -> None:
    """applied: (seq, profile_id) pairs."""
    db.raw_many(conn, _MARK_APPLIED, [(pid, now_ms, seq) for seq, pid in applied])


def mark_parked(conn: Connection, seq: int, error: str, now_ms: int) -> None:
    conn.execute(
        t.events.update()
        .where(t.events.c.seq == seq)
        .values(status=t.PARKED, error=error[:4000], processed_at=now_ms)
    )


def reassign(conn: Connection, absorbed: Sequence[int], survivor: int) -> None:
    conn.execute(
        t.events.update()
        .where(t.events.c.profile_id.in_(list(absorbed)))
        .values(profile_id=survivor)
    )


def history(conn: Connection, profile_id: int) -> Iterator[LoggedEvent]:
    """A profile's applied events in time order (ties in log order), for refolds."""
    result = conn.execute(
        sa.select(*_CLAIM_COLUMNS)
        .where(t.events.c.profile_id == profile_id, t.events.c.status == t.APPLIED)
        .order_by(t.events.c.timestamp, t.events.c.seq)
    )
    for row in result:
        yield _logged(row)


def status_counts(conn: Connection, now_ms: int) -> dict[str, float]:
    pending = conn.execute(
        sa.select(sa.func.count(), sa.func.min(t.events.c.received_at)).where(
            t.events.c.status == t.PENDING
        )
    ).one()
    parked = conn.execute(
        sa.select(sa.func.count()).where(t.events.c.status == t.PARKED)
    ).scalar_one()
    oldest = pending[1]
    return {
        "pending": int(pending[0]),
        "parked": int(parked),
        "lag_seconds": max(0.0, (now_ms - int(oldest)) / 1000) if oldest is not None else 0.0,
    }


def parked(conn: Connection, limit: int, offset: int = 0) -> list[dict[str, Any]]:
    rows = conn.execute(
        sa.select(
            t.events.c.seq,
            t.events.c.message_id,
            t.events.c.type,
            t.events.c.event,
            t.events.c.user_id,
            t.events.c.anonymous_id,
            t.events.c.received_at,
            t.events.c.processed_at,
            t.events.c.error,
            t.events.c.payload,
        )
        .where(t.events.c.status == t.PARKED)
        .order_by(t.events.c.seq)
        .limit(limit)
        .offset(offset)
    ).all()
    return [dict(row._mapping) for row in rows]


def retry_parked(conn: Connection, seq: int | None) -> int:
    """Put parked events back in the queue (one, or all when seq is None)."""
    stmt = t.events.update().where(t.events.c.status == t.PARKED)
    if seq is not None:
        stmt = stmt.where(t.events.c.seq == seq)
    return conn.execute(stmt.values(status=t.PENDING, error=None, processed_at=None)).rowcount
