"""Syntax tree -> a SQL condition over `profiles p` (SQLite or PostgreSQL): how a whole
population is counted and listed. Pure: returns text and bound parameters; the caller
runs `SELECT ... FROM profiles p WHERE p.merged_into IS NULL AND (<condition>)`.

Agrees with evaluate.py (see there for the shared semantics). Every atom is wrapped in
COALESCE(..., FALSE) so that `not` is two-valued, as in Python. Paths are validated
identifiers and are written into the text; every value is a bound parameter.

Shaped for counting a whole population (benchmarks/segments.py measures it). On
PostgreSQL a jsonb column is decompressed again by every operator that reads it, so a
text compared for equality (or with a list) is one jsonb comparison rather than a type
test plus a text comparison; and event counts, first times and aggregates are grouped
once over the matching events (`EXISTS` over the grouped rows: a semi-join at the top
level) instead of a subquery run per profile. SQLite runs a correlated subquery per
profile about as fast as a grouped one, through the index on applied track events
(event, profile_id, timestamp), and keeps the plain shape.
"""

from __future__ import annotations

import json
import operator
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from shopkeeper.segments.lang import ast
from shopkeeper.segments.lang.derived import FUNNEL_DEFAULT, funnel_conditions
from shopkeeper.segments.lang.evaluate import anniversary_days, inline_segment
from shopkeeper.storage.tables import APPLIED
from shopkeeper.timeutil import ms_to_iso

Dialect = Literal["sqlite", "postgresql"]
Kind = Literal["number", "text", "boolean", "array", "object"]


@dataclass(frozen=True)
class CompiledSql:
    sql: str
    params: dict[str, Any]
    # The column expressions it compares, for indexes (PostgreSQL; empty on SQLite).
    uses: frozenset[IndexUse] = frozenset()


def compile_sql(
    node: ast.Condition,
    dialect: Dialect,
    now_ms: int,
    segments: Mapping[str, ast.Condition] | None = None,
) -> CompiledSql:
    compiler = _Compiler(dialect, now_ms, segments or {})
    sql = compiler.condition(node, ())
    return CompiledSql(sql, compiler.params, frozenset(compiler.uses))


def compile_event_condition(node: ast.Condition, dialect: Dialect, now_ms: int) -> CompiledSql:
    """The SQL of a `did ... where` filter over `events e`, as `did` writes it."""
    compiler = _Compiler(dialect, now_ms, {})
    sql = compiler.event_condition(node)
    return CompiledSql(sql, compiler.params, frozenset(compiler.uses))


class _Value(Protocol):
    """A typed SQL value: a test for "holds a value of kind K" and that value."""

    def is_kind(self, kind: Kind) -> str: ...

    def value(self, kind: Kind) -> str: ...

    def is_present(self) -> str: ...

    def is_empty(self) -> str: ...


