"""The catalog's service functions: upserts with their catalog events, soft deletes, and
the read side (lists, one product with its statistics, the catalog events).

Other parts call these, never the tables: imports (upsert_products), the demo
(upsert_products), the admin UI (list_products, product_detail) and later journeys
(catalog_events, products_by_ids).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Row

from shopkeeper.admin import audit
from shopkeeper.catalog import activity
from shopkeeper.catalog.activity import DAY_MS
from shopkeeper.catalog.products import FIELDS, CatalogEvent, changes, normalize_category
from shopkeeper.storage import tables as t
from shopkeeper.storage.db import Database
from shopkeeper.timeutil import ms_to_iso

STATS_DAYS = 30
# Ids per IN (...) list: far below both databases' parameter limits.
_CHUNK = 5_000
_UPSERT_ATTEMPTS = 3

# Advisory lock key ("catalog events" in ASCII, truncated to 63 bits).
_EVENTS_LOCK = 0x636174616C6F6765

_p = t.products
_VALUE_COLUMNS = [name for name in FIELDS if name != "id"]


@dataclass
class UpsertSummary:
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    catalog_events: int = 0


@dataclass
class UpsertOutcome:
    """What one upsert did to one product (for the API's answer)."""

    product: dict[str, Any]
    status: str  # created, updated or unchanged
    events: list[dict[str, Any]] = field(default_factory=list)


# -- rows ---------------------------------------------------------------------------------------


def _row_dict(row: Row[Any]) -> dict[str, Any]:
    out = {name: getattr(row, name) for name in FIELDS}
    out["attributes"] = out["attributes"] or {}
    out["locales"] = out["locales"] or {}
    out["created_at"] = ms_to_iso(row.created_at)
    out["updated_at"] = ms_to_iso(row.updated_at)
    out["deleted_at"] = ms_to_iso(row.deleted_at) if row.deleted_at is not None else None
    return out


def _same(stored: dict[str, Any], product: dict[str, Any]) -> bool:
    return all(stored.get(name) == product.get(name) for name in FIELDS)


def _chunks(ids: Sequence[str]) -> Iterable[Sequence[str]]:
    for start in range(0, len(ids), _CHUNK):
        yield ids[start : start + _CHUNK]


def _load(conn: Connection, ids: Sequence[str], *, lock: bool) -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = {}
    for chunk in _chunks(ids):
        query = sa.select(_p).where(_p.c.id.in_(chunk))
        if lock and conn.dialect.name == "postgresql":
            # Two imports of the same products queue here instead of both deciding from
            # the same old row (and both recording the same price drop); in id order, as
            # the writes below, so that two of them cannot deadlock.
            query = query.order_by(_p.c.id).with_for_update()
        for row in conn.execute(query):
            found[row.id] = _row_dict(row)
    return found


def _event_out(row: Row[Any]) -> dict[str, Any]:
    return {
        "id": int(row.id),
        "product_id": row.product_id,
        "type": row.type,
        "at": ms_to_iso(row.at),
        "details": row.details,
    }


# -- writes -------------------------------------------------------------------------------------


def _upsert(
    db: Database,
    products: Sequence[dict[str, Any]],
    now_ms: int,
    low_stock_threshold: int,
    actor: str | None,
) -> tuple[UpsertSummary, list[UpsertOutcome]]:
    for attempt in range(_UPSERT_ATTEMPTS):
        try:
            with db.write() as conn:
                return _upsert_in(conn, products, now_ms, low_stock_threshold, actor)
        except sa.exc.IntegrityError:
            # Another writer inserted one of our new ids between our read and our insert:
            # read again, now as an update.
            if attempt == _UPSERT_ATTEMPTS - 1:
                raise
    raise AssertionError("unreachable")


def _upsert_in(
    conn: Connection,
    products: Sequence[dict[str, Any]],
    now_ms: int,
    low_stock_threshold: int,
    actor: str | None,
) -> tuple[UpsertSummary, list[UpsertOutcome]]:
    ids = list(dict.fromkeys(str(product["id"]) for product in products))
    stored = _load(conn, sorted(ids), lock=True)
    # The latest state of each product within this call; a file may name an id twice,
    # and the second row is compared with the first.
    current: dict[str, dict[str, Any] | None] = {
        pid: (None if row["deleted_at"] is not None else row) for pid, row in stored.items()
    }
    summary = UpsertSummary()
    outcomes: list[UpsertOutcome] = []
    final: dict[str, dict[str, Any]] = {}
    events: list[CatalogEvent] = []
    for product in products:
        pid = str(product["id"])
        old = current.get(pid)
        new = {name: product.get(name) for name in FIELDS}
        new["attributes"] = new["attributes"] or {}
        new["locales"] = new["locales"] or {}
        if old is not None and _same(old, new):
            summary.unchanged += 1
            outcomes.append(UpsertOutcome(old, "unchanged"))
            continue
        # A soft-deleted product that comes back is new again: its old stock and price
        # are history, not a change anyone is waiting on.
        found = changes(old, new, low_stock_threshold)
        events.extend(found)
        # A revived product counts as updated: its id was known, only hidden.
        status = "updated" if pid in stored or old is not None else "created"
        if status == "created":
            summary.created += 1
        else:
            summary.updated += 1
        created_at = stored[pid]["created_at"] if pid in stored else ms_to_iso(now_ms)
        shown = {
            **new,
            "created_at": created_at,
            "updated_at": ms_to_iso(now_ms),
            "deleted_at": None,
        }
        current[pid] = shown
        final[pid] = new
        outcomes.append(
            UpsertOutcome(
                shown,
                status,
                [{"type": e.type, "product_id": e.product_id, "details": e.details} for e in found],
            )
        )

    ordered = sorted(final.items())
    inserts = [
        {**row, "created_at": now_ms, "updated_at": now_ms, "deleted_at": None}
        for pid, row in ordered
        if pid not in stored
    ]
    updates = [
        {
            "b_id": pid,
            **{name: row[name] for name in _VALUE_COLUMNS},
            "updated_at": now_ms,
            "deleted_at": None,
        }
        for pid, row in ordered
        if pid in stored
    ]
    if inserts:
        conn.execute(_p.insert(), inserts)
    if updates:
        values: dict[str, Any] = {name: sa.bindparam(name) for name in _VALUE_COLUMNS}
        values["updated_at"] = sa.bindparam("updated_at")
        values["deleted_at"] = sa.bindparam("deleted_at")
        conn.execute(_p.update().where(_p.c.id == sa.bindparam("b_id")).values(values), updates)
    if events:
        if conn.dialect.name == "postgresql":
            # Catalog events are read by polling on their id (`after`); holding this lock
            # to the commit makes ids commit in order, so a reader never skips one that
            # was still uncommitted when it read a higher id. SQLite writers are serial.
            conn.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": _EVENTS_LOCK})
        conn.execute(
            t.catalog_events.insert(),
            [
                {"product_id": e.product_id, "type": e.type, "at": now_ms, "details": e.details}
                for e in events
            ],
        )
    summary.catalog_events = len(events)
    if actor is not None:
        audit.record(
            conn,
            at_ms=now_ms,
            actor=actor,
            action="products.upsert",
            target=f"product {ids[0]}" if len(ids) == 1 else None,
            details={
                "products": len(products),
                "created": summary.created,
                "updated": summary.updated,
                "unchanged": summary.unchanged,
                "catalog_events": summary.catalog_events,
            },
        )
    return summary, outcomes


def upsert_products(
    db: Database,
    products: Sequence[dict[str, Any]],
    now_ms: int,
    *,
    low_stock_threshold: int,
    actor: str | None = None,
) -> UpsertSummary:
    """Create or replace products (dicts from parse_product) in one transaction, recording
    the catalog events their stock and price changes cause. Products equal to what is
    stored are left alone (no write, no event). Bulk-friendly: one read for all ids, one
    executemany per kind of write. An audit entry is written when `actor` is given."""
    if not products:
        return UpsertSummary()
    summary, _ = _upsert(db, products, now_ms, low_stock_threshold, actor)
    return summary


def upsert_product(
    db: Database,
    product: dict[str, Any],
    now_ms: int,
    *,
    low_stock_threshold: int,
    actor: str | None = None,
) -> UpsertOutcome:
    """One product, with what became of it and the catalog events it caused."""
    _, outcomes = _upsert(db, [product], now_ms, low_stock_threshold, actor)
    return outcomes[0]


def delete_product(
    db: Database, product_id: str, now_ms: int, *, actor: str | None = None
) -> dict[str, Any] | None:
    """Soft delete: the product leaves lists and filters but stays joinable for the events
    that name it; upserting it again brings it back. Returns the product as it now is, or
    None when the catalog never had it. Deleting a deleted product changes nothing."""
    with db.write() as conn:
        row = conn.execute(sa.select(_p).where(_p.c.id == product_id)).first()
        if row is None:
            return None
        if row.deleted_at is None:
            conn.execute(_p.update().where(_p.c.id == product_id).values(deleted_at=now_ms))
            if actor is not None:
                audit.record(
                    conn,
                    at_ms=now_ms,
                    actor=actor,
                    action="products.delete",
                    target=f"product {product_id}",
                )
            row = conn.execute(sa.select(_p).where(_p.c.id == product_id)).one()
        return _row_dict(row)


# -- reads --------------------------------------------------------------------------------------


def get_product(conn: Connection, product_id: str) -> dict[str, Any] | None:
    """The catalog's product, deleted ones included (deleted_at is then set)."""
    row = conn.execute(sa.select(_p).where(_p.c.id == product_id)).first()
    return _row_dict(row) if row is not None else None


def products_by_ids(conn: Connection, ids: Iterable[str]) -> dict[str, dict[str, Any]]:
    """Products by id, deleted ones included: for joining events and stats to names."""
    wanted = list(dict.fromkeys(ids))
    found: dict[str, dict[str, Any]] = {}
    for chunk in _chunks(wanted):
        for row in conn.execute(sa.select(_p).where(_p.c.id.in_(chunk))):
            found[row.id] = _row_dict(row)
    return found


def _escape_like(text: str) -> str:
    return text.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def list_products(
    conn: Connection,
    *,
    q: str | None = None,
    category: str | None = None,
    brand: str | None = None,
    in_stock: bool | None = None,
    limit: int = 50,
    offset: int = 0,
) -> tuple[list[dict[str, Any]], int]:
    """Live products (not deleted), by name, and how many match in all.

    q: part of the name, sku or id (any case). category: a path prefix by whole parts
    ("Home > Living" matches "Home > Living > Sofas", not "Home > Living room").
    brand: exact, any case. in_stock: True for stock above 0 or not tracked, False for 0.
    """
    conditions: list[sa.ColumnElement[bool]] = [_p.c.deleted_at.is_(None)]
    if q is not None and q.strip():
        pattern = f"%{_escape_like(q.strip())}%"
        conditions.append(
            sa.or_(
                sa.func.lower(_p.c.name).like(pattern, escape="\\"),
                sa.func.lower(_p.c.sku).like(pattern, escape="\\"),
                sa.func.lower(_p.c.id).like(pattern, escape="\\"),
            )
        )
    path = normalize_category(category) if category is not None else None
    if path is not None:
        lowered = sa.func.lower(_p.c.category)
        conditions.append(
            sa.or_(
                lowered == path.lower(),
                lowered.like(_escape_like(path) + " > %", escape="\\"),
            )
        )
    if brand is not None and brand.strip():
        conditions.append(sa.func.lower(_p.c.brand) == brand.strip().lower())
    if in_stock is True:
        conditions.append(sa.or_(_p.c.stock_quantity.is_(None), _p.c.stock_quantity > 0))
    elif in_stock is False:
        conditions.append(_p.c.stock_quantity == 0)
    where = sa.and_(*conditions)
    total = conn.execute(sa.select(sa.func.count()).select_from(_p).where(where)).scalar() or 0
    rows = conn.execute(
        sa.select(_p).where(where).order_by(_p.c.name, _p.c.id).limit(limit).offset(offset)
    ).all()
    return [_row_dict(row) for row in rows], int(total)


def catalog_events(
    conn: Connection,
    *,
    since_ms: int | None = None,
    after_id: int | None = None,
    type_: str | None = None,
    product_id: str | None = None,
    limit: int = 100,
) -> list[dict[str, Any]]:
    """Catalog events, oldest first. `after_id` is the cursor for readers that poll
    (journeys): events recorded in the same millisecond are not skipped."""
    ce = t.catalog_events
    query = sa.select(ce)
    if since_ms is not None:
        query = query.where(ce.c.at >= since_ms)
    if after_id is not None:
        query = query.where(ce.c.id > after_id)
    if type_ is not None:
        query = query.where(ce.c.type == type_)
    if product_id is not None:
        query = query.where(ce.c.product_id == product_id)
    rows = conn.execute(query.order_by(ce.c.id).limit(limit)).all()
    return [_event_out(row) for row in rows]


# -- one product with its numbers -----------------------------------------------------------------


def product_detail(conn: Connection, product_id: str, now_ms: int) -> dict[str, Any] | None:
    """One product for the admin: the catalog row (None while only events know the
    product), its numbers for the last 30 days (UTC days, today included) with a per-day
    series, and the profiles that viewed or bought it most recently. None when neither
    the catalog nor any event knows the id."""
    product = get_product(conn, product_id)
    today = now_ms // DAY_MS
    first_day = today - STATS_DAYS + 1
    daily, has_stats = activity.daily_stats(conn, product_id, first_day)
    if product is None and not has_stats:
        return None
    totals: dict[str, Any] = {
        "views": sum(day["views"] for day in daily),
        "cart_adds": sum(day["cart_adds"] for day in daily),
        "orders": sum(day["orders"] for day in daily),
        "units": round(sum(day["units"] for day in daily), 3),
        "revenue": round(sum(day["revenue"] for day in daily), 2),
    }
    since_ms = first_day * DAY_MS
    return {
        "product_id": product_id,
        "product": product,
        "stats": {"since": ms_to_iso(since_ms)[:10], "days": STATS_DAYS, **totals},
        "daily": daily,
        "recent_viewers": activity.recent_viewers(conn, product_id, since_ms),
        "recent_buyers": activity.recent_buyers(conn, product_id, since_ms),
    }
