"""Dashboard numbers: customers, events per minute, sales by day, conversion.

Read-side queries over the event log and the profiles, on SQLite and PostgreSQL alike.
Days are UTC days. `now_ms` is passed in; nothing here reads a clock.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from shopkeeper.profiles.values import as_cents, as_currency, products_cents
from shopkeeper.storage import tables as t
from shopkeeper.timeutil import ms_to_iso

MINUTE_MS = 60_000
DAY_MS = 86_400_000


@dataclass(frozen=True, slots=True)
class CustomerSummary:
    known: int  # profiles holding a user id, an email or a phone
    anonymous: int
    active: int  # seen (any event) in the window
    buyers: int  # of those, with a completed order in the window

    @property
    def total(self) -> int:
        return self.known + self.anonymous

    @property
    def conversion(self) -> float | None:
        return self.buyers / self.active if self.active else None


def customer_summary(conn: Connection, now_ms: int, days: int = 30) -> CustomerSummary:
    """One pass over the live profiles. "Active" and "buyers" use the profiles' computed
    last_seen_at and last_order_at (ISO strings, which compare in time order as text): a
    person whose latest order falls in the window ordered in the window."""
    since = ms_to_iso(now_ms - days * DAY_MS)
    computed = t.profiles.c.computed
    last_seen = computed["last_seen_at"].as_string()
    last_order = computed["last_order_at"].as_string()
    rows = conn.execute(
        sa.select(
            t.profiles.c.is_known,
            sa.func.count(),
            sa.func.sum(sa.case((last_seen >= since, 1), else_=0)),
            sa.func.sum(sa.case((last_order >= since, 1), else_=0)),
        )
        .where(t.profiles.c.merged_into.is_(None))
        .group_by(t.profiles.c.is_known)
    ).all()
    known = anonymous = active = buyers = 0
    for is_known, count, seen, bought in rows:
        if is_known:
            known += int(count)
        else:
            anonymous += int(count)
        active += int(seen or 0)
        buyers += int(bought or 0)
    return CustomerSummary(known, anonymous, active, buyers)


def events_per_minute(conn: Connection, now_ms: int, minutes: int = 60) -> list[int]:
    """Events received in each of the last `minutes` minutes, oldest first; the last
    entry is the minute in progress. Uses the received_at index, so it stays cheap."""
    current = now_ms // MINUTE_MS
    first = current - minutes + 1
    bucket = (t.events.c.received_at // MINUTE_MS).label("minute")
    rows = conn.execute(
        sa.select(bucket, sa.func.count())
        .where(t.events.c.received_at >= first * MINUTE_MS)
        .group_by(bucket)
    ).all()
    counts = [0] * minutes
    for minute, count in rows:
        index = int(minute) - first
        if 0 <= index < minutes:
            counts[index] = int(count)
    return counts


@dataclass(frozen=True, slots=True)
class DaySales:
    day_ms: int  # midnight UTC
    orders: int
    revenue: float  # in the shop currency


@dataclass(frozen=True, slots=True)
class SalesReport:
    days: list[DaySales]
    currency: str
    # Orders in currencies without an exchange rate: counted, but not in the revenue.
    unconverted_orders: int

    @property
    def orders(self) -> int:
        return sum(d.orders for d in self.days)

    @property
    def revenue(self) -> float:
        return round(sum(d.revenue for d in self.days), 2)

    @property
    def average_order(self) -> float | None:
        priced = self.orders - self.unconverted_orders
        return round(self.revenue / priced, 2) if priced > 0 else None


def order_value_cents(props: Mapping[str, Any]) -> int | None:
    """An order's value per the e-commerce spec, as the profile reducers read it:
    revenue, else total, else subtotal, else the products' price * quantity."""
    for key in ("revenue", "total", "subtotal"):
        cents = as_cents(props.get(key))
        if cents is not None:
            return cents
    return products_cents(props.get("products"))


def sales_by_day(
    conn: Connection,
    now_ms: int,
    *,
    days: int = 30,
    shop_currency: str = "USD",
    rates: Mapping[str, float] | None = None,
) -> SalesReport:
    """Completed orders and their value per day for the last `days` days (today
    included), by the day the order was placed. An order sent twice (the same order_id)
    counts once, on its first day, with the value of its newest event. Gross: refunds and
    cancellations are not subtracted here (the customer view shows them per person)."""
    shop = as_currency(shop_currency) or "USD"
    rate_of = {**{k.upper(): float(v) for k, v in (rates or {}).items()}, shop: 1.0}
    first_day = now_ms // DAY_MS - days + 1
    rows = conn.execute(
        sa.select(t.events.c.timestamp, t.events.c.message_id, t.events.c.payload["properties"])
        .where(
            t.events.c.type == "track",
            t.events.c.event == "Order Completed",
            t.events.c.status == t.APPLIED,
            t.events.c.timestamp >= first_day * DAY_MS,
            t.events.c.timestamp <= now_ms,
        )
        .order_by(t.events.c.timestamp, t.events.c.seq)
    ).all()
    # order key -> [first timestamp, value in shop cents or None, converted?]
    orders: dict[str, list[Any]] = {}
    for timestamp, message_id, props in rows:
        props = props if isinstance(props, dict) else {}
        order_id = props.get("order_id")
        key = f"o:{order_id}" if isinstance(order_id, str | int) and order_id != "" else message_id
        cents = order_value_cents(props)
        currency = as_currency(props.get("currency")) or shop
        rate = rate_of.get(currency)
        entry = orders.setdefault(key, [int(timestamp), None, True])
        if cents is not None:  # rows come oldest first: the newest value wins
            entry[1] = round(cents * rate) if rate is not None else None
            entry[2] = rate is not None
    per_day: dict[int, list[float]] = {}
    unconverted = 0
    for first_ts, cents, converted in orders.values():
        bucket = per_day.setdefault(first_ts // DAY_MS, [0, 0.0])
        bucket[0] += 1
        if not converted:
            unconverted += 1
        elif cents is not None:
            bucket[1] += cents / 100
    report = [
        DaySales(
            day * DAY_MS,
            int(per_day.get(day, [0, 0.0])[0]),
            round(per_day.get(day, [0, 0.0])[1], 2),
        )
        for day in range(first_day, first_day + days)
    ]
    return SalesReport(report, shop, unconverted)
