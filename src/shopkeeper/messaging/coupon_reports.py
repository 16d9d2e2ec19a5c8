"""The read side of coupons: how each pool is doing, its codes, a person's coupons.

A code is in exactly one state: free (never issued nor redeemed), issued (held by a
profile, not redeemed yet; `expired` once past its expiry), or redeemed. The counts of
a pool's summary are cumulative: `issued` counts every code ever issued, redeemed ones
included.
"""

from __future__ import annotations

from typing import Any, Literal

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from shopkeeper.messaging.coupons import Pool, UnknownPool, get_pool, list_pools
from shopkeeper.storage import tables as t
from shopkeeper.timeutil import ms_to_iso

Status = Literal["free", "issued", "redeemed"]

_c = t.coupons.c
_p = t.coupon_pools.c


def _counts(now_ms: int) -> list[Any]:
    issued = _c.profile_id.is_not(None)
    redeemed = _c.redeemed_at.is_not(None)

    def count(condition: Any) -> Any:
        return sa.func.coalesce(sa.func.sum(sa.case((condition, 1), else_=0)), 0)

    return [
        sa.func.count().label("total"),
        count(sa.and_(_c.profile_id.is_(None), _c.redeemed_at.is_(None))).label("free"),
        count(issued).label("issued"),
        count(redeemed).label("redeemed"),
        count(sa.and_(issued, redeemed)).label("issued_redeemed"),
        sa.func.coalesce(sa.func.sum(sa.case((redeemed, _c.revenue), else_=None)), 0).label(
            "revenue"
        ),
        count(
            sa.and_(
                issued,
                _c.redeemed_at.is_(None),
                _c.expires_at.is_not(None),
                _c.expires_at <= now_ms,
            )
        ).label("expired"),
    ]


def _summary(pool: Pool, row: Any | None) -> dict[str, Any]:
    def number(name: str) -> int:
        return int(getattr(row, name) or 0) if row is not None else 0

    issued, redeemed = number("issued"), number("redeemed")
    return {
        "key": pool.key,
        "name": pool.name,
        "pattern": pool.pattern,
        "discount": pool.discount,
        "valid_days": pool.valid_days,
        "expires_at": _iso(pool.expires_at),
        "created_at": ms_to_iso(pool.created_at),
        "codes": {
            "total": number("total"),
            "free": number("free"),
            "issued": issued,
            "redeemed": redeemed,
            # Issued, not redeemed, and past their expiry now.
            "expired": number("expired"),
        },
        # Of the codes issued, the share redeemed (codes used without being issued, e.g.
        # printed ones, count as redeemed but not here).
        "redemption_rate": round(number("issued_redeemed") / issued, 4) if issued else None,
        "revenue": round(float(row.revenue or 0.0), 2) if row is not None else 0.0,
    }


def pool_summary(conn: Connection, key: str, now_ms: int) -> dict[str, Any]:
    """The pool's settings and its code counts: total, free, issued, redeemed, revenue
    of the redeeming orders, and issued codes that expired unredeemed by `now_ms`."""
    pool = get_pool(conn, key)
    if pool is None:
        raise UnknownPool(key)
    row = conn.execute(sa.select(*_counts(now_ms)).where(_c.pool_id == pool.id)).first()
    return _summary(pool, row)


def summaries(conn: Connection, now_ms: int) -> list[dict[str, Any]]:
    """Every pool with its summary, by key, in one query for the counts."""
    rows = {
        int(row.pool_id): row
        for row in conn.execute(sa.select(_c.pool_id, *_counts(now_ms)).group_by(_c.pool_id)).all()
    }
    return [_summary(pool, rows.get(pool.id)) for pool in list_pools(conn)]


def _state(status: Status) -> Any:
    if status == "free":
        return sa.and_(_c.profile_id.is_(None), _c.redeemed_at.is_(None))
    if status == "issued":
        return sa.and_(_c.profile_id.is_not(None), _c.redeemed_at.is_(None))
    return _c.redeemed_at.is_not(None)


def list_codes(
    conn: Connection,
    key: str,
    now_ms: int,
    status: Status | None = None,
    limit: int = 100,
    offset: int = 0,
) -> dict[str, Any]:
    """The pool's codes in the order they were added, optionally in one state."""
    pool = get_pool(conn, key)
    if pool is None:
        raise UnknownPool(key)
    query = sa.select(t.coupons).where(_c.pool_id == pool.id)
    if status is not None:
        query = query.where(_state(status))
    rows = conn.execute(query.order_by(_c.id).limit(limit).offset(offset)).all()
    return {
        "pool": pool.key,
        "status": status,
        "limit": limit,
        "offset": offset,
        "codes": [_code(row, now_ms) for row in rows],
    }


def profile_coupons(conn: Connection, profile_id: int, now_ms: int) -> list[dict[str, Any]]:
    """Every code issued to the profile, or to profiles merged into it, newest first."""
    absorbed = sa.select(t.profiles.c.id).where(t.profiles.c.merged_into == profile_id)
    rows = conn.execute(
        sa.select(t.coupons, _p.key.label("pool_key"), _p.discount)
        .join(t.coupon_pools, _p.id == _c.pool_id)
        .where(sa.or_(_c.profile_id == profile_id, _c.profile_id.in_(absorbed)))
        .order_by(_c.issued_at.desc(), _c.id.desc())
    ).all()
    return [{"pool": row.pool_key, "discount": row.discount, **_code(row, now_ms)} for row in rows]


def _code(row: Any, now_ms: int) -> dict[str, Any]:
    if row.redeemed_at is not None:
        status = "redeemed"
    elif row.profile_id is not None:
        status = "issued"
    else:
        status = "free"
    expired = status == "issued" and row.expires_at is not None and row.expires_at <= now_ms
    return {
        "code": row.code,
        "status": status,
        "expired": expired,
        "profile_id": row.profile_id,
        "journey_id": row.journey_id,
        "enrollment_id": row.enrollment_id,
        "issued_at": _iso(row.issued_at),
        "expires_at": _iso(row.expires_at),
        "redeemed_at": _iso(row.redeemed_at),
        "order_id": row.order_id,
        "revenue": row.revenue,
    }


def _iso(ms: int | None) -> str | None:
    return ms_to_iso(ms) if ms is not None else None
