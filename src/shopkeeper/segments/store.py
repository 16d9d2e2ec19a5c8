"""Saved segments: their definitions, read and written, and the checks a condition must
pass before it is saved (it reads, every segment it names exists, no cycle).

A segment's condition is stored twice: as the marketer wrote it and as its syntax tree
(the JSON form), so that a condition sent as JSON by a machine is shown as text in the
UI, and the tree need not be parsed again on every batch.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from shopkeeper.segments.lang import ast
from shopkeeper.segments.lang.evaluate import UnknownSegment, compile_predicate
from shopkeeper.segments.lang.json_form import SegmentJsonError, from_json, to_json
from shopkeeper.segments.lang.parser import SegmentSyntaxError, parse
from shopkeeper.segments.lang.printer import to_text
from shopkeeper.storage import tables as t

KEY_PATTERN = re.compile(r"[a-z0-9][a-z0-9_-]{0,99}\Z")
MIN_REFRESH_MINUTES = 1
MAX_REFRESH_MINUTES = 7 * 24 * 60

seg = t.segments


class SegmentError(ValueError):
    """A definition that cannot be saved. `field` names the part; `line`/`column` (text)
    or `pointer` (JSON) say where in the condition."""

    def __init__(
        self,
        message: str,
        field: str = "condition",
        *,
        line: int | None = None,
        column: int | None = None,
        pointer: str | None = None,
        code: str = "invalid_segment",
    ) -> None:
        super().__init__(message)
        self.message = message
        self.field = field
        self.line = line
        self.column = column
        self.pointer = pointer
        self.code = code

    def details(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.line is not None:
            out["line"] = self.line
            out["column"] = self.column
        if self.pointer is not None:
            out["pointer"] = self.pointer
        return out


@dataclass(frozen=True)
class Segment:
    id: int
    key: str
    name: str
    description: str | None
    condition: str
    node: ast.Condition
    realtime: bool
    refresh_minutes: int
    builtin: str | None
    version: int
    size: int
    refreshed_at: int | None
    created_at: int
    updated_at: int


def _from_row(row: Any) -> Segment:
    return Segment(
        id=int(row.id),
        key=row.key,
        name=row.name,
        description=row.description,
        condition=row.condition,
        node=from_json(row.ast),
        realtime=bool(row.realtime),
        refresh_minutes=int(row.refresh_minutes),
        builtin=row.builtin,
        version=int(row.version),
        size=int(row.size),
        refreshed_at=row.refreshed_at,
        created_at=int(row.created_at),
        updated_at=int(row.updated_at),
    )


def read_condition(condition: Any) -> tuple[ast.Condition, str]:
    """A condition as text or as the JSON form -> (tree, text to store). SegmentError
    with the place of the mistake."""
    if isinstance(condition, str):
        if not condition.strip():
            raise SegmentError("Write a condition, for example: orders_count >= 1")
        try:
            return parse(condition), condition
        except SegmentSyntaxError as exc:
            raise SegmentError(exc.message, line=exc.line, column=exc.column) from None
    if isinstance(condition, dict):
        try:
            node = from_json(condition)
        except SegmentJsonError as exc:
            raise SegmentError(str(exc), pointer=getattr(exc, "pointer", None)) from None
        return node, to_text(node)
    raise SegmentError("The condition is text in the segment language, or its JSON form")


def check_key(key: Any) -> str:
    if not isinstance(key, str) or not KEY_PATTERN.match(key):
        raise SegmentError(
            "A key is 1-100 lower-case letters, digits, - or _, starting with a letter or "
            "digit (for example: vip-customers)",
            "key",
        )
    return key


def check_refresh(minutes: Any) -> int:
    if (
        not isinstance(minutes, int)
        or isinstance(minutes, bool)
        or not MIN_REFRESH_MINUTES <= minutes <= MAX_REFRESH_MINUTES
    ):
        raise SegmentError(
            f"refresh_minutes is a whole number from {MIN_REFRESH_MINUTES} to "
            f"{MAX_REFRESH_MINUTES} (a week)",
            "refresh_minutes",
        )
    return minutes


def check_references(
    key: str | None, node: ast.Condition, segments: Mapping[str, ast.Condition]
) -> None:
    """Every `in segment` names a saved segment, and none leads back to `key`."""
    known = dict(segments)
    if key is not None:
        known[key] = node
    try:
        if key is not None:
            compile_predicate(ast.InSegment(key), known)
        else:
            compile_predicate(node, known)
    except UnknownSegment as exc:
        if exc.cycle:
            raise SegmentError(
                f'This condition leads back to segment "{key}" itself through "in segment '
                f'\\"{exc.key}\\"": a segment cannot contain itself',
                code="segment_cycle",
            ) from None
        raise SegmentError(
            f'There is no segment "{exc.key}". Save it first, or check the key.',
            code="unknown_segment",
        ) from None


# -- reading -----------------------------------------------------------------------------


def all_segments(conn: Connection) -> list[Segment]:
    return [_from_row(row) for row in conn.execute(sa.select(seg).order_by(seg.c.id))]


def conditions(conn: Connection) -> dict[str, ast.Condition]:
    """key -> condition of every saved segment (what `in segment` inlines)."""
    rows = conn.execute(sa.select(seg.c.key, seg.c.ast))
    return {row.key: from_json(row.ast) for row in rows}


def get_segment(conn: Connection, key: str) -> Segment | None:
    row = conn.execute(sa.select(seg).where(seg.c.key == key)).first()
    return _from_row(row) if row is not None else None


def dependents(conn: Connection, key: str) -> list[str]:
    """Keys of the saved segments whose conditions name `key` (directly)."""
    out = []
    for other, node in conditions(conn).items():
        if other != key and key in ast.segment_keys(node):
            out.append(other)
    return sorted(out)


# -- writing -----------------------------------------------------------------------------


def insert_segment(
    conn: Connection,
    *,
    key: str,
    name: str,
    description: str | None,
    node: ast.Condition,
    condition: str,
    realtime: bool,
    refresh_minutes: int,
    builtin: str | None,
    now_ms: int,
) -> Segment:
    check_references(key, node, conditions(conn))
    result = conn.execute(
        seg.insert().values(
            key=key,
            name=name,
            description=description,
            condition=condition,
            ast=to_json(node),
            realtime=realtime,
            refresh_minutes=refresh_minutes,
            builtin=builtin,
            version=1,
            size=0,
            refreshed_at=None,
            created_at=now_ms,
            updated_at=now_ms,
        )
    )
    assert result.inserted_primary_key is not None
    segment = get_segment(conn, key)
    assert segment is not None
    return segment


def update_segment(
    conn: Connection, current: Segment, changes: dict[str, Any], now_ms: int
) -> Segment:
    """Apply `changes` (name, description, node+condition, realtime, refresh_minutes).
    A new condition bumps the version."""
    values: dict[str, Any] = {"updated_at": now_ms}
    if "node" in changes:
        check_references(current.key, changes["node"], conditions(conn))
        if changes["node"] != current.node:
            values["version"] = current.version + 1
        values["ast"] = to_json(changes["node"])
        values["condition"] = changes["condition"]
    for name in ("name", "description", "realtime", "refresh_minutes"):
        if name in changes:
            values[name] = changes[name]
    conn.execute(seg.update().where(seg.c.id == current.id).values(**values))
    segment = get_segment(conn, current.key)
    assert segment is not None
    return segment


def audience_names(conn: Connection, segment: Segment) -> list[str]:
    rows = conn.execute(
        sa.select(t.audience_syncs.c.name).where(t.audience_syncs.c.segment_id == segment.id)
    )
    return sorted(row.name for row in rows)


def delete_segment(conn: Connection, segment: Segment) -> None:
    """The definition, its members and sizes. The history stays: it is the record of
    who was in the segment when (and journeys have read it by id). Deleting is not
    leaving, so no exits are written."""
    conn.execute(t.segment_members.delete().where(t.segment_members.c.segment_id == segment.id))
    conn.execute(t.segment_sizes.delete().where(t.segment_sizes.c.segment_id == segment.id))
    conn.execute(seg.delete().where(seg.c.id == segment.id))
