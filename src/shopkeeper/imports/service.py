"""Running an import: read a file record by record, turn rows into messages (customers,
orders) or products, and write them in chunks, keeping the `imports` row up to date.

Customers and orders go to the event log as messages from the sources "crm" and "pos",
checked by the same validator as live events and written by an EventWriter, so the
pipeline treats them as it treats everything else. Products go to the catalog.

Memory holds one chunk (CHUNK_ROWS messages or products) and the first MAX_ERRORS
rejections, whatever the size of the file. A row that cannot be imported is counted
and reported with its line and reason; the import goes on.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from shopkeeper.admin import audit
from shopkeeper.catalog.products import ProductError, parse_product
from shopkeeper.catalog.service import upsert_products
from shopkeeper.imports import messages
from shopkeeper.imports.customers import customer_message
from shopkeeper.imports.mapping import MappedRow, RowMapper, build_map, check_required
from shopkeeper.imports.model import (
    CHUNK_ROWS,
    KINDS,
    MAX_ERRORS,
    ImportFailure,
    ImportOptions,
    ImportProgress,
    ImportSummary,
    RowError,
)
from shopkeeper.imports.orders import OrderAssembler, order_message
from shopkeeper.imports.readers import RecordFile, check_delimiter, check_encoding, detect_format
from shopkeeper.ingest.sources import ensure_source
from shopkeeper.ingest.spec import Envelope, Rejection
from shopkeeper.ingest.writer import EventWriter, event_row
from shopkeeper.storage import tables as t
from shopkeeper.timeutil import ms_to_iso

if TYPE_CHECKING:
    from shopkeeper.bootstrap import Services

__all__ = [
    "ImportFailure",
    "ImportOptions",
    "ImportProgress",
    "ImportSummary",
    "check_options",
    "get_import",
    "list_imports",
    "run_import",
    "start_import",
]

log = logging.getLogger(__name__)

# kind -> (source name, source kind) of the messages it becomes.
SOURCES = {"customers": ("crm", "crm"), "orders": ("pos", "pos")}
RUNNING, DONE, FAILED = "running", "done", "failed"

ProgressCallback = Callable[[ImportProgress], None]

# Background imports running at once in this process; more uploads wait their turn
# (shown as running, with no progress yet) instead of each taking a thread and the
# database's write lock at the same time.
_BACKGROUND = threading.BoundedSemaphore(2)
# Set when the server shuts down: background imports stop at their next chunk and are
# recorded as interrupted instead of staying "running" forever.
_STOPPING = threading.Event()
_THREADS: set[threading.Thread] = set()
INTERRUPTED = (
    "the import was interrupted ({why}) after {rows:,} rows; import the file again: the "
    "rows already in are skipped as duplicates"
)


class _Interrupted(Exception):
    def __init__(self, why: str) -> None:
        self.why = why


def stop_background_imports(timeout_s: float = 10.0) -> None:
    """Ask running background imports to stop at their next chunk and wait for them to
    record it (the server's shutdown calls this)."""
    _STOPPING.set()
    deadline = time.monotonic() + timeout_s
    for thread in list(_THREADS):
        thread.join(max(0.0, deadline - time.monotonic()))


def allow_background_imports() -> None:
    """Undo stop_background_imports (a server started again in the same process)."""
    _STOPPING.clear()


def check_options(kind: str, filename: str, options: ImportOptions) -> None:
    """Everything about an import that can be checked before reading the file; raises
    ImportFailure with the one-line reason."""
    if kind not in KINDS:
        raise ImportFailure(f"kind must be one of {', '.join(KINDS)}, not {kind!r}")
    detect_format(filename, options.format)
    check_encoding(options.encoding)
    check_delimiter(options.delimiter)
    build_map(kind, options.mapping)


def _file_size(path: Path, filename: str) -> int:
    try:
        if not path.is_file():
            raise ImportFailure(f"{filename}: no such file")
        with path.open("rb"):
            pass
        return path.stat().st_size
    except OSError as exc:
        raise ImportFailure(f"cannot read {filename}: {exc.strerror or exc}") from None


def _create(
    services: Services,
    kind: str,
    filename: str,
    options: ImportOptions,
    actor: str,
    size: int,
) -> int:
    now = services.clock.now_ms()
    with services.db.write() as conn:
        import_id = conn.execute(
            t.imports.insert()
            .values(
                kind=kind,
                filename=filename[:500],
                status=RUNNING,
                actor=actor[:200],
                created_at=now,
                bytes_total=size,
                bytes_read=0,
                rows_read=0,
                imported=0,
                duplicates=0,
                rejected=0,
                errors=[],
                options=options.to_json(),
            )
            .returning(t.imports.c.id)
        ).scalar_one()
        audit.record(
            conn,
            at_ms=now,
            actor=actor,
            action=f"import.{kind}",
            target=f"import {import_id}",
            details={"filename": filename[:500], **options.to_json()},
        )
    return int(import_id)


def run_import(
    services: Services,
    kind: str,
    path: Path,
    filename: str,
    options: ImportOptions,
    actor: str,
    progress: ProgressCallback | None = None,
) -> ImportSummary:
    """Import a file now, in this thread. Raises ImportFailure (and creates no import)
    when the options are bad or the file cannot be opened; a file that turns out to be
    unreadable later ends as a failed import, with its reason in the summary."""
    check_options(kind, filename, options)
    size = _file_size(path, filename)
    import_id = _create(services, kind, filename, options, actor, size)
    return _Run(services, import_id, kind, path, filename, options, progress).execute()


def start_import(
    services: Services,
    kind: str,
    path: Path,
    filename: str,
    options: ImportOptions,
    actor: str,
    *,
    delete_after: bool = False,
) -> int:
    """Create the import and run it in a background thread; returns its id at once.
    `delete_after`: remove the file when done (an uploaded temporary file)."""
    try:
        check_options(kind, filename, options)
        size = _file_size(path, filename)
        import_id = _create(services, kind, filename, options, actor, size)
    except BaseException:
        if delete_after:
            path.unlink(missing_ok=True)
        raise

    def work() -> None:
        try:
            with _BACKGROUND:
                run = _Run(services, import_id, kind, path, filename, options, None)
                run.background = True
                run.execute()
        finally:
            if delete_after:
                path.unlink(missing_ok=True)
            _THREADS.discard(thread)

    thread = threading.Thread(target=work, name=f"import-{import_id}", daemon=True)
    _THREADS.add(thread)
    thread.start()
    return import_id


def _out(row: Any) -> dict[str, Any]:
    total = row.bytes_total
    return {
        "id": int(row.id),
        "kind": row.kind,
        "filename": row.filename,
        "status": row.status,
        "actor": row.actor,
        "created_at": ms_to_iso(row.created_at),
        "finished_at": ms_to_iso(row.finished_at) if row.finished_at is not None else None,
        "bytes_total": total,
        "bytes_read": int(row.bytes_read),
        "progress": round(min(row.bytes_read / total, 1.0), 4) if total else None,
        "rows_read": int(row.rows_read),
        "imported": int(row.imported),
        "duplicates": int(row.duplicates),
        "rejected": int(row.rejected),
        "errors": row.errors,
        "options": row.options,
        "message": row.message,
    }


def get_import(conn: Connection, import_id: int) -> dict[str, Any] | None:
    row = conn.execute(sa.select(t.imports).where(t.imports.c.id == import_id)).first()
    return _out(row) if row is not None else None


def list_imports(conn: Connection, limit: int = 50) -> list[dict[str, Any]]:
    """The most recent imports first."""
    rows = conn.execute(sa.select(t.imports).order_by(t.imports.c.id.desc()).limit(limit)).all()
    return [_out(row) for row in rows]


class _Run:
    def __init__(
        self,
        services: Services,
        import_id: int,
        kind: str,
        path: Path,
        filename: str,
        options: ImportOptions,
        progress: ProgressCallback | None,
    ) -> None:
        self.services = services
        self.import_id = import_id
        self.kind = kind
        self.path = path
        self.filename = filename
        self.options = options
        self.progress = progress
        self.rows_read = self.imported = self.duplicates = self.rejected = 0
        self.bytes_read = 0
        self.bytes_total: int | None = None
        self.errors: list[dict[str, Any]] = []
        self.pending: list[tuple[int, Any]] = []
        self.writer: EventWriter | None = None
        self.file: RecordFile | None = None
        self.source_id = 0
        self.source_name = ""
        self.background = False  # started by start_import: stops with the server

    # -- the loop -----------------------------------------------------------------------

    def execute(self) -> ImportSummary:
        status, message = DONE, None
        try:
            self._read()
        except ImportFailure as exc:
            status, message = FAILED, str(exc)
            # The rows read before the file turned out damaged are good: keep them.
            self._flush_quietly()
        except _Interrupted as exc:
            status, message = FAILED, INTERRUPTED.format(why=exc.why, rows=self.rows_read)
        except (KeyboardInterrupt, SystemExit):
            # Ctrl-C in `shopkeeper import`: record it, then let the command stop.
            status, message = FAILED, INTERRUPTED.format(why="stopped", rows=self.rows_read)
            self._finish(status, message)
            raise
        except Exception as exc:
            # The exception's text may quote row values (a database error shows its
            # parameters): it goes to the log, not to the import's record.
            log.exception("import %s failed", self.import_id)
            status = FAILED
            message = f"the import stopped on an internal error ({type(exc).__name__}); see the log"
        self._finish(status, message)
        return ImportSummary(
            import_id=self.import_id,
            kind=self.kind,
            filename=self.filename,
            status=status,
            bytes_total=self.bytes_total,
            bytes_read=self.bytes_read,
            rows_read=self.rows_read,
            imported=self.imported,
            duplicates=self.duplicates,
            rejected=self.rejected,
            errors=list(self.errors),
            message=message,
        )

    def _flush_quietly(self) -> None:
        if self.pending and self.file is not None:
            try:
                self._flush()
            except Exception:
                log.exception("import %s: could not write the last rows", self.import_id)

    def _finish(self, status: str, message: str | None) -> None:
        if self.writer is not None:
            self.writer.stop()
            self.writer = None
        try:
            self._save(status, message)
        except Exception:
            log.exception("import %s: could not record the result", self.import_id)

    def _read(self) -> None:
        if self.background and _STOPPING.is_set():  # waited its turn past the shutdown
            raise _Interrupted("the server stopped")
        column_map = build_map(self.kind, self.options.mapping)
        with RecordFile(
            self.path,
            name=self.filename,
            format=self.options.format,
            encoding=self.options.encoding,
            delimiter=self.options.delimiter,
        ) as file:
            self.file = file
            self.bytes_total = file.bytes_total
            records = file.records()
            mapper = RowMapper(column_map, file.columns)
            if mapper.fixed is not None:
                check_required(self.kind, mapper.fixed)
            self._open_output()
            assembler = OrderAssembler() if self.kind == "orders" else None
            for record in records:
                self.rows_read += 1
                if record.values is None:
                    self._reject(record.line, record.error or "unreadable line")
                else:
                    row = mapper.map(record.line, record.values)
                    if assembler is not None:
                        self._order_row(assembler, row)
                    else:
                        self._row(row)
                # Every chunk of rows, even when they were all rejected: progress moves.
                if len(self.pending) >= CHUNK_ROWS or self.rows_read % CHUNK_ROWS == 0:
                    self._flush()
                    if self.background and _STOPPING.is_set():
                        raise _Interrupted("the server stopped")
            if assembler is not None:
                self._order_row(assembler, None)
            self.bytes_read = file.bytes_read
            self._flush()

    def _open_output(self) -> None:
        if self.kind not in SOURCES:
            return
        services = self.services
        name, source_kind = SOURCES[self.kind]
        try:
            source = ensure_source(services.db, name, source_kind, services.clock.now_ms())
        except sa.exc.IntegrityError:  # created by a concurrent import a moment ago
            source = ensure_source(services.db, name, source_kind, services.clock.now_ms())
        self.source_id, self.source_name = source.id, source.name
        runner = services.runner
        # A writer of its own: the import outlives no request, and the application's
        # writer stops with the server while a background import may still be running.
        self.writer = EventWriter(services.db, on_commit=runner.wake if runner else None)
        self.writer.start()

    def _reject(self, line: int, reason: str) -> None:
        self.rejected += 1
        if len(self.errors) < MAX_ERRORS:
            self.errors.append({"line": line, "reason": reason})

    def _row(self, row: MappedRow) -> None:
        try:
            if self.kind == "customers":
                self.pending.append((row.line, customer_message(row)))
            else:
                raw = {**row.extras, **row.values}
                self.pending.append((row.line, parse_product(raw)))
        except RowError as exc:
            self._reject(exc.line or row.line, exc.reason)
        except ProductError as exc:
            self._reject(row.line, str(exc))

    def _order_row(self, assembler: OrderAssembler, row: MappedRow | None) -> None:
        """Feed one row (None: the end of the file); build the order it completes."""
        try:
            group = assembler.add(row) if row is not None else assembler.finish()
        except RowError as exc:  # the previous order had too many rows
            self._reject(exc.line or 0, exc.reason)
            group = None
        if group is None:
            return
        try:
            self.pending.append((group[0].line, order_message(group)))
        except RowError as exc:
            self._reject(exc.line or group[0].line, exc.reason)

    # -- output -------------------------------------------------------------------------

    def _flush(self) -> None:
        pending, self.pending = self.pending, []
        if self.kind == "products":
            self._write_products(pending)
        else:
            self._write_events(pending)
        if self.file is not None:
            self.bytes_read = self.file.bytes_read
        self._save(RUNNING, None)
        if self.progress is not None:
            self.progress(
                ImportProgress(
                    self.bytes_read,
                    self.bytes_total,
                    self.rows_read,
                    self.imported,
                    self.duplicates,
                    self.rejected,
                )
            )

    def _write_events(self, pending: list[tuple[int, Any]]) -> None:
        services = self.services
        now = services.clock.now_ms()
        envelope = Envelope(received_ms=now)
        rows = []
        for line, message in pending:
            size, nul = messages.stamp(self.kind, message)
            checked = services.validator.check(
                message, index=line, size=size, envelope=envelope, strip_nul=nul
            )
            if isinstance(checked, Rejection):
                self._reject(line, checked.message)
            else:
                rows.append(event_row(checked, self.source_id, now))
        if not rows:
            return
        assert self.writer is not None
        result = self.writer.write_sync(rows)
        self.imported += result.inserted
        self.duplicates += result.duplicates
        services.metrics.events_received.labels(self.source_name).inc(result.inserted)
        if result.duplicates:
            services.metrics.events_duplicate.inc(result.duplicates)

    def _write_products(self, pending: list[tuple[int, Any]]) -> None:
        if not pending:
            return
        services = self.services
        summary = upsert_products(
            services.db,
            [product for _line, product in pending],
            services.clock.now_ms(),
            low_stock_threshold=services.settings.low_stock_threshold,
        )
        self.imported += summary.created + summary.updated
        self.duplicates += summary.unchanged

    def _save(self, status: str, message: str | None) -> None:
        values: dict[str, Any] = {
            "status": status,
            "bytes_read": self.bytes_read,
            "rows_read": self.rows_read,
            "imported": self.imported,
            "duplicates": self.duplicates,
            "rejected": self.rejected,
            "errors": self.errors,
            "message": message,
        }
        if status != RUNNING:
            values["finished_at"] = self.services.clock.now_ms()
        with self.services.db.write() as conn:
            conn.execute(t.imports.update().where(t.imports.c.id == self.import_id).values(values))
