"""Member data for exports and syncs: a segment by key, its members page by page, and
each member's fields read in a few queries per page (never the whole segment at once).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from shopkeeper.segments.audiences.fields import (
    ExportField,
    ProfileData,
    field_value,
    identifier_values,
)
from shopkeeper.segments.audiences.hashing import HashedColumn, hashed_values
from shopkeeper.storage import tables as t

# Identifier types an export reads from the identities table.
_IDENTITY_TYPES = ("email", "phone", "user_id")
_CHUNK = 500


@dataclass(frozen=True, slots=True)
class SegmentRef:
    id: int
    key: str
    name: str
    size: int


def segment_by_key(conn: Connection, key: str) -> SegmentRef | None:
    row = conn.execute(
        sa.select(t.segments.c.id, t.segments.c.key, t.segments.c.name, t.segments.c.size).where(
            t.segments.c.key == key
        )
    ).first()
    return SegmentRef(int(row.id), row.key, row.name, int(row.size)) if row else None


def segment_by_id(conn: Connection, segment_id: int) -> SegmentRef | None:
    row = conn.execute(
        sa.select(t.segments.c.id, t.segments.c.key, t.segments.c.name, t.segments.c.size).where(
            t.segments.c.id == segment_id
        )
    ).first()
    return SegmentRef(int(row.id), row.key, row.name, int(row.size)) if row else None


def member_ids_after(conn: Connection, segment_id: int, after: int, limit: int) -> list[int]:
    """Up to `limit` members with a profile id above `after`, in id order (keyset paging:
    each page is one index range scan, however deep)."""
    rows = conn.execute(
        sa.select(t.segment_members.c.profile_id)
        .where(t.segment_members.c.segment_id == segment_id)
        .where(t.segment_members.c.profile_id > after)
        .order_by(t.segment_members.c.profile_id)
        .limit(limit)
    )
    return [int(pid) for pid in rows.scalars()]


def member_count(conn: Connection, segment_id: int) -> int:
    count = conn.execute(
        sa.select(sa.func.count())
        .select_from(t.segment_members)
        .where(t.segment_members.c.segment_id == segment_id)
    ).scalar()
    return int(count or 0)


def profile_data(conn: Connection, profile_ids: Sequence[int]) -> dict[int, ProfileData]:
    """Traits, computed attributes and the newest identity of each type, per profile.

    Profiles that no longer exist (erased) and profiles merged into another (their
    identities moved to the survivor) come back with exists=False: sending their
    identifiers would name, or remove, someone else.
    """
    out: dict[int, ProfileData] = {}
    ids = sorted(set(profile_ids))
    for start in range(0, len(ids), _CHUNK):
        chunk = ids[start : start + _CHUNK]
        identities: dict[int, dict[str, str]] = {}
        for ident in conn.execute(
            sa.select(t.identities.c.profile_id, t.identities.c.type, t.identities.c.value)
            .where(t.identities.c.profile_id.in_(chunk))
            .order_by(t.identities.c.last_seen_at, t.identities.c.value)
        ):
            # The types are filtered here, not in SQL: given `type IN (...)`, SQLite
            # walks the primary key by type (every identity of those types) instead of
            # the profile_id index (a handful per person).
            if ident.type not in _IDENTITY_TYPES:
                continue
            # Ascending order: the newest value of each type is written last.
            identities.setdefault(int(ident.profile_id), {})[ident.type] = ident.value
        for row in conn.execute(
            sa.select(
                t.profiles.c.id,
                t.profiles.c.merged_into,
                t.profiles.c.traits,
                t.profiles.c.computed,
            ).where(t.profiles.c.id.in_(chunk))
        ):
            pid = int(row.id)
            if row.merged_into is not None:
                continue
            out[pid] = ProfileData(
                pid,
                traits=row.traits if isinstance(row.traits, dict) else {},
                computed=row.computed if isinstance(row.computed, dict) else {},
                identities=identities.get(pid, {}),
            )
        for pid in chunk:
            out.setdefault(pid, ProfileData(pid, exists=False))
    return out


class RecordBuilder:
    """Turns profiles into the rows of an export or the records of a sync: plain fields,
    or one advertising platform's hashed identifiers."""

    def __init__(
        self,
        *,
        fields: Sequence[ExportField] = (),
        columns: Sequence[HashedColumn] | None = None,
        default_region: str | None = None,
    ) -> None:
        self.fields = list(fields)
        self.columns = list(columns) if columns is not None else None
        self.default_region = default_region

    @property
    def headers(self) -> list[str]:
        if self.columns is not None:
            return [column.header for column in self.columns]
        return [spec.name for spec in self.fields]

    def row(self, data: ProfileData) -> list[Any]:
        """Values in header order (for CSV)."""
        if self.columns is not None:
            return list(hashed_values(self.columns, identifier_values(data, self.default_region)))
        return [field_value(spec, data, self.default_region) for spec in self.fields]

    def record(self, data: ProfileData) -> dict[str, Any]:
        """A webhook record: always the profile id (the key that still works after an
        erase); plain fields all present (null when unknown), hashed identifiers only
        when there is one (the platforms reject empty values)."""
        record: dict[str, Any] = {"profile_id": data.profile_id}
        if self.columns is not None:
            values = hashed_values(self.columns, identifier_values(data, self.default_region))
            for column, value in zip(self.columns, values, strict=True):
                if value is not None:
                    record[column.key] = value
            return record
        for spec in self.fields:
            if spec.name != "profile_id":
                record[spec.name] = field_value(spec, data, self.default_region)
        return record

    def records(self, conn: Connection, profile_ids: Sequence[int]) -> list[dict[str, Any]]:
        data = profile_data(conn, profile_ids)
        return [self.record(data[pid]) for pid in profile_ids]
