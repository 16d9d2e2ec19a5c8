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

A saved segment also gets a *filter*: a partial index of profile ids whose predicate is
the part of its top-level `and` that compares the profile's own attributes with constants
(`country in ("NO", "RO") and total_revenue >= 500`, segments it names included). When
the segment is counted, PostgreSQL proves that its condition implies the predicate and
reads the ids of exactly those profiles from the index alone (an index-only scan: no
profile row is read), then tests the rest of the condition (consents, events) on them. An
event test gets one likewise, of the applied events of that name (and property filter,
if any): by time, holding the profile id, for a count in a window (one range of the
index); by profile and time for `did ...` tested one profile at a time, a lookup in an
index a fraction of the size of the one of all events. A `consent.x` test gets the three
sets it reads (granted for the channel, recorded for it, granted for every channel) as
partial indexes of consents. Filters serve saved segments; an unsaved condition
(the builder's live count) uses the expression indexes of whatever it shares with them.

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
import re
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from shopkeeper.config import Settings
from shopkeeper.segments.lang import ast
from shopkeeper.segments.lang.evaluate import UnknownSegment, inline_segment, node_field
from shopkeeper.segments.lang.printer import to_text
from shopkeeper.segments.lang.to_sql import (
    IndexUse,
    compile_event_condition,
    compile_sql,
    json_node,
    typed_json,
)
from shopkeeper.segments.store import conditions
from shopkeeper.storage.db import Database

log = logging.getLogger(__name__)

PREFIX = "sk_seg_"
_APPLIED_TRACK = "status = 1 AND type = 'track'"


@dataclass(frozen=True)
class SegmentIndex:
    name: str
    use: IndexUse | None  # an expression index; None for a filter
    definition: str  # the CREATE INDEX statement, without CONCURRENTLY
    table: str = "profiles"
    filter: str = ""  # a filter: what it holds, in the segment language

    def describe(self) -> str:
        if self.use is None:
            return self.filter
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
    return SegmentIndex(name, use, f"CREATE INDEX IF NOT EXISTS {name} {body}", use.table)


# -- filters ------------------------------------------------------------------------------

# Atoms whose truth depends on the profile's row alone (not on the time of day).
_STATIC_ATOMS = (ast.Compare, ast.OneOf, ast.Text, ast.Presence, ast.Truthy)
_PROFILE_FIELDS = frozenset({"computed", "trait", "known"})
_EVENT_FIELDS = frozenset({"property", "context"})
_PARAM = re.compile(r"(?<![:\w]):(p[0-9]+)\b")
_PROFILE_ALIAS = re.compile(r"\bp\.(computed|traits|is_known)\b")
_EVENT_ALIAS = re.compile(r"\be\.(payload)\b")


def _literal(value: Any) -> str:
    """A bound value as the constant PostgreSQL folds the parameter into (psycopg sends
    a float as double precision and a string untyped)."""
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, float):
        return f"CAST('{value!r}' AS DOUBLE PRECISION)"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        return "'" + value.replace("'", "''") + "'"
    raise TypeError(f"no literal for {value!r}")


def _inline(sql: str, params: Mapping[str, Any]) -> str:
    return _PARAM.sub(lambda m: _literal(params[m.group(1)]), sql)


def _static(sql: str) -> bool:
    # A subquery (a list's elements, a score) cannot be part of an index predicate.
    return "SELECT" not in sql.upper()


def static_conjuncts(
    node: ast.Condition, saved: Mapping[str, ast.Condition], stack: tuple[str, ...] = ()
) -> list[ast.Condition]:
    """The conjuncts of a condition's top-level `and` (through the segments it names)
    that compare the profile's own attributes with constants."""
    if isinstance(node, ast.And):
        return [c for item in node.items for c in static_conjuncts(item, saved, stack)]
    if isinstance(node, ast.InSegment):
        inner, inner_stack = inline_segment(node, saved, stack)
        return static_conjuncts(inner, saved, inner_stack)
    if isinstance(node, _STATIC_ATOMS) and node_field(node).kind in _PROFILE_FIELDS:
        return [node]
    return []


def _every(
    node: ast.Condition, saved: Mapping[str, ast.Condition], stack: tuple[str, ...] = ()
) -> Iterator[ast.Condition]:
    """Every condition of a tree (`ast.walk`), with the segments it names inlined."""
    for item in ast.walk(node):
        if isinstance(item, ast.InSegment):
            inner, inner_stack = inline_segment(item, saved, stack)
            yield from _every(inner, saved, inner_stack)
        else:
            yield item


def _event_fields_only(node: ast.Condition) -> bool:
    if isinstance(node, (ast.And, ast.Or)):
        return all(_event_fields_only(i) for i in node.items)
    if isinstance(node, ast.Not):
        return _event_fields_only(node.item)
    return isinstance(node, _STATIC_ATOMS) and node_field(node).kind in _EVENT_FIELDS


def _named(kind: str, predicate: str) -> str:
    return PREFIX + hashlib.sha256(f"{kind}|{predicate}".encode()).hexdigest()[:16]


