"""Indexes for the saved segments' conditions, on PostgreSQL.

A profile attribute lives in a jsonb document (`traits`, `computed`), and counting a
segment over the whole population used to read and decompress every live profile's
document. The compiler (lang/to_sql.py) writes each comparison it can as one expression
of its column (`computed #> '{country}'`, or the number or text at a path, NULL when of
another kind) and reports them; here those expressions of every saved segment become
expression indexes, so that PostgreSQL answers `country in ("NO", "RO") and loyalty_tier
= "gold"` from a bitmap of two indexes and reads only the profiles that match. Property
filters inside `did ... where` get an index of applied track events by name, that
property and time, holding the profile id.

The indexes are named `sk_seg_<digest of the expression>`: wanted ones that are missing
(or left invalid by an interrupted build) are built with CREATE INDEX CONCURRENTLY, so
writes go on meanwhile; ones no saved segment needs any more are dropped. Each index
costs every write of a profile a little (benchmarks/segments_realtime.py measures it),
so at most `segment_indexes_max` are kept, those used by the most segments first.
SQLite is left alone: its planner uses one index per table in a query and gains little.
"""

from __future__ import annotations

import hashlib
import logging
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from shopkeeper.config import Settings
from shopkeeper.segments.lang import ast
from shopkeeper.segments.lang.evaluate import UnknownSegment
from shopkeeper.segments.lang.to_sql import IndexUse, compile_sql, json_node, typed_json
from shopkeeper.segments.store import conditions
from shopkeeper.storage.db import Database

log = logging.getLogger(__name__)

PREFIX = "sk_seg_"
_APPLIED_TRACK = "status = 1 AND type = 'track'"


@dataclass(frozen=True)
class SegmentIndex:
    name: str
    use: IndexUse
    definition: str  # the CREATE INDEX statement, without CONCURRENTLY

    def describe(self) -> str:
        path = ".".join(self.use.path)
        kind = {"node": "value", "number": "number", "text": "text"}[self.use.form]
        return f"{self.use.table}.{self.use.column}.{path} ({kind})"


def expression(use: IndexUse) -> str:
    """The indexed expression, as the compiler writes it in a condition."""
    if use.form == "node":
        return json_node(use.column, use.path)
    typed = typed_json(use.column, use.path, use.form)
    return f'{typed} COLLATE "C"' if use.form == "text" else typed


def index_for(use: IndexUse) -> SegmentIndex:
    key = f"{use.table}|{use.column}|{'.'.join(use.path)}|{use.form}"
    name = PREFIX + hashlib.sha256(key.encode()).hexdigest()[:16]
    expr = expression(use)
    if use.table == "profiles":
        # Not partial (merged profiles are a small share): PostgreSQL estimates how many
        # rows a condition selects from the statistics of a full index's expression only,
        # and a wrong estimate picks one index and a filter over the others.
        body = f"ON profiles (({expr}))"
    else:
        body = (
            f'ON events (event, ({expr}), "timestamp") INCLUDE (profile_id) WHERE {_APPLIED_TRACK}'
        )
    return SegmentIndex(name, use, f"CREATE INDEX IF NOT EXISTS {name} {body}")


def wanted(saved: Mapping[str, ast.Condition], now_ms: int, limit: int) -> list[SegmentIndex]:
    """The indexes the saved segments' conditions can use, those used by the most
    segments first, at most `limit`."""
    counts: Counter[IndexUse] = Counter()
    for key, node in saved.items():
        try:
            compiled = compile_sql(node, "postgresql", now_ms, saved)
        except (UnknownSegment, ValueError) as exc:  # a broken reference: no indexes
            log.warning("segment %s: no indexes (%s)", key, exc)
            continue
        counts.update(compiled.uses)
    ranked = sorted(counts, key=lambda u: (-counts[u], u.table, u.column, u.path, u.form))
    return [index_for(use) for use in ranked[:limit]]


@dataclass(frozen=True)
class IndexState:
    name: str
    valid: bool


def existing(conn: Connection) -> dict[str, IndexState]:
    rows = conn.execute(
        sa.text(
            "SELECT c.relname, i.indisvalid FROM pg_index i "
            "JOIN pg_class c ON c.oid = i.indexrelid "
            "JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname = current_schema() AND c.relname LIKE :prefix"
        ),
        {"prefix": PREFIX + "%"},
    )
    return {row[0]: IndexState(row[0], bool(row[1])) for row in rows}


@dataclass(frozen=True)
class SyncResult:
    created: list[str]
    dropped: list[str]
    kept: list[str]


def plan(
    want: Iterable[SegmentIndex], have: Mapping[str, IndexState]
) -> tuple[list[SegmentIndex], list[str]]:
    """(indexes to build, names to drop): an invalid index is dropped and rebuilt."""
    want = list(want)
    names = {index.name for index in want}
    build = [i for i in want if i.name not in have or not have[i.name].valid]
    drop = [n for n, state in have.items() if n not in names or not state.valid]
    return build, sorted(drop)


def sync(db: Database, settings: Settings, now_ms: int) -> SyncResult:
    """Build the wanted indexes that are missing and drop the unwanted ones (PostgreSQL;
    nothing on SQLite or when `segment_indexes` is off, except dropping)."""
    if db.is_sqlite:
        return SyncResult([], [], [])
    with db.read() as conn:
        saved = conditions(conn)
        have = existing(conn)
    want = wanted(saved, now_ms, settings.segment_indexes_max) if settings.segment_indexes else []
    build, drop = plan(want, have)
    created: list[str] = []
    # CONCURRENTLY: writes to profiles and events go on while an index is built; it
    # cannot run inside a transaction.
    with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        for name in drop:
            conn.execute(sa.text(f"DROP INDEX CONCURRENTLY IF EXISTS {name}"))
            log.info("segment index %s dropped", name)
        for index in build:
            concurrently = index.definition.replace("CREATE INDEX", "CREATE INDEX CONCURRENTLY", 1)
            conn.execute(sa.text(concurrently))
            log.info("segment index %s built for %s", index.name, index.describe())
            created.append(index.name)
        if build:
            conn.execute(sa.text("ANALYZE profiles"))
            if any(i.use.table == "events" for i in build):
                conn.execute(sa.text("ANALYZE events"))
    wanted_names = {index.name for index in want}
    kept = sorted(n for n in have if n in wanted_names and n not in drop)
    return SyncResult(created, drop, kept)
