"""Loading the facts the segment language needs about a few profiles, from the database.

Real-time membership, the explain endpoint and profile-condition lead rules evaluate
conditions in Python for the profiles a batch touched; they load only what the
conditions ask about (`Needs`): the profile row always, consents, scores, the catalog
rows of the events' products, and the track events of the names the conditions count,
from the oldest window they look at. One query per kind of fact for all the profiles.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from shopkeeper.segments.lang import ast
from shopkeeper.segments.lang.derived import funnel_conditions
from shopkeeper.segments.lang.evaluate import (
    EventFact,
    ProfileFacts,
    inline_segment,
    product_id,
)
from shopkeeper.storage import tables as t

_CHUNK = 500
_SCORE_COLUMNS = ("rfm_recency", "rfm_frequency", "rfm_monetary", "rfm_segment", "lead_score")


@dataclass(frozen=True)
class Needs:
    """What must be loaded to evaluate some conditions."""

    consents: bool = False
    scores: bool = False
    products: bool = False
    # Track event name -> how far back any condition looks, in ms (None: all history).
    events: Mapping[str, int | None] = field(default_factory=dict)


@dataclass
class _Collector:
    consents: bool = False
    scores: bool = False
    products: bool = False
    time: bool = False
    # name -> longest window in ms (None: unbounded)
    events: dict[str, int | None] | None = None


def needs_of(nodes: Iterable[ast.Condition], segments: Mapping[str, ast.Condition]) -> Needs:
    """The facts that evaluating `nodes` (with `in segment` inlined from `segments`)
    needs. Raises UnknownSegment like the compilers do."""
    found = _Collector(events={})
    for node in nodes:
        _collect(node, segments, (), found)
    assert found.events is not None
    return Needs(
        consents=found.consents,
        scores=found.scores,
        products=found.products,
        events=dict(found.events),
    )


def is_time_dependent(node: ast.Condition, segments: Mapping[str, ast.Condition]) -> bool:
    """Whether the condition's truth can change with the passing of time alone (a
    window, an anniversary, the funnel's lapsing) or with scores that jobs recompute
    outside the pipeline: such segments are re-checked by the scheduler."""
    found = _Collector(events={})
    _collect(node, segments, (), found)
    return found.time or found.scores


def _collect(
    node: ast.Condition,
    segments: Mapping[str, ast.Condition],
    stack: tuple[str, ...],
    found: _Collector,
) -> None:
    assert found.events is not None
    for item in ast.walk(node):
        if isinstance(item, ast.InSegment):
            inner, inner_stack = inline_segment(item, segments, stack)
            _collect(inner, segments, inner_stack, found)
        elif isinstance(item, (ast.Did, ast.Aggregate)):
            window = item.window
            first = isinstance(item, ast.Did) and item.first
            span = None if window is None or first else window.ms
            if window is not None:
                found.time = True
            previous = found.events.get(item.event, 0)
            if item.event not in found.events:
                found.events[item.event] = span
            elif previous is not None:
                found.events[item.event] = None if span is None else max(previous, span)
            fields: list[ast.Field | None] = (
                [item.property] if isinstance(item, ast.Aggregate) else []
            )
            if item.where is not None:
                fields += [_field_of(x) for x in ast.walk(item.where)]
            if any(f is not None and f.kind == "product" for f in fields):
                found.products = True
        else:
            fld = _field_of(item)
            if fld is None:
                continue
            if fld.kind == "consent":
                found.consents = True
            elif fld.kind == "score":
                found.scores = True
            elif fld.kind == "derived":
                found.time = True
                for _stage, cond in funnel_conditions():
                    _collect(cond, segments, stack, found)
            if isinstance(item, (ast.TimeWindow, ast.Anniversary)):
                found.time = True


def _field_of(node: ast.Condition) -> ast.Field | None:
    value = getattr(node, "field", None)
    return value if isinstance(value, ast.Field) else None


def load_facts(
    conn: Connection, profile_ids: Sequence[int], needs: Needs, now_ms: int
) -> dict[int, ProfileFacts]:
    """Facts of the live (not merged) profiles among `profile_ids`, for evaluating at
    `now_ms`."""
    out: dict[int, ProfileFacts] = {}
    ids = sorted(set(profile_ids))
    for start in range(0, len(ids), _CHUNK):
        out.update(_load_chunk(conn, ids[start : start + _CHUNK], needs, now_ms))
    return out


def _load_chunk(
    conn: Connection, ids: list[int], needs: Needs, now_ms: int
) -> dict[int, ProfileFacts]:
    p = t.profiles
    rows = conn.execute(
        sa.select(p.c.id, p.c.is_known, p.c.traits, p.c.computed).where(
            p.c.id.in_(ids), p.c.merged_into.is_(None)
        )
    ).all()
    consents: dict[int, dict[tuple[str, str], bool]] = defaultdict(dict)
    if needs.consents and rows:
        c = t.consents
        for row in conn.execute(
            sa.select(c.c.profile_id, c.c.channel, c.c.purpose, c.c.granted).where(
                c.c.profile_id.in_(ids)
            )
        ):
            consents[row.profile_id][(row.channel, row.purpose)] = bool(row.granted)
    scores: dict[int, dict[str, Any]] = {}
    if needs.scores and rows:
        s = t.profile_scores
        for row in conn.execute(
            sa.select(s.c.profile_id, *(s.c[name] for name in _SCORE_COLUMNS)).where(
                s.c.profile_id.in_(ids)
            )
        ):
            scores[row.profile_id] = {name: row._mapping[name] for name in _SCORE_COLUMNS}
    events = _load_events(conn, ids, needs.events, now_ms) if needs.events and rows else {}
    products: dict[str, dict[str, Any]] = {}
    if needs.products and events:
        wanted = {pid for facts in events.values() for e in facts if (pid := product_id(e))}
        products = load_products(conn, wanted)
    return {
        row.id: ProfileFacts(
            profile_id=row.id,
            known=bool(row.is_known),
            traits=row.traits or {},
            computed=row.computed or {},
            consents=consents.get(row.id, {}),
            scores=scores.get(row.id, {}),
            events=events.get(row.id, ()),
            products=products,
        )
        for row in rows
    }


def _load_events(
    conn: Connection, ids: list[int], spans: Mapping[str, int | None], now_ms: int
) -> dict[int, list[EventFact]]:
    e = t.events
    wanted = {name: (None if span is None else now_ms - span) for name, span in spans.items()}
    bounded = [since for since in wanted.values() if since is not None]
    since = None if len(bounded) < len(wanted) else min(bounded)
    query = sa.select(e.c.profile_id, e.c.event, e.c.timestamp, e.c.payload).where(
        e.c.profile_id.in_(ids),
        e.c.status == t.APPLIED,
        e.c.type == "track",
        e.c.event.in_(sorted(wanted)),
    )
    if since is not None:
        query = query.where(e.c.timestamp >= since)
    out: dict[int, list[EventFact]] = defaultdict(list)
    for row in conn.execute(query):
        limit = wanted[row.event]
        if limit is not None and row.timestamp < limit:
            continue
        payload = row.payload if isinstance(row.payload, dict) else {}
        properties = payload.get("properties")
        context = payload.get("context")
        out[row.profile_id].append(
            EventFact(
                name=row.event,
                timestamp=int(row.timestamp),
                properties=properties if isinstance(properties, dict) else {},
                context=context if isinstance(context, dict) else {},
            )
        )
    return out


def load_products(conn: Connection, ids: Iterable[str]) -> dict[str, dict[str, Any]]:
    wanted = sorted(set(ids))
    out: dict[str, dict[str, Any]] = {}
    pr = t.products
    columns = [pr.c[name] for name in ("id", "sku", "name", "category", "brand", "currency")]
    columns += [pr.c[name] for name in ("price", "sale_price", "stock_quantity")]
    for start in range(0, len(wanted), _CHUNK):
        for row in conn.execute(
            sa.select(*columns).where(pr.c.id.in_(wanted[start : start + _CHUNK]))
        ):
            out[row.id] = dict(row._mapping)
    return out