class _Json:
    def __init__(self, dialect: Dialect, column: str, path: tuple[str, ...]) -> None:
        self.dialect = dialect
        self.column, self.path = column, path
        if dialect == "sqlite":
            where = "$." + ".".join(path)
            self.typ = f"json_type({column}, '{where}')"
            self.raw = f"json_extract({column}, '{where}')"
        else:
            where = "{" + ",".join(path) + "}"
            self.node = f"({column} #> '{where}')"
            self.typ = f"jsonb_typeof({self.node})"
            self.raw = f"({column} #>> '{where}')"

    def is_kind(self, kind: Kind) -> str:
        if self.dialect == "sqlite":
            names = {"number": "('integer', 'real')", "text": "('text')",
                     "boolean": "('true', 'false')", "array": "('array')",
                     "object": "('object')"}  # fmt: skip
            return f"{self.typ} IN {names[kind]}"
        names = {"number": "number", "text": "string", "boolean": "boolean", "array": "array",
                 "object": "object"}  # fmt: skip
        return f"{self.typ} = '{names[kind]}'"

    def value(self, kind: Kind) -> str:
        if self.dialect == "sqlite":
            if kind == "boolean":
                return f"({self.typ} = 'true')"
            return self.raw
        if kind == "number":
            return f"CAST({self.raw} AS DOUBLE PRECISION)"
        if kind == "boolean":
            return f"({self.raw} = 'true')"
        return self.raw

    def typed(self, kind: Literal["number", "text"]) -> str:
        """PostgreSQL: the value when it is of that kind, else NULL, as one expression
        that an index can hold (see indexes.py)."""
        return typed_json(self.column, self.path, kind)

    def is_present(self) -> str:
        return f"({self.typ} IS NOT NULL AND {self.typ} <> 'null')"

    def is_empty(self) -> str:
        if self.dialect == "sqlite":
            return (
                f"({self.typ} IS NULL OR {self.typ} = 'null' OR ({self.typ} = 'text' AND "
                f"{self.raw} = '') OR ({self.typ} = 'array' AND {self.raw} = '[]') OR "
                f"({self.typ} = 'object' AND {self.raw} = '{{}}'))"
            )
        return (
            f"({self.typ} IS NULL OR {self.typ} = 'null' OR {self.node} = '\"\"'::jsonb OR "
            f"{self.node} = '[]'::jsonb OR {self.node} = '{{}}'::jsonb)"
        )

    def array_elements(self) -> tuple[str, str, str]:
        """(FROM clause, element type, element value) to test a list's elements."""
        if self.dialect == "sqlite":
            # json_each walks objects too: the is_kind('array') guard comes with it.
            column, where = self.raw[len("json_extract(") : -1].split(", ", 1)
            return f"json_each({column}, {where}) j", "j.type", "j.value"
        return (
            f"jsonb_array_elements(CASE WHEN {self.typ} = 'array' THEN {self.node} "
            "ELSE '[]'::jsonb END) j(v)",
            "jsonb_typeof(j.v)",
            "(j.v #>> '{}')",
        )


def json_node(column: str, path: tuple[str, ...]) -> str:
    """PostgreSQL: the jsonb value at a path of a column (NULL when absent)."""
    return f"({column} #> '{{{','.join(path)}}}')"


def typed_json(column: str, path: tuple[str, ...], kind: Literal["number", "text"]) -> str:
    """PostgreSQL: the value at a path when it is a number (as double precision) or a
    string (as text), else NULL."""
    node = json_node(column, path)
    raw = f"({column} #>> '{{{','.join(path)}}}')"
    if kind == "number":
        number = f"CAST({raw} AS DOUBLE PRECISION)"
        return f"(CASE WHEN jsonb_typeof({node}) = 'number' THEN {number} END)"
    return f"(CASE WHEN jsonb_typeof({node}) = 'string' THEN {raw} END)"


@dataclass(frozen=True)
class IndexUse:
    """An expression of a profile or event column that a condition compares, in the
    form `typed_json` or `json_node` writes it: what an index can serve (indexes.py)."""

    table: Literal["profiles", "events"]
    column: str  # computed, traits, payload
    path: tuple[str, ...]
    form: Literal["node", "number", "text"]


class _Consent:
    """A consent: granted (true), refused (false), or no record (NULL); `consent.email`
    alone (the common test) is, on PostgreSQL, a test of existing records that the planner
    can turn into joins, rather than two scalar lookups per profile."""

    def __init__(self, compiler: _Compiler, channel: str, purpose: str) -> None:
        self.dialect = compiler.dialect
        lookup = (
            "(SELECT c.granted FROM consents c WHERE c.profile_id = p.id AND "
            "c.channel = {} AND c.purpose = {})"
        )
        self.channel, self.any_channel = compiler.param(channel), compiler.param("*")
        self.purpose = compiler.param(purpose)
        self.expr = (
            f"COALESCE({lookup.format(self.channel, self.purpose)}, "
            f"{lookup.format(self.any_channel, self.purpose)})"
        )
        self.column = _Column(self.dialect, self.expr, "boolean")

    def is_kind(self, kind: Kind) -> str:
        return self.column.is_kind(kind)

    def value(self, kind: Kind) -> str:
        return self.column.value(kind)

    def is_present(self) -> str:
        return self.column.is_present()

    def is_empty(self) -> str:
        return self.column.is_empty()

    def granted(self) -> str:
        if self.dialect == "sqlite":
            return self.column.value("boolean")
        # The channel's own record decides; without one, the record for every channel.
        # EXISTS, not IN: a NOT IN whose set outgrows work_mem is searched row by row
        # (at 1M profiles a count took minutes); these are index lookups or hash joins.
        record = (
            "EXISTS (SELECT 1 FROM consents c WHERE c.profile_id = p.id AND c.channel = {} "
            f"AND c.purpose = {self.purpose}{{}})"
        )
        return (
            f"({record.format(self.channel, ' AND c.granted')} OR "
            f"({record.format(self.any_channel, ' AND c.granted')} AND "
            f"NOT {record.format(self.channel, '')}))"
        )


