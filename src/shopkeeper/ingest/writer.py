"""Durable appends to the event log, with group commit.

Requests hand their rows to one writer thread; it inserts whatever has queued up in one
transaction and commits once, then answers every request of the group. One commit (and,
with synchronous=FULL, one fsync) serves many concurrent requests, so single-event
requests do not each pay for a commit. A request is answered only after its commit.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy.engine import Connection

from shopkeeper.ingest.spec import Accepted
from shopkeeper.storage import tables as t
from shopkeeper.storage.db import Database, json_dumps

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class WriteResult:
    inserted: int
    duplicates: int


class StorageUnavailable(Exception):
    pass


class _Item:
    __slots__ = ("done", "error", "event", "future", "loop", "result", "rows")

    def __init__(
        self,
        rows: list[dict[str, Any]],
        loop: asyncio.AbstractEventLoop | None,
        future: asyncio.Future[WriteResult] | None,
    ) -> None:
        self.rows = rows
        self.loop = loop
        self.future = future
        self.event = threading.Event() if future is None else None
        self.result: WriteResult | None = None
        self.error: BaseException | None = None


_STOP = object()

_COLUMNS = (
    "source_id",
    "message_id",
    "type",
    "event",
    "user_id",
    "anonymous_id",
    "partition",
    "timestamp",
    "received_at",
    "status",
    "payload",
)
_QUOTED = ", ".join(f'"{name}"' for name in _COLUMNS)
_SQLITE_INSERT = (
    f"INSERT OR IGNORE INTO events ({_QUOTED}) VALUES ({', '.join('?' for _ in _COLUMNS)})"
)
_PG_INSERT = (
    f"INSERT INTO events ({_QUOTED}) SELECT * FROM unnest("
    "%b::bigint[], %b::text[], %b::text[], %b::text[], %b::text[], %b::text[], "
    "%b::smallint[], %b::bigint[], %b::bigint[], %b::smallint[], %b::jsonb[]) "
    "ON CONFLICT (source_id, message_id) DO NOTHING RETURNING source_id, message_id"
)


def _values(row: dict[str, Any]) -> tuple[Any, ...]:
    return (
        row["source_id"],
        row["message_id"],
        row["type"],
        row["event"],
        row["user_id"],
        row["anonymous_id"],
        row["partition"],
        row["timestamp"],
        row["received_at"],
        row.get("status", t.PENDING),
        json_dumps(row["payload"]),
    )


class EventWriter:
    def __init__(
        self,
        db: Database,
        on_commit: Callable[[int], None] | None = None,
        max_group_rows: int = 5000,
    ) -> None:
        self.db = db
        self.on_commit = on_commit
        self.max_group_rows = max_group_rows
        self._queue: queue.Queue[Any] = queue.Queue()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="event-writer", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        """Write everything queued so far, then stop."""
        if self._thread is not None:
            self._queue.put(_STOP)
            self._thread.join()
            self._thread = None

    async def write(self, rows: list[dict[str, Any]]) -> WriteResult:
        if not rows:
            return WriteResult(0, 0)
        loop = asyncio.get_running_loop()
        future: asyncio.Future[WriteResult] = loop.create_future()
        self._queue.put(_Item(rows, loop, future))
        return await future

    def write_sync(self, rows: list[dict[str, Any]]) -> WriteResult:
        """For callers outside the event loop (imports, tests). Needs a started writer."""
        if not rows:
            return WriteResult(0, 0)
        item = _Item(rows, None, None)
        self._queue.put(item)
        assert item.event is not None
        item.event.wait()
        if item.error is not None:
            raise item.error
        assert item.result is not None
        return item.result

    def _run(self) -> None:
        stopping = False
        while not stopping:
            first = self._queue.get()
            if first is _STOP:
                break
            group: list[_Item] = [first]
            count = len(first.rows)
            while count < self.max_group_rows:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is _STOP:
                    stopping = True
                    break
                group.append(item)
                count += len(item.rows)
            self._commit(group, count)

    def _commit(self, group: list[_Item], count: int) -> None:
        try:
            with self.db.write() as conn:
                results = self._insert(conn, group)
        except Exception as exc:
            if len(group) > 1:
                # One request's rows must not sink the others: write them one by one.
                for item in group:
                    self._commit([item], len(item.rows))
                return
            log.exception("event log write failed")
            error = StorageUnavailable(f"the event log could not be written: {exc}")
            self._finish(group[0], None, error)
            return
        for item, result in zip(group, results, strict=True):
            self._finish(item, result, None)
        if self.on_commit is not None:
            try:
                self.on_commit(count)
            except Exception:
                log.exception("on_commit hook failed")

    def _insert(self, conn: Connection, group: list[_Item]) -> list[WriteResult]:
        """Insert every item's rows, skipping known (source, messageId) pairs, with a
        statement short and constant enough for the driver to cache (a multi-row VALUES
        list with thousands of parameters is parsed anew each time)."""
        if self.db.is_sqlite:
            results = []
            for item in group:
                cursor = conn.exec_driver_sql(_SQLITE_INSERT, [_values(row) for row in item.rows])
                fresh = max(cursor.rowcount, 0)
                results.append(WriteResult(fresh, len(item.rows) - fresh))
            return results
        rows = [row for item in group for row in item.rows]
        columns = [list(column) for column in zip(*(_values(row) for row in rows), strict=True)]
        # Binary parameters (%b): psycopg's text form escapes every JSON string of the
        # array with a regular expression, which cost more than the insert itself.
        driver = conn.connection.driver_connection
        assert driver is not None
        with driver.cursor() as cursor:
            cursor.execute(_PG_INSERT, columns)
            inserted = {(int(source_id), message_id) for source_id, message_id in cursor}
        results = []
        for item in group:
            fresh = 0
            for row in item.rows:
                key = (row["source_id"], row["message_id"])
                if key in inserted:
                    inserted.discard(key)
                    fresh += 1
            results.append(WriteResult(fresh, len(item.rows) - fresh))
        return results

    @staticmethod
    def _finish(item: _Item, result: WriteResult | None, error: BaseException | None) -> None:
        if item.future is not None and item.loop is not None:
            future = item.future

            def settle() -> None:
                if future.done():
                    return
                if error is not None:
                    future.set_exception(error)
                else:
                    future.set_result(result)  # type: ignore[arg-type]

            # RuntimeError: the request's loop is gone (shutdown); nothing is waiting.
            with contextlib.suppress(RuntimeError):
                item.loop.call_soon_threadsafe(settle)
        else:
            item.result = result
            item.error = error
            assert item.event is not None
            item.event.set()


def event_row(accepted: Accepted, source_id: int, received_ms: int) -> dict[str, Any]:
    return {
        "source_id": source_id,
        "message_id": accepted.message_id,
        "type": accepted.type,
        "event": accepted.event,
        "user_id": accepted.user_id,
        "anonymous_id": accepted.anonymous_id,
        "partition": accepted.partition,
        "timestamp": accepted.timestamp_ms,
        "received_at": received_ms,
        "status": t.PENDING,
        "payload": accepted.payload,
    }
