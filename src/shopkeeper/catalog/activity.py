"""What the event log and the pipeline's counts say about one product: its numbers per
day (kept in `product_stats` by catalog.stats) and the profiles that viewed or bought it
lately (read from the event log, whose payloads are JSON: one query per dialect)."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from shopkeeper.storage import tables as t
from shopkeeper.timeutil import ms_to_iso

DAY_MS = 86_400_000
_RECENT_PEOPLE = 10
# Recent viewers and buyers are looked up in the newest events of the log only, so that a
# product nobody looked at does not cost a scan of the whole history (about 0.2 s for
# 200,000 events on either database).
_RECENT_SCAN_EVENTS = 200_000


def daily_stats(
    conn: Connection, product_id: str, first_day: int
) -> tuple[list[dict[str, Any]], bool]:
    """Per-day rows from `first_day` on, and whether the product has any stats at all."""
    ps = t.product_stats
    rows = conn.execute(
        sa.select(ps).where(ps.c.product_id == product_id, ps.c.day >= first_day).order_by(ps.c.day)
    ).all()
    daily = [
        {
            "date": ms_to_iso(row.day * DAY_MS)[:10],
            "views": int(row.views),
            "cart_adds": int(row.cart_adds),
            "orders": int(row.orders),
            "units": float(row.units),
            "revenue": round(float(row.revenue), 2),
        }
        for row in rows
    ]
    if daily:
        return daily, True
    older = conn.execute(sa.select(ps.c.day).where(ps.c.product_id == product_id).limit(1)).first()
    return daily, older is not None


_VIEWERS_SQLITE = """
SELECT profile_id, max(timestamp) AS last FROM events
WHERE seq > :floor AND status = :applied AND timestamp >= :since AND event = 'Product Viewed'
  AND CAST(COALESCE(json_extract(payload, '$.properties.product_id'),
                    json_extract(payload, '$.properties.sku'),
                    json_extract(payload, '$.properties.id')) AS TEXT) = :pid
GROUP BY profile_id ORDER BY last DESC, profile_id LIMIT :limit
"""

_VIEWERS_PG = """
SELECT profile_id, max(timestamp) AS last FROM events
WHERE seq > :floor AND status = :applied AND timestamp >= :since AND event = 'Product Viewed'
  AND COALESCE(payload->'properties'->>'product_id', payload->'properties'->>'sku',
               payload->'properties'->>'id') = :pid
GROUP BY profile_id ORDER BY last DESC, profile_id LIMIT :limit
"""

# Guards (CASE) rather than AND: neither database promises to test conditions in order,
# and the products of a message are whatever the sender put there.
_BUYERS_SQLITE = """
SELECT profile_id, max(timestamp) AS last FROM events
WHERE seq > :floor AND status = :applied AND timestamp >= :since AND event = 'Order Completed'
  AND EXISTS (
    SELECT 1 FROM json_each(CASE WHEN json_type(payload, '$.properties.products') = 'array'
                            THEN json_extract(payload, '$.properties.products')
                            ELSE '[]' END) AS line
    WHERE CASE WHEN line.type = 'object'
               THEN CAST(COALESCE(json_extract(line.value, '$.product_id'),
                                  json_extract(line.value, '$.sku'),
                                  json_extract(line.value, '$.id')) AS TEXT)
          END = :pid)
GROUP BY profile_id ORDER BY last DESC, profile_id LIMIT :limit
"""

_BUYERS_PG = """
SELECT profile_id, max(timestamp) AS last FROM events
WHERE seq > :floor AND status = :applied AND timestamp >= :since AND event = 'Order Completed'
  AND EXISTS (
    SELECT 1 FROM jsonb_array_elements(
      CASE WHEN jsonb_typeof(payload->'properties'->'products') = 'array'
           THEN payload->'properties'->'products' ELSE '[]'::jsonb END) AS line
    WHERE CASE WHEN jsonb_typeof(line) = 'object'
               THEN COALESCE(line->>'product_id', line->>'sku', line->>'id') END = :pid)
GROUP BY profile_id ORDER BY last DESC, profile_id LIMIT :limit
"""


def _recent_people(conn: Connection, sql: str, product_id: str, since_ms: int) -> list[int]:
    """Profiles whose matching events are the newest, most recent first."""
    top = conn.execute(sa.select(sa.func.max(t.events.c.seq))).scalar() or 0
    rows = conn.execute(
        sa.text(sql),
        {
            "floor": int(top) - _RECENT_SCAN_EVENTS,
            "applied": t.APPLIED,
            "since": since_ms,
            "pid": product_id,
            "limit": _RECENT_PEOPLE,
        },
    ).all()
    return [int(row.profile_id) for row in rows if row.profile_id is not None]


def recent_viewers(conn: Connection, product_id: str, since_ms: int) -> list[int]:
    sql = _VIEWERS_SQLITE if conn.dialect.name == "sqlite" else _VIEWERS_PG
    return _recent_people(conn, sql, product_id, since_ms)


def recent_buyers(conn: Connection, product_id: str, since_ms: int) -> list[int]:
    sql = _BUYERS_SQLITE if conn.dialect.name == "sqlite" else _BUYERS_PG
    return _recent_people(conn, sql, product_id, since_ms)