class _Column:
    """A plain SQL expression of one known kind (NULL when absent)."""

    def __init__(self, dialect: Dialect, expr: str, kind: Kind) -> None:
        self.dialect, self.expr, self.kind = dialect, expr, kind

    def is_kind(self, kind: Kind) -> str:
        return f"{self.expr} IS NOT NULL" if kind == self.kind else "FALSE"

    def value(self, kind: Kind) -> str:
        if kind != self.kind:  # never read (is_kind is FALSE), but typed for PostgreSQL
            return f"CAST(NULL AS {_SQL_TYPES[kind]})"
        if kind == "number" and self.dialect == "postgresql":
            return f"CAST({self.expr} AS DOUBLE PRECISION)"
        if kind == "boolean":
            return f"({self.expr} IS TRUE)"
        return self.expr

    def is_present(self) -> str:
        return f"{self.expr} IS NOT NULL"

    def is_empty(self) -> str:
        if self.kind == "text":
            return f"({self.expr} IS NULL OR {self.expr} = '')"
        return f"{self.expr} IS NULL"


_PRODUCT_KINDS: dict[str, Kind] = {
    "id": "text", "sku": "text", "name": "text", "category": "text", "brand": "text",
    "currency": "text", "price": "number", "sale_price": "number", "stock_quantity": "number",
}  # fmt: skip
_SCORE_KINDS: dict[str, Kind] = {
    "rfm_recency": "number", "rfm_frequency": "number", "rfm_monetary": "number",
    "rfm_segment": "text", "lead_score": "number",
}  # fmt: skip
_SQL_TYPES = {"number": "DOUBLE PRECISION", "text": "TEXT", "boolean": "BOOLEAN",
              "array": "TEXT", "object": "TEXT"}  # fmt: skip
_AGGREGATE_SQL = {"total": "SUM", "average": "AVG", "minimum": "MIN", "maximum": "MAX"}


def _kind_of(literal: ast.Value) -> Kind:
    if isinstance(literal, bool):
        return "boolean"
    if isinstance(literal, (int, float)):
        return "number"
    return "text"


