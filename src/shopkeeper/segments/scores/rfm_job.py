"""RFM scores in the database: the recompute (on a schedule and on demand) and the grid
the dashboard shows.

Customers are live profiles (not merged away) whose computed attributes hold
orders_count >= 1. One streamed query reads, per customer, computed.last_order_at,
orders_count and total_revenue (JSON extraction; SQLite and PostgreSQL), and the scores
the profile holds now. Scores are computed in Python (rfm.py), and only the rows whose
scores changed are written, in chunks of upserts, each chunk its own transaction so the
pipeline goes on in between. So `rfm_at` is when a profile's RFM scores last changed, and
an hourly run on a quiet shop writes almost nothing. Profiles that stopped being
customers (an order cancelled, merged away, erased) lose their RFM columns.

Two runs at once (the scheduler and an on-demand request) cannot leave older results
over newer ones: an upsert only replaces RFM values computed at or before its own time,
and the clean-up only clears rows computed at or before it.
"""

from __future__ import annotations

from array import array
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection

from shopkeeper.config import Settings
from shopkeeper.segments.scores.rfm import (
    SCORES,
    SEGMENT_NAMES,
    score_customers,
    segment_for,
)
from shopkeeper.storage import tables as t
from shopkeeper.storage.db import Database

WRITE_CHUNK = 5_000
_READ_CHUNK = 10_000
_RFM_COLUMNS = ("rfm_recency", "rfm_frequency", "rfm_monetary", "rfm_segment", "rfm_at")

scores_t = t.profile_scores
profiles_t = t.profiles
_computed = profiles_t.c.computed
_orders = _computed["orders_count"].as_integer()
_revenue = _computed["total_revenue"].as_float()
_last_order = _computed["last_order_at"].as_string()

# Called inside each write transaction with the profiles whose RFM columns it changed
# (scores set, changed or cleared): where real-time segments on rfm_* can re-evaluate.
ChangeListener = Callable[[Connection, Sequence[int]], None]


@dataclass(frozen=True, slots=True)
class RfmSummary:
    computed_at: int
    customers: int
    # Profiles whose stored scores differed from the new ones (written, unless a newer
    # run had already written them) / whose scores were cleared.
    changed: int
    cleared: int
    # Customers per named segment, in the order of the map.
    segments: dict[str, int] = field(default_factory=dict)


def _is_customer() -> sa.ColumnElement[bool]:
    return sa.and_(profiles_t.c.merged_into.is_(None), _orders >= 1)


def customer_values() -> sa.Select[Any]:
    """Every customer's id, last order time, order count and revenue, in profile id
    order (the tie-break order of the quintiles)."""
    return (
        sa.select(profiles_t.c.id, _last_order, _orders, _revenue)
        .where(_is_customer())
        .order_by(profiles_t.c.id)
    )


def _encode(r: Any, f: Any, m: Any, segment: Any) -> int:
    """Stored scores as one number (to compare with new ones cheaply); -1 when the row
    holds no RFM scores or a segment name that does not match them."""
    if r is None or f is None or m is None:
        return -1
    try:
        if segment != segment_for(int(r), int(f)):
            return -1
    except ValueError:
        return -1
    return int(r) * 100 + int(f) * 10 + int(m)


def _upsert(conn: Connection) -> Any:
    insert: Any = (sqlite.insert if conn.dialect.name == "sqlite" else postgresql.insert)(scores_t)
    excluded = insert.excluded
    return insert.on_conflict_do_update(
        index_elements=[scores_t.c.profile_id],
        set_={name: excluded[name] for name in _RFM_COLUMNS},
        where=sa.or_(scores_t.c.rfm_at.is_(None), scores_t.c.rfm_at <= excluded.rfm_at),
    )


def recompute_rfm(
    db: Database,
    now_ms: int,
    *,
    chunk_size: int = WRITE_CHUNK,
    on_change: ChangeListener | None = None,
) -> RfmSummary:
    """Recompute every customer's RFM scores and segment as of `now_ms`."""
    ids = array("q")
    orders = array("q")
    revenue = array("d")
    stored = array("h")
    last_order: list[str] = []
    query = (
        customer_values()
        .add_columns(
            scores_t.c.rfm_recency,
            scores_t.c.rfm_frequency,
            scores_t.c.rfm_monetary,
            scores_t.c.rfm_segment,
        )
        .select_from(profiles_t.outerjoin(scores_t, scores_t.c.profile_id == profiles_t.c.id))
    )
    with db.read() as conn:
        result = conn.execution_options(yield_per=_READ_CHUNK).execute(query)
        for pid, last, count, total, r, f, m, segment in result:
            ids.append(int(pid))
            last_order.append(last or "")
            orders.append(int(count))
            revenue.append(float(total or 0.0))
            stored.append(_encode(r, f, m, segment))
    r_scores, f_scores, m_scores = score_customers(last_order, orders, revenue)
    del last_order

    counts = dict.fromkeys(SEGMENT_NAMES, 0)
    changed = 0
    pending: list[dict[str, Any]] = []
    for i, pid in enumerate(ids):
        r, f, m = r_scores[i], f_scores[i], m_scores[i]
        segment = segment_for(r, f)
        counts[segment] += 1
        if r * 100 + f * 10 + m == stored[i]:
            continue
        pending.append(
            {
                "profile_id": pid,
                "rfm_recency": r,
                "rfm_frequency": f,
                "rfm_monetary": m,
                "rfm_segment": segment,
                "rfm_at": now_ms,
            }
        )
        if len(pending) >= chunk_size:
            changed += _write(db, pending, on_change)
            pending = []
    changed += _write(db, pending, on_change)
    cleared = _clear_former_customers(db, now_ms, chunk_size, on_change)
    return RfmSummary(
        computed_at=now_ms,
        customers=len(ids),
        changed=changed,
        cleared=cleared,
        segments=counts,
    )


