"""Audience syncs and their runs in the database (audience_syncs, audience_sync_runs)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from shopkeeper.storage import tables as t
from shopkeeper.timeutil import ms_to_iso

s = t.audience_syncs
r = t.audience_sync_runs

# full_load_after: a full load is wanted and has not started.
FULL_LOAD_PENDING = -1


@dataclass(frozen=True, slots=True)
class AudienceSync:
    id: int
    segment_id: int
    segment_key: str | None  # None once the segment is deleted
    name: str
    kind: str
    url: str
    headers: dict[str, str]
    fields: list[str]
    interval_minutes: int
    cursor: int
    full_load_after: int | None
    active: bool
    next_run_at: int
    lease_until: int | None
    failures: int
    last_error: str | None
    created_at: int
    updated_at: int


def _query() -> sa.Select[Any]:
    return sa.select(s, t.segments.c.key.label("segment_key")).select_from(
        s.outerjoin(t.segments, t.segments.c.id == s.c.segment_id)
    )


def _sync(row: Any) -> AudienceSync:
    return AudienceSync(
        id=int(row.id),
        segment_id=int(row.segment_id),
        segment_key=row.segment_key,
        name=row.name,
        kind=row.kind,
        url=row.url,
        headers=dict(row.headers or {}),
        fields=list(row.fields or []),
        interval_minutes=int(row.interval_minutes),
        cursor=int(row.cursor),
        full_load_after=int(row.full_load_after) if row.full_load_after is not None else None,
        active=bool(row.active),
        next_run_at=int(row.next_run_at),
        lease_until=int(row.lease_until) if row.lease_until is not None else None,
        failures=int(row.failures),
        last_error=row.last_error,
        created_at=int(row.created_at),
        updated_at=int(row.updated_at),
    )


def get(conn: Connection, sync_id: int) -> AudienceSync | None:
    row = conn.execute(_query().where(s.c.id == sync_id)).first()
    return _sync(row) if row else None


def list_syncs(conn: Connection, segment_id: int | None = None) -> list[AudienceSync]:
    query = _query().order_by(s.c.id)
    if segment_id is not None:
        query = query.where(s.c.segment_id == segment_id)
    return [_sync(row) for row in conn.execute(query)]


def create(
    conn: Connection,
    *,
    segment_id: int,
    name: str,
    kind: str,
    url: str,
    headers: dict[str, str],
    fields: list[str],
    interval_minutes: int,
    active: bool,
    now_ms: int,
) -> int:
    result = conn.execute(
        s.insert()
        .returning(s.c.id)
        .values(
            segment_id=segment_id,
            name=name,
            kind=kind,
            url=url,
            headers=headers,
            fields=fields,
            interval_minutes=interval_minutes,
            # The first run sends every member as of then (a full load), and deltas after.
            cursor=0,
            full_load_after=FULL_LOAD_PENDING,
            active=active,
            next_run_at=now_ms,
            lease_until=None,
            failures=0,
            last_error=None,
            created_at=now_ms,
            updated_at=now_ms,
        )
    )
    return int(result.scalar_one())


def update_idle(conn: Connection, sync_id: int, values: dict[str, Any], now_ms: int) -> bool:
    """Change a sync that no process is running (a running one would write its own
    progress over the change). False if it is running (or gone)."""
    result = conn.execute(
        s.update()
        .where(s.c.id == sync_id)
        .where(sa.or_(s.c.lease_until.is_(None), s.c.lease_until <= now_ms))
        .values(**values, updated_at=now_ms)
    )
    return result.rowcount == 1


def delete(conn: Connection, sync_id: int) -> bool:
    conn.execute(r.delete().where(r.c.sync_id == sync_id))
    return bool(conn.execute(s.delete().where(s.c.id == sync_id)).rowcount)


def due_ids(conn: Connection, now_ms: int, limit: int = 100) -> list[int]:
    rows = conn.execute(
        sa.select(s.c.id)
        .where(s.c.active.is_(True))
        .where(s.c.next_run_at <= now_ms)
        .where(sa.or_(s.c.lease_until.is_(None), s.c.lease_until <= now_ms))
        .order_by(s.c.next_run_at, s.c.id)
        .limit(limit)
    )
    return [int(sync_id) for sync_id in rows.scalars()]


def claim(
    conn: Connection, sync_id: int, now_ms: int, lease_ms: int, *, due_only: bool
) -> int | None:
    """Take the sync for this process in one UPDATE (its WHERE clause is the check, so two
    processes cannot both succeed, on either database). Returns the lease's end, the
    token every later write of this run is conditional on; None if not claimed."""
    lease_until = now_ms + lease_ms
    query = (
        s.update()
        .where(s.c.id == sync_id)
        .where(s.c.active.is_(True))
        .where(sa.or_(s.c.lease_until.is_(None), s.c.lease_until <= now_ms))
        .values(lease_until=lease_until)
    )
    if due_only:
        query = query.where(s.c.next_run_at <= now_ms)
    return lease_until if conn.execute(query).rowcount == 1 else None


def renew(conn: Connection, sync_id: int, lease_until: int, new_lease_until: int) -> bool:
    """Extend our lease before another request; False if we no longer hold it."""
    result = conn.execute(
        s.update()
        .where(s.c.id == sync_id)
        .where(s.c.lease_until == lease_until)
        .values(lease_until=new_lease_until)
    )
    return result.rowcount == 1


def finish(
    conn: Connection, sync_id: int, lease_until: int, values: dict[str, Any], now_ms: int
) -> bool:
    """Write a run's outcome, if this run still holds the sync."""
    result = conn.execute(
        s.update()
        .where(s.c.id == sync_id)
        .where(s.c.lease_until == lease_until)
        .values(**values, updated_at=now_ms)
    )
    return result.rowcount == 1


def record_run(
    conn: Connection,
    *,
    sync_id: int,
    started_at: int,
    finished_at: int,
    added: int,
    removed: int,
    from_cursor: int,
    to_cursor: int,
    status: str,
    error: str | None,
) -> int:
    result = conn.execute(
        r.insert()
        .returning(r.c.id)
        .values(
            sync_id=sync_id,
            started_at=started_at,
            finished_at=finished_at,
            added=added,
            removed=removed,
            from_cursor=from_cursor,
            to_cursor=to_cursor,
            status=status,
            error=error,
        )
    )
    return int(result.scalar_one())


def runs(conn: Connection, sync_id: int, limit: int = 50, offset: int = 0) -> list[dict[str, Any]]:
    """Newest first."""
    rows = conn.execute(
        sa.select(r)
        .where(r.c.sync_id == sync_id)
        .order_by(r.c.id.desc())
        .limit(limit)
        .offset(offset)
    )
    return [
        {
            "id": int(row.id),
            "started_at": ms_to_iso(row.started_at),
            "finished_at": ms_to_iso(row.finished_at) if row.finished_at is not None else None,
            "added": int(row.added),
            "removed": int(row.removed),
            "from_cursor": int(row.from_cursor),
            "to_cursor": int(row.to_cursor),
            "status": row.status,
            "error": row.error,
        }
        for row in rows
    ]