def profile_filter(
    node: ast.Condition, saved: Mapping[str, ast.Condition], now_ms: int
) -> SegmentIndex | None:
    """The partial index of the ids of live profiles that pass a condition's static
    conjuncts; None when it has none."""
    atoms = []
    for atom in static_conjuncts(node, saved):
        compiled = compile_sql(atom, "postgresql", now_ms)
        if _static(compiled.sql):
            atoms.append((atom, _inline(compiled.sql, compiled.params)))
    if not atoms:
        return None
    predicate = " AND ".join(_PROFILE_ALIAS.sub(r"\1", sql) for _, sql in atoms)
    name = _named("profiles", predicate)
    definition = (
        f"CREATE INDEX IF NOT EXISTS {name} ON profiles (id) "
        f"WHERE merged_into IS NULL AND {predicate}"
    )
    text = " and ".join(to_text(atom) for atom, _ in atoms)
    return SegmentIndex(name, None, definition, "profiles", f"profiles where {text}")


def _probed(did: ast.Did) -> bool:
    """Whether the compiler tests `did` one profile at a time (`EXISTS` of the profile's
    own events, to PostgreSQL an index lookup per profile) rather than by grouping every
    matching event (counts, first times: in a window, one range of times)."""
    return (did.op, did.times) == (">=", 1) and not did.first


def event_filters(
    node: ast.Condition, saved: Mapping[str, ast.Condition], now_ms: int
) -> list[SegmentIndex]:
    """For each `did "E"` (with a `where` that tests only the event's own properties, or
    none): a partial index of the matching applied events, by profile and time for
    `did` tested one profile at a time, by time (holding the profile id) for a count in
    a window. A count over all time without a filter keeps the index every database has
    (event, profile, time). First times are grouped by person."""
    out: list[SegmentIndex] = []
    for did in (n for n in _every(node, saved) if isinstance(n, ast.Did)):
        predicate = f"{_APPLIED_TRACK} AND event = {_literal(did.event)}"
        if did.where is not None:
            if not _event_fields_only(did.where):
                continue
            compiled = compile_event_condition(did.where, "postgresql", now_ms)
            if not _static(compiled.sql):
                continue
            condition = _EVENT_ALIAS.sub(r"\1", _inline(compiled.sql, compiled.params))
            predicate += f" AND {condition}"
        if did.window is not None and not _probed(did) and not did.first:
            key, how = '("timestamp") INCLUDE (profile_id)', "by time"
        elif did.where is not None or _probed(did) or did.first:
            key, how = '(profile_id, "timestamp")', "by person"
        else:
            continue
        name = _named(f"events {key}", predicate)
        definition = f"CREATE INDEX IF NOT EXISTS {name} ON events {key} WHERE {predicate}"
        text = f"events {to_text(ast.Did(event=did.event, where=did.where))}, {how}"
        out.append(SegmentIndex(name, None, definition, "events", text))
    return out


def consent_filters(node: ast.Condition, saved: Mapping[str, ast.Condition]) -> list[SegmentIndex]:
    """For each `consent.x` test: the ids of the profiles with a granted record for the
    channel, with any record for it, and with a granted record for every channel (the
    three sets the test is made of), each a partial index of its own: a fraction of the
    size of the index of all consents, so a count reads and hashes them faster."""
    out: list[SegmentIndex] = []
    tests = (n for n in _every(node, saved) if isinstance(n, ast.Truthy))
    for channel, purpose in (t.field.path for t in tests if t.field.kind == "consent"):
        sets = (
            (channel, " AND granted", f"granted {channel}"),
            (channel, "", f"recorded {channel}"),
            ("*", " AND granted", "granted for every channel"),
        )
        for which, granted, text in sets:
            predicate = f"channel = {_literal(which)} AND purpose = {_literal(purpose)}{granted}"
            name = _named("consents", predicate)
            definition = (
                f"CREATE INDEX IF NOT EXISTS {name} ON consents (profile_id) WHERE {predicate}"
            )
            out.append(
                SegmentIndex(name, None, definition, "consents", f"consents {text} ({purpose})")
            )
    return out


def wanted(saved: Mapping[str, ast.Condition], now_ms: int, limit: int) -> list[SegmentIndex]:
    """The indexes the saved segments' conditions can use, those used by the most
    segments first, at most `limit`."""
    counts: Counter[str] = Counter()
    found: dict[str, SegmentIndex] = {}
    for key, node in saved.items():
        try:
            compiled = compile_sql(node, "postgresql", now_ms, saved)
            mine = [index_for(use) for use in compiled.uses]
            profiles = profile_filter(node, saved, now_ms)
            mine += [profiles] if profiles is not None else []
            mine += event_filters(node, saved, now_ms)
            mine += consent_filters(node, saved)
        except (UnknownSegment, ValueError) as exc:  # a broken reference: no indexes
            log.warning("segment %s: no indexes (%s)", key, exc)
            continue
        for index in {i.name: i for i in mine}.values():
            counts[index.name] += 1
            found[index.name] = index
    # The most used first; a filter before an expression index used as often (it serves
    # its segment alone), then by name so that the choice is stable.
    ranked = sorted(found.values(), key=lambda i: (-counts[i.name], i.use is not None, i.name))
    return ranked[:limit]


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
            for table in sorted({i.table for i in build} - {"profiles"}):
                conn.execute(sa.text(f"ANALYZE {table}"))
    wanted_names = {index.name for index in want}
    kept = sorted(n for n in have if n in wanted_names and n not in drop)
    return SyncResult(created, drop, kept)
