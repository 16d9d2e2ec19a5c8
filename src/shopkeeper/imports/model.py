"""Plain values shared by the import modules: options, progress, summaries, errors."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

KINDS = ("customers", "orders", "products")
FORMATS = ("csv", "jsonl")
# Rows per chunk: one event-log write and one progress update each. Memory holds one
# chunk at a time, whatever the size of the file.
CHUNK_ROWS = 1000
# Rejected rows kept with their reason (the counts go on beyond this).
MAX_ERRORS = 100


class ImportFailure(ValueError):
    """The file or the options cannot be imported at all (the one-line error a person
    sees). Never carries values from the file's rows, which may be personal data."""


class RowError(ValueError):
    """One row (or one order of several rows) cannot be imported; the others go in.

    `line` is the line the problem is on when it is not the record's first line.
    """

    def __init__(self, reason: str, line: int | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.line = line


@dataclass(frozen=True, slots=True)
class ImportOptions:
    """How to read a file. `mapping` is target -> column (see mapping.py); the target
    "ignore" takes a list of columns to leave out."""

    format: str | None = None
    encoding: str | None = None
    delimiter: str | None = None
    mapping: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for name in ("format", "encoding", "delimiter"):
            value = getattr(self, name)
            if value is not None:
                out[name] = value
        if self.mapping:
            out["mapping"] = self.mapping
        return out


@dataclass(frozen=True, slots=True)
class ImportProgress:
    bytes_read: int
    bytes_total: int | None
    rows_read: int
    imported: int
    duplicates: int
    rejected: int


@dataclass(frozen=True, slots=True)
class ImportSummary:
    import_id: int
    kind: str
    filename: str
    status: str  # done or failed
    bytes_total: int | None
    bytes_read: int
    rows_read: int
    imported: int
    duplicates: int
    rejected: int
    # The first MAX_ERRORS rejections: [{"line": n, "reason": "..."}]
    errors: list[dict[str, Any]]
    message: str | None
