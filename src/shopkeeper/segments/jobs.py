"""The segments' scheduled work: refreshing the segments that are due, and recording
every segment's size for the size-over-time chart."""

from __future__ import annotations

import logging

import sqlalchemy as sa

from shopkeeper.config import Settings
from shopkeeper.segments.membership import (
    RefreshResult,
    due_for_refresh,
    live_sizes,
    record_size,
    refresh_segment,
)
from shopkeeper.segments.store import all_segments
from shopkeeper.storage import tables as t
from shopkeeper.storage.db import Database

log = logging.getLogger(__name__)


def refresh_due_segments(db: Database, settings: Settings, now_ms: int) -> list[RefreshResult]:
    with db.read() as conn:
        segments = all_segments(conn)
    due = due_for_refresh(
        segments, now_ms, settings.segment_time_refresh_minutes, settings.segment_reconcile_minutes
    )
    out = []
    for segment in due:
        result = refresh_segment(db, segment.key, now_ms)
        if result is not None:
            log.info(
                "segment %s refreshed: %d in, %d entered, %d exited (%.2f s)",
                result.key, result.size, result.entered, result.exited, result.seconds,
            )  # fmt: skip
            out.append(result)
    return out


def record_sizes(db: Database, settings: Settings, now_ms: int) -> int:
    """One size point per segment for this hour (the chart's resolution)."""
    with db.write() as conn:
        ids = [int(sid) for sid in conn.execute(sa.select(t.segments.c.id)).scalars()]
        sizes = live_sizes(conn, ids)
        for sid in ids:
            record_size(conn, db, sid, now_ms, sizes.get(sid, 0))
    return len(ids)
