"""A segment's members as CSV, streamed.

Members are read a page at a time (keyset on profile id) inside one snapshot, and the
CSV leaves in chunks of about 64 KB, so memory stays flat however large the segment.
RFC 4180 quoting (csv module), CRLF line ends, UTF-8 without a byte-order mark: the
advertising platforms' uploaders read the first header as "email", not "\\ufeffemail".
"""

from __future__ import annotations

import csv
import io
from collections.abc import Generator
from typing import Any

from shopkeeper.segments.audiences.members import (
    RecordBuilder,
    member_ids_after,
    profile_data,
)
from shopkeeper.storage.db import Database, json_dumps

PAGE = 1000
_CHUNK_CHARS = 64 * 1024


def cell(value: Any) -> str:
    """One CSV cell: empty for unknown, JSON for lists and objects."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value
    if isinstance(value, int | float):
        return str(value)
    return json_dumps(value)


def open_csv_stream(
    db: Database, segment_id: int, builder: RecordBuilder, page: int = PAGE
) -> Generator[bytes, None, None]:
    """The CSV as chunks of UTF-8 bytes. The read transaction is open when this returns
    (so a database error surfaces before the response starts); close the generator to
    give it back early."""
    stream = _stream(db, segment_id, builder, page)
    next(stream)
    return stream


def _stream(
    db: Database, segment_id: int, builder: RecordBuilder, page: int
) -> Generator[bytes, None, None]:
    with db.snapshot() as conn:
        yield b""
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\r\n")
        writer.writerow(builder.headers)
        after = 0
        while True:
            ids = member_ids_after(conn, segment_id, after, page)
            data = profile_data(conn, ids)
            for profile_id in ids:
                writer.writerow([cell(value) for value in builder.row(data[profile_id])])
            if buffer.tell() >= _CHUNK_CHARS:
                yield buffer.getvalue().encode("utf-8")
                buffer.seek(0)
                buffer.truncate()
            if len(ids) < page:
                break
            after = ids[-1]
        yield buffer.getvalue().encode("utf-8")