def _write(db: Database, rows: list[dict[str, Any]], on_change: ChangeListener | None) -> int:
    if not rows:
        return 0
    with db.write() as conn:
        conn.execute(_upsert(conn), rows)
        if on_change is not None:
            on_change(conn, [row["profile_id"] for row in rows])
    return len(rows)


def _clear_former_customers(
    db: Database, now_ms: int, chunk_size: int, on_change: ChangeListener | None
) -> int:
    """Clear the RFM columns of rows whose profile is no longer a customer (or gone),
    and delete rows left with no score at all."""
    with db.read() as conn:
        stale = [
            int(pid)
            for pid in conn.execute(
                sa.select(scores_t.c.profile_id)
                .select_from(
                    scores_t.outerjoin(profiles_t, profiles_t.c.id == scores_t.c.profile_id)
                )
                .where(scores_t.c.rfm_segment.is_not(None))
                .where(sa.or_(scores_t.c.rfm_at.is_(None), scores_t.c.rfm_at <= now_ms))
                .where(
                    sa.or_(
                        profiles_t.c.id.is_(None),
                        profiles_t.c.merged_into.is_not(None),
                        _orders.is_(None),
                        _orders < 1,
                    )
                )
                .order_by(scores_t.c.profile_id)
            ).scalars()
        ]
    for start in range(0, len(stale), chunk_size):
        chunk = stale[start : start + chunk_size]
        with db.write() as conn:
            in_chunk = scores_t.c.profile_id.in_(chunk)
            conn.execute(
                scores_t.update()
                .where(in_chunk)
                .where(sa.or_(scores_t.c.rfm_at.is_(None), scores_t.c.rfm_at <= now_ms))
                .values(dict.fromkeys(_RFM_COLUMNS))
            )
            conn.execute(
                scores_t.delete().where(
                    in_chunk, scores_t.c.rfm_segment.is_(None), scores_t.c.lead_score.is_(None)
                )
            )
            if on_change is not None:
                on_change(conn, chunk)
    return len(stale)


def recompute_rfm_task(db: Database, settings: Settings, now_ms: int) -> RfmSummary:
    """The scheduler's entry point (suggested: every hour)."""
    return recompute_rfm(db, now_ms)


# -- the grid -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class GridCell:
    recency: int
    frequency: int
    segment: str
    customers: int
    revenue: float


@dataclass(frozen=True, slots=True)
class SegmentTotal:
    name: str
    customers: int
    revenue: float


@dataclass(frozen=True, slots=True)
class RfmGrid:
    # 25 cells: recency 5 (top row) down to 1, frequency 1 to 5 within each row.
    cells: list[GridCell]
    # The named segments in the order of the map, with their totals.
    segments: list[SegmentTotal]
    customers: int
    revenue: float
    # When any profile's RFM scores last changed; None before the first recompute.
    last_change_at: int | None


def rfm_grid(conn: Connection) -> RfmGrid:
    """Customers and revenue (the sum of their total_revenue, now) per R x F cell and per
    named segment, over live profiles holding RFM scores."""
    r_col, f_col = scores_t.c.rfm_recency, scores_t.c.rfm_frequency
    rows = conn.execute(
        sa.select(
            r_col,
            f_col,
            sa.func.count(),
            sa.func.sum(sa.func.coalesce(_revenue, 0.0)),
            sa.func.max(scores_t.c.rfm_at),
        )
        .select_from(scores_t.join(profiles_t, profiles_t.c.id == scores_t.c.profile_id))
        .where(r_col.is_not(None), f_col.is_not(None), profiles_t.c.merged_into.is_(None))
        .group_by(r_col, f_col)
    ).all()
    found: dict[tuple[int, int], tuple[int, float]] = {}
    last_change: int | None = None
    for r, f, count, total, at in rows:
        found[(int(r), int(f))] = (int(count), float(total or 0.0))
        if at is not None:
            last_change = max(int(at), last_change or 0)
    cells: list[GridCell] = []
    per_segment = {name: [0, 0.0] for name in SEGMENT_NAMES}
    for r in reversed(SCORES):
        for f in SCORES:
            count, total = found.get((r, f), (0, 0.0))
            name = segment_for(r, f)
            cells.append(GridCell(r, f, name, count, round(total, 2)))
            per_segment[name][0] += count
            per_segment[name][1] += total
    segments = [
        SegmentTotal(name, int(c), round(float(v), 2)) for name, (c, v) in per_segment.items()
    ]
    return RfmGrid(
        cells=cells,
        segments=segments,
        customers=sum(c.customers for c in cells),
        revenue=round(sum(total for _, total in found.values()), 2),
        last_change_at=last_change,
    )
