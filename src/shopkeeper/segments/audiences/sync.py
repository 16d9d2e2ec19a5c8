"""Keeping an audience in sync with a segment at a webhook destination.

Each run of a sync, in the one process that claimed it:

1. A full load, if one is pending: the segment's members as of a safe history mark,
   page by page (profile id order), sent as additions. The mark becomes the cursor with
   the first acknowledged page, and progress (`full_load_after`) moves with each one.
2. Then deltas: history rows above the cursor, collapsed into each profile's net change,
   sent as additions and removals.

The cursor (and full-load progress) moves only in the transaction that records a
destination's 2xx answer, so a failure, a timeout or a crash at any point re-sends the
same change later rather than losing it. Destinations must therefore accept a repeated
batch (an addition of a member they have, a removal of one they do not).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import sqlalchemy as sa

from shopkeeper import __version__
from shopkeeper.config import Settings
from shopkeeper.segments.audiences import delta, history, store
from shopkeeper.segments.audiences.destinations import DestinationRefused, check_url
from shopkeeper.segments.audiences.fields import parse_fields
from shopkeeper.segments.audiences.hashing import Platform, columns_for
from shopkeeper.segments.audiences.members import RecordBuilder
from shopkeeper.storage.db import Database
from shopkeeper.timeutil import ms_to_iso

log = logging.getLogger(__name__)

# A claimed sync is ours for this long after the claim and after each batch (the lease is
# renewed before every request); a run sends at most MAX_BATCHES requests.
LEASE_MS = 15 * 60_000
MAX_BATCHES = 10

Clock = Callable[[], int]


@dataclass
class SyncOutcome:
    sync_id: int
    # ok (sent, caught up), more (sent, more waits), up_to_date (nothing to send),
    # failed (the destination did not acknowledge), busy (another process runs it, or
    # took it over when this run's lease ran out),
    # skipped (the pipeline held segment_history too long; tried again next time)
    status: str
    run_ids: list[int] = field(default_factory=list)
    error: str | None = None


def builder_for(sync: store.AudienceSync, settings: Settings) -> RecordBuilder:
    if sync.kind == "webhook":
        return RecordBuilder(
            fields=parse_fields(sync.fields), default_region=settings.default_phone_region
        )
    platform: Platform = "meta" if sync.kind == "meta" else "google"
    return RecordBuilder(
        columns=columns_for(platform, list(sync.fields)),
        default_region=settings.default_phone_region,
    )


def run_due_syncs(
    db: Database,
    settings: Settings,
    now_ms: int,
    client: httpx.Client,
    *,
    clock: Clock | None = None,
) -> list[SyncOutcome]:
    """Run every active sync that is due at `now_ms` (the scheduler calls this every
    minute or so). `client` carries the timeouts; it must not follow redirects (httpx's
    default), or a destination could bounce requests to an address the URL check
    refused. `clock` (the services' clock) dates the claims, leases and runs of a long
    call as time passes; without it everything is dated `now_ms`."""
    now = clock or (lambda: now_ms)
    marks = history.SafeMarks(db)
    outcomes = []
    with db.read() as conn:
        due = store.due_ids(conn, now_ms)
    for sync_id in due:
        with db.write() as conn:
            lease = store.claim(conn, sync_id, now(), LEASE_MS, due_only=True)
        if lease is None:
            continue  # another process took it first
        outcomes.append(_run_claimed(db, settings, sync_id, lease, now, client, marks))
    return outcomes


def run_sync_now(
    db: Database,
    settings: Settings,
    sync_id: int,
    now_ms: int,
    client: httpx.Client,
    *,
    clock: Clock | None = None,
) -> SyncOutcome:
    """Run one sync at once, whatever its schedule ("Sync now")."""
    now = clock or (lambda: now_ms)
    with db.write() as conn:
        lease = store.claim(conn, sync_id, now(), LEASE_MS, due_only=False)
    if lease is None:
        return SyncOutcome(sync_id, "busy")
    return _run_claimed(db, settings, sync_id, lease, now, client, history.SafeMarks(db))


@dataclass
class _Batch:
    full_load: bool
    from_cursor: int
    to_cursor: int
    added: list[dict[str, Any]]
    removed: list[dict[str, Any]]
    # The sync's state once the destination has this batch (cursor, full_load_after).
    done: dict[str, Any]
    # Another batch may follow in this run: more pages, more history, or the deltas
    # that came in while a full load was under way.
    more: bool

    @property
    def empty(self) -> bool:
        return not self.full_load and not self.added and not self.removed


def _next_batch(
    db: Database,
    sync: store.AudienceSync,
    builder: RecordBuilder,
    limit: int,
    marks: history.SafeMarks,
) -> _Batch | None:
    """The next request's content; None when there is no history past the cursor."""
    pending = sync.full_load_after
    if pending is not None:
        mark = marks.get() if pending == store.FULL_LOAD_PENDING else sync.cursor
        with db.snapshot() as conn:
            page = history.full_load_page(conn, sync.segment_id, mark, max(pending, 0), limit)
            added = builder.records(conn, page.members)
        return _Batch(
            full_load=True,
            from_cursor=mark,
            to_cursor=mark,
            added=added,
            removed=[],
            done={"cursor": mark, "full_load_after": page.next_after},
            more=True,
        )
    if history.visible_top(db) <= sync.cursor:
        return None
    mark = marks.get()
    if mark <= sync.cursor:
        return None
    with db.snapshot() as conn:
        delta_rows = history.delta_batch(conn, sync.segment_id, sync.cursor, mark, limit)
        added = builder.records(conn, delta_rows.change.added)
        removed = builder.records(conn, delta_rows.change.removed)
    return _Batch(
        full_load=False,
        from_cursor=sync.cursor,
        to_cursor=delta_rows.to_cursor,
        added=added,
        removed=removed,
        done={"cursor": delta_rows.to_cursor},
        more=delta_rows.more,
    )


def _post(client: httpx.Client, sync: store.AudienceSync, body: dict[str, Any]) -> str | None:
    """Send one batch; None when acknowledged, else an error text without personal data
    (never the response body, which may echo the records)."""
    headers = {"User-Agent": f"Shopkeeper/{__version__}", **sync.headers}
    try:
        # Streamed and closed unread: only the status matters, and a destination must not
        # be able to fill our memory with its answer.
        with client.stream("POST", sync.url, json=body, headers=headers) as response:
            status, reason = response.status_code, response.reason_phrase or ""
    except httpx.TimeoutException:
        return "the destination did not answer in time"
    except httpx.HTTPError as exc:
        return f"could not reach the destination ({type(exc).__name__}: {str(exc)[:200]})"
    if 200 <= status < 300:
        return None
    return f"the destination answered HTTP {status} {reason}".rstrip()


def _run_claimed(
    db: Database,
    settings: Settings,
    sync_id: int,
    lease: int,
    clock: Clock,
    client: httpx.Client,
    marks: history.SafeMarks,
) -> SyncOutcome:
    outcome = SyncOutcome(sync_id, "up_to_date")
    now_ms = clock()
    try:
        for batch_number in range(MAX_BATCHES):
            now_ms = clock()
            if batch_number:
                renewed = now_ms + LEASE_MS
                with db.write() as conn:
                    if not store.renew(conn, sync_id, lease, renewed):
                        return _lost(outcome)
                lease = renewed
            with db.read() as conn:
                sync = store.get(conn, sync_id)
            if sync is None:
                return outcome  # deleted meanwhile
            if sync.segment_key is None:
                gone = "the segment was deleted"
                _store(db, sync, lease, now_ms, {"active": False, "last_error": gone})
                outcome.status, outcome.error = "failed", gone
                return outcome
            try:
                check_url(sync.url, allow_private=settings.webhook_allow_private)
            except DestinationRefused as exc:
                _fail(db, sync, lease, (now_ms, now_ms), settings, str(exc), None, outcome)
                return outcome
            try:
                builder = builder_for(sync, settings)
            except ValueError as exc:  # a field that no longer exists (UnknownField)
                _fail(db, sync, lease, (now_ms, now_ms), settings, str(exc), None, outcome)
                return outcome
            batch = _next_batch(db, sync, builder, settings.audience_sync_batch_size, marks)
            if batch is None or batch.empty:
                # Nothing to tell the destination (only other segments' history, or
                # changes that cancelled out): move past it quietly.
                more = batch is not None and batch.more
                _store(db, sync, lease, now_ms, batch.done if batch else {}, keep=more)
                if more:
                    continue
                outcome.status = "ok" if outcome.run_ids else "up_to_date"
                return outcome
            body = delta.payload(
                audience_id=sync.id,
                audience_name=sync.name,
                kind=sync.kind,
                segment_key=sync.segment_key,
                full_load=batch.full_load,
                added=batch.added,
                removed=batch.removed,
                cursor=batch.to_cursor,
                sent_at=ms_to_iso(now_ms),
            )
            error = _post(client, sync, body)
            finished = clock()
            if error is not None:
                _fail(db, sync, lease, (now_ms, finished), settings, error, batch, outcome)
                return outcome
            if not _succeed(db, sync, lease, (now_ms, finished), batch, outcome):
                return _lost(outcome)
            outcome.status = "ok"
            if not batch.more:
                return outcome
        # Enough for one run; the rest is due at once, for the next scheduler tick.
        with db.read() as conn:
            last = store.get(conn, sync_id)
        if last is not None:
            _store(db, last, lease, now_ms, {"next_run_at": now_ms})
        outcome.status = "more"
        return outcome
    except sa.exc.OperationalError as exc:
        # The pipeline held segment_history past the lock timeout, or the database went
        # away: nothing was sent or recorded for this batch. Not the destination's
        # fault, so no failure is counted; the sync is tried again in a minute.
        log.warning("audience sync %s skipped: %s", sync_id, exc)
        try:
            with db.write() as conn:
                values = {"lease_until": None, "next_run_at": now_ms + 60_000}
                store.finish(conn, sync_id, lease, values, now_ms)
        except sa.exc.OperationalError:
            pass  # the lease runs out by itself
        outcome.status, outcome.error = "skipped", "the database was busy; tried again soon"
        return outcome


def _lost(outcome: SyncOutcome) -> SyncOutcome:
    # Our lease ran out and another process took the sync over: it sends from the
    # acknowledged cursor again, so nothing of ours may be recorded.
    outcome.status, outcome.error = "busy", "another process took this sync over"
    return outcome


def _store(
    db: Database,
    sync: store.AudienceSync,
    lease: int,
    now_ms: int,
    values: dict[str, Any],
    *,
    keep: bool = False,
) -> bool:
    """Write state under our lease; keep the lease when the run goes on, else give it
    back and schedule the next run one interval from now (unless `values` says)."""
    values = {
        "lease_until": lease if keep else None,
        "next_run_at": now_ms if keep else now_ms + sync.interval_minutes * 60_000,
        **values,
    }
    with db.write() as conn:
        return store.finish(conn, sync.id, lease, values, now_ms)


def _succeed(
    db: Database,
    sync: store.AudienceSync,
    lease: int,
    times: tuple[int, int],
    batch: _Batch,
    outcome: SyncOutcome,
) -> bool:
    started, now_ms = times
    values = {
        **batch.done,
        "failures": 0,
        "last_error": None,
        "lease_until": lease if batch.more else None,
        "next_run_at": now_ms if batch.more else now_ms + sync.interval_minutes * 60_000,
    }
    with db.write() as conn:
        if not store.finish(conn, sync.id, lease, values, now_ms):
            # Our lease ran out and someone else holds the sync: they will send this
            # batch again; recording it here could move the cursor under them.
            return False
        outcome.run_ids.append(
            store.record_run(
                conn,
                sync_id=sync.id,
                started_at=started,
                finished_at=now_ms,
                added=len(batch.added),
                removed=len(batch.removed),
                from_cursor=batch.from_cursor,
                to_cursor=batch.to_cursor,
                status="ok",
                error=None,
            )
        )
    return True


def _fail(
    db: Database,
    sync: store.AudienceSync,
    lease: int,
    times: tuple[int, int],
    settings: Settings,
    error: str,
    batch: _Batch | None,
    outcome: SyncOutcome,
) -> None:
    started, now_ms = times
    failures = sync.failures + 1
    wait = delta.backoff_ms(failures, settings.audience_sync_retry_seconds * 1000)
    values = {
        "failures": failures,
        "last_error": error,
        "lease_until": None,
        "next_run_at": now_ms + wait,
    }
    with db.write() as conn:
        if store.finish(conn, sync.id, lease, values, now_ms):
            outcome.run_ids.append(
                store.record_run(
                    conn,
                    sync_id=sync.id,
                    started_at=started,
                    finished_at=now_ms,
                    added=len(batch.added) if batch else 0,
                    removed=len(batch.removed) if batch else 0,
                    from_cursor=batch.from_cursor if batch else sync.cursor,
                    to_cursor=batch.to_cursor if batch else sync.cursor,
                    status="failed",
                    error=error,
                )
            )
    outcome.status, outcome.error = "failed", error
