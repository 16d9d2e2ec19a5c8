"""Sources: where events come from (web, app, server, POS, CRM...), each with a write key.

Write keys only ingest. They are not secrets in the strong sense (a browser snippet
carries one), so they are stored as given and shown again in the UI.
"""

from __future__ import annotations

import re
import secrets
import threading
import time
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from shopkeeper.admin import audit
from shopkeeper.storage import tables as t
from shopkeeper.storage.db import Database

SOURCE_KINDS = ("web", "app", "server", "email", "pos", "crm", "catalog", "import", "other")
_NAME = re.compile(r"^[\w .\-:/]{1,200}$")


class SourceError(ValueError):
    pass


@dataclass(frozen=True, slots=True)
class Source:
    id: int
    name: str
    kind: str
    write_key: str
    created_at: int
    revoked_at: int | None

    @property
    def active(self) -> bool:
        return self.revoked_at is None


def new_write_key() -> str:
    return "wk_" + secrets.token_urlsafe(24)


def _row(row: Any) -> Source:
    return Source(
        int(row[0]), row[1], row[2], row[3], int(row[4]), None if row[5] is None else int(row[5])
    )


_COLUMNS = (
    t.sources.c.id,
    t.sources.c.name,
    t.sources.c.kind,
    t.sources.c.write_key,
    t.sources.c.created_at,
    t.sources.c.revoked_at,
)


def create_source(
    db: Database, name: str, kind: str, now_ms: int, actor: str = audit.CLI
) -> Source:
    name = name.strip()
    if not _NAME.match(name):
        raise SourceError(
            "A source name is 1 to 200 letters, digits, spaces or . - : / characters."
        )
    if kind not in SOURCE_KINDS:
        raise SourceError(f"kind must be one of {', '.join(SOURCE_KINDS)}; got {kind!r}.")
    key = new_write_key()
    with db.write() as conn:
        exists = conn.execute(sa.select(t.sources.c.id).where(t.sources.c.name == name)).first()
        if exists:
            raise SourceError(f"A source named {name!r} already exists.")
        source_id = conn.execute(
            t.sources.insert()
            .values(name=name, kind=kind, write_key=key, created_at=now_ms)
            .returning(t.sources.c.id)
        ).scalar_one()
        audit.record(
            conn,
            at_ms=now_ms,
            actor=actor,
            action="source.create",
            target=f"source {source_id}",
            details={"name": name, "kind": kind},
        )
    return Source(int(source_id), name, kind, key, now_ms, None)


def ensure_source(db: Database, name: str, kind: str, now_ms: int) -> Source:
    """The source with this name, created when missing (for internal sources: pos, crm)."""
    found = get_source_by_name(db, name)
    if found is not None:
        return found
    try:
        return create_source(db, name, kind, now_ms)
    except SourceError:
        found = get_source_by_name(db, name)
        if found is None:
            raise
        return found


def get_source_by_name(db: Database, name: str) -> Source | None:
    with db.read() as conn:
        row = conn.execute(sa.select(*_COLUMNS).where(t.sources.c.name == name)).first()
    return _row(row) if row else None


def list_sources(db: Database) -> list[Source]:
    with db.read() as conn:
        rows = conn.execute(sa.select(*_COLUMNS).order_by(t.sources.c.id)).all()
    return [_row(row) for row in rows]


def revoke_source(db: Database, name: str, now_ms: int, actor: str = audit.CLI) -> Source:
    with db.write() as conn:
        result = conn.execute(
            t.sources.update()
            .where(t.sources.c.name == name, t.sources.c.revoked_at.is_(None))
            .values(revoked_at=now_ms)
        )
        if result.rowcount == 0:
            raise SourceError(f"No active source named {name!r}.")
        audit.record(
            conn, at_ms=now_ms, actor=actor, action="source.revoke", details={"name": name}
        )
    found = get_source_by_name(db, name)
    assert found is not None
    return found


def source_names(db: Database) -> dict[int, tuple[str, str]]:
    """id -> (name, kind), for the pipeline."""
    with db.read() as conn:
        rows = conn.execute(sa.select(t.sources.c.id, t.sources.c.name, t.sources.c.kind)).all()
    return {int(row[0]): (row[1], row[2]) for row in rows}


class WriteKeyCache:
    """Write key -> active source, re-read from the database at most every `ttl` seconds
    per key, so that ingest does not query the database on every request and a revoked
    key stops working within `ttl`."""

    def __init__(self, db: Database, ttl: float) -> None:
        self.db = db
        self.ttl = ttl
        self._lock = threading.Lock()
        self._cache: dict[str, tuple[float, Source | None]] = {}

    def lookup(self, key: str) -> Source | None:
        now = time.monotonic()
        with self._lock:
            hit = self._cache.get(key)
        if hit is not None and now - hit[0] < self.ttl:
            return hit[1]
        with self.db.read() as conn:
            row = conn.execute(sa.select(*_COLUMNS).where(t.sources.c.write_key == key)).first()
        source = _row(row) if row is not None else None
        if source is not None and not source.active:
            source = None
        with self._lock:
            if len(self._cache) > 10_000:
                self._cache.clear()  # unknown keys from a scanner must not grow memory
            self._cache[key] = (now, source)
        return source
