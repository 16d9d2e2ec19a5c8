"""Customer lists for browsing (search by text lives in profiles/view.py)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from shopkeeper.storage import tables as t


def recent_customers(
    conn: Connection, *, known: bool | None = None, limit: int = 50, offset: int = 0
) -> tuple[list[dict[str, Any]], int]:
    """Live profiles, most recently updated first, in the shape of view.search's hits
    (plus total_revenue), and how many there are in all."""
    where: list[sa.ColumnElement[bool]] = [t.profiles.c.merged_into.is_(None)]
    if known is not None:
        where.append(t.profiles.c.is_known == known)
    total = conn.execute(sa.select(sa.func.count()).select_from(t.profiles).where(*where)).scalar()
    rows = conn.execute(
        sa.select(
            t.profiles.c.id,
            t.profiles.c.display_name,
            t.profiles.c.is_known,
            t.profiles.c.computed["last_seen_at"].as_string(),
            t.profiles.c.computed["orders_count"].as_integer(),
            t.profiles.c.computed["total_revenue"].as_float(),
        )
        .where(*where)
        .order_by(t.profiles.c.updated_at.desc(), t.profiles.c.id.desc())
        .limit(limit)
        .offset(offset)
    ).all()
    return [
        {
            "profile_id": int(r[0]),
            "display_name": r[1],
            "is_known": bool(r[2]),
            "last_seen_at": r[3],
            "orders_count": int(r[4] or 0),
            "total_revenue": float(r[5] or 0),
        }
        for r in rows
    ], int(total or 0)


def display_names(conn: Connection, profile_ids: Iterable[int]) -> dict[int, str | None]:
    """profile id -> the name or email a person would recognise (None when unknown), for
    lists of people elsewhere (a product's recent buyers)."""
    wanted = sorted(set(profile_ids))
    if not wanted:
        return {}
    rows = conn.execute(
        sa.select(t.profiles.c.id, t.profiles.c.display_name).where(t.profiles.c.id.in_(wanted))
    ).all()
    return {int(row[0]): row[1] for row in rows}