class _Compiler:
    def __init__(
        self, dialect: Dialect, now_ms: int, segments: Mapping[str, ast.Condition]
    ) -> None:
        self.dialect = dialect
        self.now_ms = now_ms
        self.segments = segments
        self.params: dict[str, Any] = {}
        self.negated = 0  # how many `not`s the atom being written is under
        self.table: Literal["profiles", "events"] = "profiles"
        self.uses: set[IndexUse] = set()

    def param(self, value: Any) -> str:
        name = f"p{len(self.params)}"
        self.params[name] = value
        return f":{name}"

    # -- boolean structure ---------------------------------------------------------------

    def condition(self, node: ast.Condition, stack: tuple[str, ...]) -> str:
        if isinstance(node, (ast.And, ast.Or)):
            joiner = " AND " if isinstance(node, ast.And) else " OR "
            return "(" + joiner.join(self.condition(i, stack) for i in node.items) + ")"
        if isinstance(node, ast.Not):
            self.negated += 1
            try:
                return f"(NOT {self.condition(node.item, stack)})"
            finally:
                self.negated -= 1
        if isinstance(node, ast.InSegment):
            return self.condition(*inline_segment(node, self.segments, stack))
        if isinstance(node, ast.Did):
            return self.did(node)
        if isinstance(node, ast.Aggregate):
            return self.aggregate(node)
        return self.atom(node, self.profile_value(node))

    def event_condition(self, node: ast.Condition) -> str:
        if isinstance(node, (ast.And, ast.Or)):
            joiner = " AND " if isinstance(node, ast.And) else " OR "
            return "(" + joiner.join(self.event_condition(i) for i in node.items) + ")"
        if isinstance(node, ast.Not):
            self.negated += 1
            try:
                return f"(NOT {self.event_condition(node.item)})"
            finally:
                self.negated -= 1
        self.table = "events"
        try:
            return self.atom(node, self.event_value(_field(node)))
        finally:
            self.table = "profiles"

    # -- values --------------------------------------------------------------------------

    def profile_value(self, node: ast.Condition) -> _Value:
        fld = _field(node)
        kind, path = fld.kind, fld.path
        if kind == "computed":
            return _Json(self.dialect, "p.computed", path)
        if kind == "trait":
            return _Json(self.dialect, "p.traits", path)
        if kind == "known":
            return _Column(self.dialect, "p.is_known", "boolean")
        if kind == "score":
            column = path[0]
            if column not in _SCORE_KINDS:
                raise ValueError(f"unknown score {column}")
            expr = f"(SELECT s.{column} FROM profile_scores s WHERE s.profile_id = p.id)"
            return _Column(self.dialect, expr, _SCORE_KINDS[column])
        if kind == "consent":
            channel, purpose = path
            return _Consent(self, channel, purpose)
        if kind == "derived":
            cases = " ".join(
                f"WHEN {self.condition(cond, ())} THEN {self.param(stage)}"
                for stage, cond in funnel_conditions()
            )
            return _Column(
                self.dialect, f"(CASE {cases} ELSE {self.param(FUNNEL_DEFAULT)} END)", "text"
            )
        raise ValueError(f"{fld.name} cannot be used outside an event's where")

    def event_value(self, fld: ast.Field) -> _Value:
        if fld.kind == "property":
            return _Json(self.dialect, "e.payload", ("properties", *fld.path))
        if fld.kind == "context":
            return _Json(self.dialect, "e.payload", ("context", *fld.path))
        if fld.kind == "product":
            column = fld.path[0]
            if column not in _PRODUCT_KINDS:
                raise ValueError(f"unknown product field {column}")
            expr = f"(SELECT pr.{column} FROM products pr WHERE pr.id = {self.product_id()})"
            return _Column(self.dialect, expr, _PRODUCT_KINDS[column])
        raise ValueError(f"{fld.name} cannot be used in an event's where")

    def product_id(self) -> str:
        """The event's properties.product_id as text: a string, or a whole number."""
        pid = _Json(self.dialect, "e.payload", ("properties", "product_id"))
        if self.dialect == "sqlite":
            return (
                f"(CASE {pid.typ} WHEN 'text' THEN {pid.raw} "
                f"WHEN 'integer' THEN CAST({pid.raw} AS TEXT) END)"
            )
        return (
            f"(CASE WHEN {pid.typ} = 'string' THEN {pid.raw} WHEN {pid.typ} = 'number' "
            f"AND {pid.raw} ~ '^-?[0-9]+$' THEN {pid.raw} END)"
        )

    # -- atoms ---------------------------------------------------------------------------

    def _jsonb_text(self, value: _Value, literal: ast.Value) -> str | None:
        """On PostgreSQL, `value = "text"` as one jsonb comparison (true exactly when it
        holds that text), so that the column is read once; None elsewhere."""
        if self.dialect != "postgresql" or not isinstance(value, _Json):
            return None
        if _kind_of(literal) != "text":
            return None
        return f"CAST({self.param(json.dumps(literal))} AS JSONB)"

    def _use(self, value: _Json, form: Literal["node", "number", "text"]) -> None:
        column = value.column.split(".", 1)[1]
        self.uses.add(IndexUse(self.table, column, value.path, form))

    def _cmp(self, value: _Value, op: str, literal: ast.Value) -> str:
        if op == "=" and (text := self._jsonb_text(value, literal)) is not None:
            assert isinstance(value, _Json)
            self._use(value, "node")
            return f"({value.node} = {text})"
        kind = _kind_of(literal)
        sql_op = "<>" if op == "!=" else op
        bound: Any = float(literal) if kind == "number" else literal
        right = ("TRUE" if literal else "FALSE") if kind == "boolean" else self.param(bound)
        ordered = kind == "text" and op not in ("=", "!=")
        if self.dialect == "postgresql" and isinstance(value, _Json) and op != "!=":
            # NULL unless of that kind: one expression, which an index can hold.
            if kind == "number":
                self._use(value, "number")
                return f"({value.typed('number')} {sql_op} {right})"
            if ordered:
                self._use(value, "text")
                return f'({value.typed("text")} COLLATE "C" {sql_op} {right})'
        left = value.value(kind)
        if ordered and self.dialect == "postgresql":
            left = f'{left} COLLATE "C"'
        return f"({value.is_kind(kind)} AND {left} {sql_op} {right})"

    def atom(self, node: ast.Condition, value: _Value) -> str:
        """An atom is never NULL under `not`, so that `not` is two-valued; elsewhere NULL
        and FALSE keep a row out alike, and the bare comparison is what an index on its
        expression can serve."""
        if self.negated:
            return f"COALESCE({self._atom(node, value)}, FALSE)"
        return self._atom(node, value)

    def _atom(self, node: ast.Condition, value: _Value) -> str:
        if isinstance(node, ast.Compare):
            return self._cmp(value, node.op, node.value)
        if isinstance(node, ast.OneOf):
            texts = [self._jsonb_text(value, v) for v in node.values]
            if texts and all(t is not None for t in texts):
                assert isinstance(value, _Json)
                self._use(value, "node")
                return f"({value.node} IN ({', '.join(t for t in texts if t)}))"
            return "(" + " OR ".join(self._cmp(value, "=", v) for v in node.values) + ")"
        if isinstance(node, ast.Text):
            return self.text(node, value)
        if isinstance(node, ast.Presence):
            return value.is_present() if node.test == "set" else value.is_empty()
        if isinstance(node, ast.Truthy):
            if isinstance(value, _Consent):
                return value.granted()
            if isinstance(value, _Column):  # IS TRUE: false for NULL, one lookup
                return value.value("boolean")
            if self.dialect == "postgresql" and isinstance(value, _Json):
                self._use(value, "node")
                return f"({value.node} = 'true'::jsonb)"
            return f"({value.is_kind('boolean')} AND {value.value('boolean')})"
        if isinstance(node, ast.TimeWindow):
            bound = self.param(ms_to_iso(self.now_ms - node.duration.ms))
            op = ">=" if node.within else "<"
            if self.dialect == "postgresql" and isinstance(value, _Json):
                self._use(value, "text")
                return f'({value.typed("text")} COLLATE "C" {op} {bound})'
            text = value.value("text")
            if self.dialect == "postgresql":
                text = f'{text} COLLATE "C"'
            return f"({value.is_kind('text')} AND {text} {op} {bound})"
        if isinstance(node, ast.Anniversary):
            text = value.value("text")
            days = ", ".join(
                self.param(day) for day in sorted(anniversary_days(self.now_ms, node.days))
            )
            return (
                f"({value.is_kind('text')} AND length({text}) >= 10 AND "
                f"substr({text}, 5, 1) = '-' AND substr({text}, 8, 1) = '-' AND "
                f"substr({text}, 6, 5) IN ({days}))"
            )
        raise TypeError(f"not an atom: {node!r}")

    def text(self, node: ast.Text, value: _Value) -> str:
        literal = node.value
        if node.op == "starts with":
            text = value.value("text")
            return (
                f"({value.is_kind('text')} AND substr({text}, 1, {len(str(literal))}) = "
                f"{self.param(str(literal))})"
            )
        parts = []
        if isinstance(literal, str):
            text = value.value("text")
            find = "instr" if self.dialect == "sqlite" else "strpos"
            parts.append(f"({value.is_kind('text')} AND {find}({text}, {self.param(literal)}) > 0)")
        if isinstance(value, _Json):
            source, typ, element = value.array_elements()
            kind = _kind_of(literal)
            if kind == "boolean":
                word = "true" if literal else "false"
                if self.dialect == "sqlite":
                    test = f"{typ} = '{word}'"
                else:
                    test = f"{typ} = 'boolean' AND {element} = '{word}'"
            elif kind == "number":
                num = (
                    element if self.dialect == "sqlite" else f"CAST({element} AS DOUBLE PRECISION)"
                )
                kinds = "IN ('integer', 'real')" if self.dialect == "sqlite" else "= 'number'"
                test = f"{typ} {kinds} AND {num} = {self.param(float(literal))}"
            else:
                text_kind = "'text'" if self.dialect == "sqlite" else "'string'"
                test = f"{typ} = {text_kind} AND {element} = {self.param(literal)}"
            parts.append(
                f"({value.is_kind('array')} AND EXISTS (SELECT 1 FROM {source} WHERE {test}))"
            )
        return "(" + " OR ".join(parts) + ")" if parts else "FALSE"

    # -- events --------------------------------------------------------------------------

    def events_where(
        self,
        event: str,
        window: ast.Duration | None,
        where: ast.Condition | None,
        correlated: bool = True,
    ) -> str:
        """The matching events: the profile's own (correlated), or everybody's."""
        clauses = [
            "e.profile_id = p.id" if correlated else "e.profile_id IS NOT NULL",
            f"e.status = {APPLIED}",
            "e.type = 'track'",
            f"e.event = {self.param(event)}",
        ]
        if window is not None:
            clauses.append(f"e.timestamp >= {self.param(self.now_ms - window.ms)}")
        if where is not None:
            clauses.append(self.event_condition(where))
        return " AND ".join(clauses)

    def grouped(
        self, event: str, window: ast.Duration | None, where: ast.Condition | None, having: str
    ) -> str:
        """PostgreSQL: the profile is among those whose matching events pass `having`. At
        the top level this is a semi-join with the events grouped once; under `not` or
        `or`, PostgreSQL pushes the profile id into the grouping (or hashes the groups)."""
        where_sql = self.events_where(event, window, where, correlated=False)
        return (
            f"EXISTS (SELECT 1 FROM (SELECT e.profile_id FROM events e WHERE {where_sql} "
            f"GROUP BY e.profile_id HAVING {having}) g WHERE g.profile_id = p.id)"
        )

    def did(self, node: ast.Did) -> str:
        pg = self.dialect == "postgresql"
        if node.first:
            assert node.window is not None
            since = self.param(self.now_ms - node.window.ms)
            if pg:
                return self.grouped(node.event, None, node.where, f"MIN(e.timestamp) >= {since}")
            where = self.events_where(node.event, None, node.where)
            return (
                f"COALESCE((SELECT MIN(e.timestamp) FROM events e WHERE {where}) >= {since}, FALSE)"
            )
        if (node.op, node.times) == (">=", 1):
            where = self.events_where(node.event, node.window, node.where)
            return f"EXISTS (SELECT 1 FROM events e WHERE {where})"
        if pg:
            times = self.param(node.times)
            holds = f"COUNT(*) {node.op} {times}"
            if _OPS[node.op](0, node.times):
                # Holds with no events at all: not among those for whom it fails.
                failing = self.grouped(node.event, node.window, node.where, f"NOT ({holds})")
                return f"(NOT {failing})"
            return self.grouped(node.event, node.window, node.where, holds)
        where = self.events_where(node.event, node.window, node.where)
        count = f"(SELECT COUNT(*) FROM events e WHERE {where})"
        return f"({count} {node.op} {self.param(node.times)})"

    def aggregate(self, node: ast.Aggregate) -> str:
        value = self.event_value(node.property)
        number = f"CASE WHEN {value.is_kind('number')} THEN {value.value('number')} END"
        func = _AGGREGATE_SQL[node.func]
        op = "<>" if node.op == "!=" else node.op
        if self.dialect == "postgresql":
            # No number among the matching events: NULL, so the HAVING fails (false).
            having = f"{func}({number}) {op} {self.param(float(node.value))}"
            return self.grouped(node.event, node.window, node.where, having)
        where = self.events_where(node.event, node.window, node.where)
        return (
            f"COALESCE((SELECT {func}({number}) FROM events e WHERE {where}) {op} "
            f"{self.param(float(node.value))}, FALSE)"
        )


_OPS = {"=": operator.eq, "!=": operator.ne, ">": operator.gt, ">=": operator.ge,
        "<": operator.lt, "<=": operator.le}  # fmt: skip


def _field(node: ast.Condition) -> ast.Field:
    from shopkeeper.segments.lang.evaluate import node_field

    return node_field(node)
