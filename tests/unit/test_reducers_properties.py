"""Properties of the computed-attribute reducers over random e-commerce histories."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from shopkeeper.profiles.model import EventView, ReducerConfig
from shopkeeper.profiles.reducers import ComputedReducer, public_view
from shopkeeper.timeutil import ms_to_iso, parse_iso_ms

T0 = parse_iso_ms("2026-01-01T00:00:00.000Z")
CONFIG = ReducerConfig(exchange_rates={"EUR": 1.1})
REDUCER = ComputedReducer(CONFIG)

money = st.one_of(
    st.integers(0, 500),
    st.floats(0, 500, allow_nan=False).map(lambda x: round(x, 2)),
    st.sampled_from(["12.50", "abc", None, -3, True, ""]),
)
product = st.fixed_dictionaries(
    {"product_id": st.sampled_from(["p1", "p2", "p3", "p4"])},
    optional={
        "price": money,
        "quantity": st.one_of(st.integers(-2, 4), st.none(), st.just("2")),
        "category": st.sampled_from(["Shoes", "Hats", "Bags"]),
        "name": st.sampled_from(["A", "B"]),
        "currency": st.sampled_from(["USD", "EUR", "JPY"]),
    },
)
order = st.fixed_dictionaries(
    {},
    optional={
        "order_id": st.sampled_from(["o1", "o2", "o3", "o4"]),
        "revenue": money,
        "total": money,
        "value": money,
        "currency": st.sampled_from(["USD", "EUR", "JPY"]),
        "products": st.lists(product, max_size=3),
        "coupon": st.sampled_from(["A", "B"]),
    },
)
PRODUCT_EVENTS = [
    "Product Viewed", "Product Added", "Product Removed", "Product Added to Wishlist",
    "Product Removed from Wishlist", "Wishlist Product Added to Cart", "Product Clicked",
    "Product Shared", "Product Reviewed",
]  # fmt: skip
ORDER_EVENTS = ["Order Completed", "Order Updated", "Order Cancelled", "Order Refunded"]
CONTEXTS = [
    {},
    {"locale": "nb-NO", "userAgent": "Mozilla/5.0 (iPhone) Mobile"},
    {"location": {"country": "Sweden", "city": "Lund"}, "timezone": "Europe/Stockholm"},
    {"device": {"type": "android"}, "locale": "de-DE"},
]
message = st.one_of(
    st.tuples(st.just("track"), st.sampled_from(PRODUCT_EVENTS), product),
    st.tuples(st.just("track"), st.sampled_from(ORDER_EVENTS), order),
    st.tuples(
        st.just("track"),
        st.sampled_from(["Cart Viewed", "Checkout Started"]),
        st.fixed_dictionaries({"products": st.lists(product, max_size=3)}),
    ),
    st.tuples(
        st.just("track"),
        st.sampled_from(
            ["Checkout Step Viewed", "Checkout Step Completed", "Payment Info Entered"]
        ),
        st.fixed_dictionaries({"step": st.integers(1, 4)}),
    ),
    st.tuples(
        st.just("track"),
        st.just("Products Searched"),
        st.fixed_dictionaries({"query": st.sampled_from(["boots", "hat", ""])}),
    ),
    st.tuples(
        st.just("track"),
        st.sampled_from(["Coupon Applied", "Coupon Entered", "Coupon Denied"]),
        st.fixed_dictionaries({"coupon_id": st.sampled_from(["A", "B", "C"])}),
    ),
    st.tuples(
        st.just("track"),
        st.sampled_from(["Product List Viewed", "Product List Filtered"]),
        st.fixed_dictionaries(
            {"category": st.sampled_from(["Shoes", "Hats"])},
            optional={"filters": st.just([{"type": "size", "value": "M"}])},
        ),
    ),
    st.tuples(st.sampled_from(["page", "screen", "identify", "group"]), st.none(), st.just({})),
)


@st.composite
def histories(
    draw: st.DrawFn, prefix: str = "m", max_size: int = 25, distinct_times: bool = False
) -> list[EventView]:
    """Events in increasing time order (gaps of 0 to 3 hours, so sessions both continue
    and split; ties only when `distinct_times` is false)."""
    messages = draw(st.lists(message, max_size=max_size))
    gap = st.integers(1 if distinct_times else 0, 3 * 3600 * 1000)
    ms = T0 + draw(st.integers(0, 3600 * 1000))
    events = []
    for index, (kind, name, props) in enumerate(messages):
        ms += draw(gap)
        events.append(
            EventView(
                type=kind,
                event=name,
                timestamp_ms=ms,
                timestamp=ms_to_iso(ms),
                message_id=f"{prefix}{index}",
                source_name=draw(st.sampled_from(["web", "app"])),
                source_kind=draw(st.sampled_from(["web", "app"])),
                properties=props,
                context=draw(st.sampled_from(CONTEXTS)),
            )
        )
    return events


def as_stored(value: Any) -> Any:
    """What comes back from a JSON column: JSONB does not keep key order, so reverse it."""

    def reorder(item: Any) -> Any:
        if isinstance(item, dict):
            return {key: reorder(item[key]) for key in reversed(list(item))}
        if isinstance(item, list):
            return [reorder(x) for x in item]
        return item

    return reorder(json.loads(json.dumps(value, allow_nan=False)))


def merge(a: list[EventView], b: list[EventView]) -> list[EventView]:
    """Both histories by timestamp, then arrival (a before b), as a merge refolds them."""
    return sorted(a + b, key=lambda e: e.timestamp_ms)


@settings(max_examples=300, deadline=None)
@given(histories())
def test_refold_equals_applying_one_by_one_through_storage(events: list[EventView]) -> None:
    incremental: dict[str, Any] = {}
    for event in events:
        incremental = as_stored(incremental)
        REDUCER.apply(incremental, event)
    assert incremental == REDUCER.refold(events)
    assert as_stored(incremental) == incremental  # only JSON types, no NaN


def distinct_completed_orders(events: list[EventView]) -> int:
    completed: set[str] = set()
    cancelled: set[str] = set()
    anonymous = 0
    for e in events:
        order_id = e.properties.get("order_id")
        if e.event == "Order Completed":
            if order_id is None:
                anonymous += 1
            else:
                completed.add(order_id)
        elif e.event == "Order Cancelled" and order_id is not None:
            cancelled.add(order_id)
    return len(completed - cancelled) + anonymous


@settings(max_examples=300, deadline=None)
@given(histories("a"), histories("b"))
def test_merged_histories_count_nothing_twice(a: list[EventView], b: list[EventView]) -> None:
    merged = REDUCER.refold(merge(a, b))
    assert merged.get("events_count", 0) == len(a) + len(b)
    assert merged.get("orders_count", 0) == distinct_completed_orders(a + b)
    activity = [e for e in a + b if e.type in ("track", "page", "screen")]
    assert merged.get("track_count", 0) + merged.get("page_views_count", 0) == len(activity)
    refunds = sum(e.event == "Order Refunded" for e in a + b)
    assert merged.get("refunds_count", 0) == refunds


completed_only = st.lists(
    st.tuples(
        st.sampled_from(["o1", "o2", "o3", None]),
        st.integers(0, 100_000),  # cents
        st.booleans(),  # cancelled afterwards
    ),
    max_size=20,
)


@settings(max_examples=300, deadline=None)
@given(completed_only)
def test_total_revenue_is_the_latest_value_of_each_live_order(
    orders: list[tuple[str | None, int, bool]],
) -> None:
    events: list[EventView] = []
    expected: dict[str, int] = {}
    cancelled: set[str] = set()
    for index, (order_id, cents, cancel) in enumerate(orders):
        ms = T0 + index * 1000
        props: dict[str, Any] = {"revenue": f"{cents // 100}.{cents % 100:02d}"}
        if order_id is not None:
            props["order_id"] = order_id
        key = order_id or f"anonymous {index}"
        expected[key] = cents
        events.append(
            EventView("track", "Order Completed", ms, ms_to_iso(ms), f"c{index}", properties=props)
        )
        if cancel and order_id is not None:
            cancelled.add(order_id)
            events.append(
                EventView("track", "Order Cancelled", ms + 1, ms_to_iso(ms + 1), f"x{index}",
                          properties={"order_id": order_id})
            )  # fmt: skip
    computed = REDUCER.refold(events)
    live = {k: v for k, v in expected.items() if k not in cancelled}
    assert computed.get("orders_count", 0) == len(live)
    assert computed.get("total_revenue", 0) == sum(live.values()) / 100
    assert computed.get("cancelled_count", 0) == len(cancelled)


# Attributes that follow arrival order by design (a cart is a sequence of edits).
ARRIVAL_ORDERED = {"cart", "cart_value", "cart_items_count", "cart_updated_at", "cart_id",
                   "wishlist", "sessions_count"}  # fmt: skip


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_late_arrivals_end_where_a_refold_in_time_order_ends(data: st.DataObject) -> None:
    events = data.draw(histories(distinct_times=True))
    arrival = data.draw(st.permutations(events))
    in_order = REDUCER.refold(events)
    as_arrived = REDUCER.refold(arrival)
    left = {k: v for k, v in public_view(in_order).items() if k not in ARRIVAL_ORDERED}
    right = {k: v for k, v in public_view(as_arrived).items() if k not in ARRIVAL_ORDERED}
    assert left == right
    activity = [e for e in events if e.type in ("track", "page", "screen")]
    if len(activity) <= 16:  # never more sessions than the reducer keeps to place late ones
        assert in_order.get("sessions_count") == as_arrived.get("sessions_count")
