"""The catalog's products as the customer pages need them (names and pictures for ids
that events and carts carry), through the catalog's service functions."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy.engine import Connection


def products(conn: Connection, ids: Iterable[str]) -> dict[str, dict[str, Any]]:
    """product id -> catalog product, for the ids the catalog knows."""
    wanted = sorted({str(i) for i in ids if i})
    if not wanted:
        return {}
    from shopkeeper.catalog.service import products_by_ids

    return products_by_ids(conn, wanted)
