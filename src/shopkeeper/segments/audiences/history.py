"""Reading segment_history by id without ever skipping a row.

A sync remembers the last history id its destination acknowledged and next reads the
rows above it. That is only safe if no row at or below the id it moves to can still
appear later. On PostgreSQL it can: ids come from a sequence when a row is inserted, not
when its transaction commits, so a slow transaction may commit id 10 after a fast one
committed id 11; a reader that saw 11 and moved its cursor there would never see 10.

`safe_mark` returns an id below which every row that will ever exist is committed:
it takes a SHARE lock on segment_history for an instant, which waits for every
transaction that has inserted rows to finish and keeps new ones out while it reads
max(id), then lets go. (INSERT takes its table lock before drawing the id, so an id
can only be drawn by a transaction the lock waits for.) On SQLite a write transaction
holds the whole database, so the committed max(id) is already safe.
"""

from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from shopkeeper.segments.audiences.delta import NetChange, members_at_mark, net_changes
from shopkeeper.storage import tables as t
from shopkeeper.storage.db import Database

h = t.segment_history

# How long a sync waits for the pipeline's open transactions before giving up this time.
LOCK_TIMEOUT = "10s"


def safe_mark(db: Database) -> int:
    with db.read() as conn, conn.begin():
        if not db.is_sqlite:
            conn.execute(sa.text(f"SET LOCAL lock_timeout = '{LOCK_TIMEOUT}'"))
            conn.execute(sa.text("LOCK TABLE segment_history IN SHARE MODE"))
        top = conn.execute(sa.select(sa.func.max(h.c.id))).scalar()
    return int(top or 0)


def visible_top(db: Database) -> int:
    """max(id) as committed now, without waiting for anyone. Rows at or below a cursor
    are all committed (the cursor came from a safe mark), so when this is not above the
    cursor there is nothing to send yet, and no lock is needed to know it."""
    with db.read() as conn:
        return int(conn.execute(sa.select(sa.func.max(h.c.id))).scalar() or 0)


class SafeMarks:
    """One safe mark per scheduler call, taken when first needed: the pipeline pauses for
    one lock, not one per sync. A mark stays safe as time passes (rows below it are
    committed for good), so every sync of the call may use it."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self._mark: int | None = None

    def get(self) -> int:
        if self._mark is None:
            self._mark = safe_mark(self.db)
        return self._mark


@dataclass(frozen=True, slots=True)
class DeltaBatch:
    to_cursor: int
    change: NetChange
    rows: int
    more: bool  # stopped at the row limit: more history waits above to_cursor


def delta_batch(
    conn: Connection, segment_id: int, cursor: int, mark: int, limit: int
) -> DeltaBatch:
    """The net change of the segment's history rows in (cursor, mark], at most `limit`
    rows of it (the rest is the next batch's)."""
    rows = conn.execute(
        sa.select(h.c.id, h.c.profile_id, h.c.entered)
        .where(h.c.segment_id == segment_id)
        .where(h.c.id > cursor)
        .where(h.c.id <= mark)
        .order_by(h.c.id)
        .limit(limit + 1)  # one more, to know whether another batch follows
    ).all()
    more = len(rows) > limit
    rows = rows[:limit]
    to_cursor = int(rows[-1].id) if more else mark
    change = net_changes((int(row.profile_id), bool(row.entered)) for row in rows)
    return DeltaBatch(max(to_cursor, cursor), change, len(rows), more)


@dataclass(frozen=True, slots=True)
class FullLoadPage:
    members: list[int]
    # The last profile id this page covers, or None when it was the last page.
    next_after: int | None


def full_load_page(
    conn: Connection, segment_id: int, mark: int, after: int, limit: int
) -> FullLoadPage:
    """The segment's members as of history id `mark` with a profile id above `after`.

    Read from today's members (the source of truth: members whose entry history is gone,
    after a rebuild or a pruned history, are still there), corrected by the history rows
    after the mark for the profiles of this page. Call it inside one snapshot.
    """
    current = conn.execute(
        sa.select(t.segment_members.c.profile_id)
        .where(t.segment_members.c.segment_id == segment_id)
        .where(t.segment_members.c.profile_id > after)
        .order_by(t.segment_members.c.profile_id)
        .limit(limit + 1)  # one more, to know whether another page follows
    ).scalars()
    current_ids = [int(pid) for pid in current]
    upper = current_ids[limit - 1] if len(current_ids) > limit else None
    current_ids = current_ids[:limit]
    later = (
        sa.select(h.c.profile_id, h.c.entered)
        .where(h.c.segment_id == segment_id)
        .where(h.c.id > mark)
        .where(h.c.profile_id > after)
        .order_by(h.c.id)
    )
    if upper is not None:
        later = later.where(h.c.profile_id <= upper)
    rows = ((int(row.profile_id), bool(row.entered)) for row in conn.execute(later))
    return FullLoadPage(members_at_mark(current_ids, rows), upper)
