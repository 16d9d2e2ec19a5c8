"""Per-product daily numbers (views, cart adds, orders, units, revenue), kept by the
pipeline from the events it applies.

A step of the batch transaction (a BatchHook): the counts commit with the events'
`applied` marks, so an event is counted exactly once even when a batch is retried or
replayed event by event. Events naming a product the catalog does not know count all the
same: the numbers are keyed by the product id and joined to the product when it arrives.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection

from shopkeeper.catalog.activity import DAY_MS
from shopkeeper.config import Settings
from shopkeeper.pipeline.processor import BatchChanges
from shopkeeper.profiles.model import EventView, ReducerConfig
from shopkeeper.profiles.values import Settings as MoneySettings
from shopkeeper.profiles.values import (
    as_currency,
    line_cents,
    product_id_of,
    read_products,
)
from shopkeeper.storage import tables as t

VIEW_EVENTS = frozenset({"Product Viewed"})
CART_EVENTS = frozenset({"Product Added", "Wishlist Product Added to Cart"})
ORDER_EVENTS = frozenset({"Order Completed"})


@dataclass(slots=True)
class DayStats:
    views: int = 0
    cart_adds: int = 0
    orders: int = 0
    units: float = 0.0
    # Shop-currency cents: sums of integers are exact.
    revenue_cents: int = 0


def tally(events: Iterable[EventView], money: MoneySettings) -> dict[tuple[str, int], DayStats]:
    """The increments a run of events makes, per (product id, UTC day of the event).

    Order Completed: each product of the order counts one order (once, however many
    lines name it), its quantities as units (1 when a line has none) and price x
    quantity as revenue, converted from the order's currency with the configured rates;
    amounts in a currency without a rate are left out of revenue rather than summed at a
    wrong rate."""
    out: dict[tuple[str, int], DayStats] = {}

    def slot(pid: str, ev: EventView) -> DayStats:
        key = (pid, ev.timestamp_ms // DAY_MS)
        found = out.get(key)
        if found is None:
            found = out[key] = DayStats()
        return found

    for ev in events:
        if ev.type != "track" or ev.event is None:
            continue
        name = ev.event
        if name in VIEW_EVENTS or name in CART_EVENTS:
            pid = product_id_of(ev.properties)
            if pid is None:
                continue
            stats = slot(pid, ev)
            if name in VIEW_EVENTS:
                stats.views += 1
            else:
                stats.cart_adds += 1
        elif name in ORDER_EVENTS:
            currency = as_currency(ev.properties.get("currency"))
            counted: set[str] = set()
            for line in read_products(ev.properties.get("products")):
                pid = line["product_id"]
                stats = slot(pid, ev)
                if pid not in counted:
                    stats.orders += 1
                    counted.add(pid)
                stats.units += line.get("quantity", 1)
                cents = line_cents(line)
                if cents is not None:
                    shop_cents = money.to_shop(cents, currency)
                    if shop_cents is not None:
                        stats.revenue_cents += shop_cents
    return out


class ProductStatsHook:
    """Adds each batch's increments to `product_stats`, one upsert row per (product,
    day) that the batch touched."""

    def __init__(self, shop_currency: str, exchange_rates: Mapping[str, float]) -> None:
        self.money = MoneySettings(
            ReducerConfig(shop_currency=shop_currency, exchange_rates=dict(exchange_rates))
        )

    @classmethod
    def from_settings(cls, settings: Settings) -> ProductStatsHook:
        return cls(settings.shop_currency, settings.exchange_rates)

    def after_batch(self, conn: Connection, changes: BatchChanges, now_ms: int) -> None:
        increments = tally((applied.event for applied in changes.applied), self.money)
        if not increments:
            return
        rows = [
            {
                "product_id": pid,
                "day": day,
                "views": s.views,
                "cart_adds": s.cart_adds,
                "orders": s.orders,
                "units": float(s.units),
                "revenue": s.revenue_cents / 100,
            }
            # Sorted so that two workers touching the same rows lock them in one order.
            for (pid, day), s in sorted(increments.items())
        ]
        ps = t.product_stats
        insert: Any = (sqlite.insert if conn.dialect.name == "sqlite" else postgresql.insert)(ps)
        excluded = insert.excluded
        stmt = insert.on_conflict_do_update(
            index_elements=[ps.c.product_id, ps.c.day],
            set_={
                "views": ps.c.views + excluded.views,
                "cart_adds": ps.c.cart_adds + excluded.cart_adds,
                "orders": ps.c.orders + excluded.orders,
                "units": ps.c.units + excluded.units,
                "revenue": ps.c.revenue + excluded.revenue,
            },
        )
        conn.execute(stmt, rows)
