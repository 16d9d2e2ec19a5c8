"""Computed attributes: each expected value below is worked out by hand from the events."""

from __future__ import annotations

import itertools
import json
from typing import Any

import pytest

from shopkeeper.profiles.model import EventView, ReducerConfig
from shopkeeper.profiles.reducers import ComputedReducer, public_view
from shopkeeper.timeutil import ms_to_iso, parse_iso_ms

T0 = parse_iso_ms("2026-03-02T09:00:00.000Z")
_ids = itertools.count()


def iso(minutes: float) -> str:
    return ms_to_iso(T0 + round(minutes * 60_000))


def ev(
    event: str | None = None,
    props: dict[str, Any] | None = None,
    *,
    type: str = "track",
    at: float = 0,
    context: dict[str, Any] | None = None,
    traits: dict[str, Any] | None = None,
    source: tuple[str, str] = ("web", "web"),
) -> EventView:
    """An event `at` minutes after T0."""
    ms = T0 + round(at * 60_000)
    return EventView(
        type=type,
        event=event,
        timestamp_ms=ms,
        timestamp=ms_to_iso(ms),
        message_id=f"m{next(_ids)}",
        source_name=source[0],
        source_kind=source[1],
        properties=props or {},
        traits=traits or {},
        context=context or {},
    )


def fold(*events: EventView, **config: Any) -> dict[str, Any]:
    return ComputedReducer(ReducerConfig(**config)).refold(events)


EUR = {"shop_currency": "USD", "exchange_rates": {"EUR": 1.1}}


# -- counters, times, sessions ----------------------------------------------------------


def test_counters_and_seen_times_cover_every_message_type() -> None:
    c = fold(
        ev("Home", type="page", at=5),
        ev("Signed In", at=2),
        ev(type="identify", at=9),
        ev("Settings", type="screen", at=1),
        ev(type="group", at=3),
        ev(type="alias", at=4),
    )
    assert c["events_count"] == 6
    assert c["page_views_count"] == 2
    assert c["track_count"] == 1
    assert c["first_seen_at"] == iso(1)
    assert c["last_seen_at"] == iso(9)
    assert c["orders_count"] == 0
    assert c["total_revenue"] == 0


def test_sessions_split_on_gaps_longer_than_the_timeout() -> None:
    c = fold(
        ev("Home", type="page", at=0),
        ev("A", at=10),
        ev("B", at=40),  # gap 30 min: not longer than the timeout, same session
        ev("C", at=71),  # gap 31 min: new session
        ev(type="identify", at=200),  # not activity
        ev("D", type="screen", at=230),  # gap 159 min since C: new session
    )
    assert c["sessions_count"] == 3


def test_identify_alone_starts_no_session() -> None:
    assert fold(ev(type="identify"), ev(type="group", at=90))["sessions_count"] == 0


def test_session_timeout_comes_from_config() -> None:
    events = [ev("A", at=0), ev("B", at=6), ev("C", at=11), ev("D", at=17)]  # gaps 6, 5, 6
    assert fold(*events, session_timeout_ms=5 * 60_000)["sessions_count"] == 3
    assert fold(*events)["sessions_count"] == 1


def test_late_activity_bridging_two_sessions_merges_them() -> None:
    reducer = ComputedReducer(ReducerConfig())
    c: dict[str, Any] = {}
    for e in (ev("A", at=0), ev("B", at=50)):
        reducer.apply(c, e)
    assert c["sessions_count"] == 2
    reducer.apply(c, ev("late", at=25))  # 25 min from both: they were one visit
    assert c["sessions_count"] == 1


def test_late_activity_far_from_others_is_its_own_session() -> None:
    reducer = ComputedReducer(ReducerConfig())
    c: dict[str, Any] = {}
    for e in (ev("A", at=100), ev("B", at=300), ev("old", at=0), ev("near B", at=280)):
        reducer.apply(c, e)
    assert c["sessions_count"] == 3


def test_bookkeeping_keys_are_hidden_from_the_public_view() -> None:
    c = fold(ev("Order Completed", {"order_id": "o1", "revenue": 5}), ev("x", at=1))
    view = public_view(c)
    assert "_orders" in c
    assert "_sessions" in c
    assert not [key for key in view if key.startswith("_")]
    assert view["orders_count"] == 1


# -- orders -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("props", "value"),
    [
        ({"revenue": 10, "total": 12, "subtotal": 9}, 10.0),
        ({"total": "12.50", "subtotal": 9}, 12.5),
        ({"subtotal": 9}, 9.0),
        ({"products": [{"price": 2.5, "quantity": 2}, {"price": "1.25"}]}, 6.25),
        ({"revenue": "abc", "total": 7}, 7.0),
        ({"revenue": -5, "subtotal": 7}, 7.0),
        ({"revenue": True, "total": None, "subtotal": 3}, 3.0),
        ({"products": "not a list"}, 0.0),
        ({}, 0.0),
    ],
)
def test_order_value_precedence(props: dict[str, Any], value: float) -> None:
    c = fold(ev("Order Completed", {"order_id": "o1", **props}))
    assert c["orders_count"] == 1
    assert c["total_revenue"] == value


def test_orders_in_other_currencies_are_converted_or_kept_apart() -> None:
    c = fold(
        ev("Order Completed", {"order_id": "e", "revenue": 100, "currency": "eur"}, at=1),
        ev("Order Completed", {"order_id": "j", "revenue": 1000, "currency": "JPY"}, at=2),
        ev("Order Completed", {"order_id": "u", "revenue": 50}, at=3),
        **EUR,
    )
    assert c["orders_count"] == 3
    assert c["total_revenue"] == 160.0  # 100 EUR * 1.1 + 50 USD
    assert c["revenue_unconverted"] == {"JPY": 1000.0}
    assert c["average_order_value"] == 80.0  # over the two orders with a USD value
    assert c["max_order_value"] == 110.0


def test_converted_money_is_rounded_to_cents() -> None:
    c = fold(ev("Order Completed", {"order_id": "o", "revenue": 19.99, "currency": "EUR"}), **EUR)
    assert c["total_revenue"] == 21.99  # 1999 * 1.1 = 2198.9 cents


def test_order_summary_attributes() -> None:
    c = fold(
        ev("Order Completed", {"order_id": "o1", "revenue": 30}, at=1),
        ev(
            "Order Completed",
            {"order_id": "o2", "total": 90, "currency": "EUR", "products": [{"id": 1}, {}]},
            at=5,
        ),
        ev("Order Completed", {"order_id": "o3", "revenue": 20}, at=3),
        **EUR,
    )
    assert c["orders_count"] == 3
    assert c["total_revenue"] == 149.0  # 30 + 99 + 20
    assert c["average_order_value"] == 49.67  # 149 / 3
    assert c["max_order_value"] == 99.0
    assert c["first_order_at"] == iso(1)
    assert c["last_order_at"] == iso(5)
    assert c["last_order"] == {
        "order_id": "o2",
        "revenue": 90.0,
        "currency": "EUR",
        "at": iso(5),
        "products_count": 2,
    }
    assert c["refunds_count"] == 0
    assert c["cancelled_count"] == 0
    assert "revenue_unconverted" not in c


def test_repeated_order_completed_is_an_update() -> None:
    c = fold(
        ev("Order Completed", {"order_id": "o1", "revenue": 100}, at=1),
        ev("Order Completed", {"order_id": "o1", "revenue": 130}, at=2),
    )
    assert c["orders_count"] == 1
    assert c["total_revenue"] == 130.0


def test_order_updated_replaces_the_value_unless_it_is_older() -> None:
    reducer = ComputedReducer(ReducerConfig())
    c: dict[str, Any] = {}
    reducer.apply(c, ev("Order Completed", {"order_id": "o1", "revenue": 100}, at=1))
    reducer.apply(c, ev("Order Updated", {"order_id": "o1", "revenue": 120}, at=5))
    assert (c["orders_count"], c["total_revenue"]) == (1, 120.0)
    reducer.apply(c, ev("Order Updated", {"order_id": "o1", "revenue": 80}, at=3))
    assert c["total_revenue"] == 120.0
    reducer.apply(c, ev("Order Updated", {"order_id": "o1", "status": "shipped"}, at=6))
    assert c["total_revenue"] == 120.0  # no value in it: the value stands


def test_order_updated_for_an_unknown_order_counts_nothing_until_completed() -> None:
    reducer = ComputedReducer(ReducerConfig())
    c: dict[str, Any] = {}
    reducer.apply(c, ev("Order Updated", {"order_id": "o1", "revenue": 70}, at=5))
    assert (c["orders_count"], c["total_revenue"]) == (0, 0)
    reducer.apply(c, ev("Order Completed", {"order_id": "o1", "revenue": 60}, at=1))
    assert (c["orders_count"], c["total_revenue"]) == (1, 70.0)  # the update is newer


def test_cancelled_orders_leave_counts_and_revenue() -> None:
    c = fold(
        ev("Order Completed", {"order_id": "o1", "revenue": 100}, at=1),
        ev("Order Completed", {"order_id": "o2", "revenue": 50}, at=2),
        ev("Order Cancelled", {"order_id": "o1"}, at=3),
        ev("Order Cancelled", {"order_id": "o1"}, at=4),
        ev("Order Completed", {"order_id": "o1", "revenue": 100}, at=5),
        ev("Order Cancelled", {"reason": "no id"}, at=6),
    )
    assert c["orders_count"] == 1
    assert c["total_revenue"] == 50.0
    assert c["cancelled_count"] == 1
    assert c["max_order_value"] == 50.0
    assert c["first_order_at"] == iso(2)
    assert c["last_order"]["order_id"] == "o2"


def test_cancelling_the_only_order_removes_the_order_times() -> None:
    c = fold(
        ev("Order Completed", {"order_id": "o1", "revenue": 10}, at=1),
        ev("Order Cancelled", {"order_id": "o1"}, at=2),
    )
    assert (c["orders_count"], c["total_revenue"], c["cancelled_count"]) == (0, 0, 1)
    for key in ("first_order_at", "last_order_at", "last_order", "average_order_value"):
        assert key not in c


def test_cancel_before_complete_still_cancels() -> None:
    c = fold(
        ev("Order Cancelled", {"order_id": "o1"}, at=2),
        ev("Order Completed", {"order_id": "o1", "revenue": 10}, at=1),
    )
    assert (c["orders_count"], c["total_revenue"], c["cancelled_count"]) == (0, 0, 1)


def test_refunds_subtract_but_never_below_zero_per_order() -> None:
    reducer = ComputedReducer(ReducerConfig())
    c: dict[str, Any] = {}
    reducer.apply(c, ev("Order Completed", {"order_id": "o1", "revenue": 100}, at=1))
    reducer.apply(c, ev("Order Completed", {"order_id": "o2", "revenue": 50}, at=2))
    reducer.apply(c, ev("Order Refunded", {"order_id": "o1", "value": 30}, at=3))
    assert c["total_revenue"] == 120.0
    assert c["refunded_revenue"] == 30.0
    assert c["refunds_count"] == 1
    reducer.apply(c, ev("Order Refunded", {"order_id": "o1", "revenue": "100"}, at=4))
    assert c["total_revenue"] == 50.0  # o1 is worth 0, not -30
    assert c["refunded_revenue"] == 100.0
    assert c["refunds_count"] == 2
    reducer.apply(c, ev("Order Refunded", {"order_id": "o2"}, at=5))  # no amount: all of it
    assert (c["total_revenue"], c["refunded_revenue"], c["refunds_count"]) == (0, 150.0, 3)
    assert c["orders_count"] == 2  # refunded orders are still orders
    assert c["average_order_value"] == 0
    assert c["max_order_value"] == 100.0


def test_partial_refund_from_refunded_products() -> None:
    c = fold(
        ev("Order Completed", {"order_id": "o1", "revenue": 100}, at=1),
        ev("Order Refunded", {"order_id": "o1", "products": [{"price": 15, "quantity": 2}]}, at=2),
    )
    assert c["total_revenue"] == 70.0


def test_refund_in_the_order_currency() -> None:
    c = fold(
        ev("Order Completed", {"order_id": "o1", "revenue": 100, "currency": "EUR"}, at=1),
        ev("Order Refunded", {"order_id": "o1", "value": 10}, at=2),
        **EUR,
    )
    assert c["total_revenue"] == 99.0  # (100 - 10) EUR * 1.1
    assert c["refunded_revenue"] == 11.0


def test_refund_arriving_before_its_order() -> None:
    c = fold(
        ev("Order Refunded", {"order_id": "o3", "total": 20}, at=9),
        ev("Order Completed", {"order_id": "o3", "revenue": 80}, at=1),
    )
    assert (c["orders_count"], c["total_revenue"], c["refunds_count"]) == (1, 60.0, 1)


def test_refund_without_order_id_is_counted_only() -> None:
    c = fold(
        ev("Order Completed", {"order_id": "o1", "revenue": 40}, at=1),
        ev("Order Refunded", {"value": 10}, at=2),
    )
    assert (c["total_revenue"], c["refunds_count"], c["refunded_revenue"]) == (40.0, 1, 0)


def test_refund_of_an_unconverted_order_reduces_the_unconverted_amount() -> None:
    c = fold(
        ev("Order Completed", {"order_id": "o1", "revenue": 1000, "currency": "JPY"}, at=1),
        ev("Order Refunded", {"order_id": "o1", "value": 400}, at=2),
    )
    assert c["revenue_unconverted"] == {"JPY": 600.0}
    assert c["total_revenue"] == 0


def test_orders_without_order_id_are_distinct() -> None:
    c = fold(
        ev("Order Completed", {"revenue": 10}, at=1),
        ev("Order Completed", {"revenue": 10}, at=2),
    )
    assert (c["orders_count"], c["total_revenue"]) == (2, 20.0)
    assert c["last_order"]["order_id"] is None


def test_orders_limit_drops_the_oldest_but_keeps_totals_whole() -> None:
    c = fold(
        ev("Order Completed", {"order_id": "o1", "revenue": 10}, at=1),
        ev("Order Completed", {"order_id": "o2", "revenue": 20, "currency": "JPY"}, at=2),
        ev("Order Completed", {"order_id": "o3", "revenue": 30}, at=3),
        ev("Order Completed", {"order_id": "o4", "revenue": 5}, at=4),
        orders_limit=2,
    )
    assert sorted(c["_orders"]) == ["o3", "o4"]
    assert c["orders_count"] == 4
    assert c["total_revenue"] == 45.0
    assert c["revenue_unconverted"] == {"JPY": 20.0}
    assert c["max_order_value"] == 30.0
    assert c["first_order_at"] == iso(1)
    assert c["average_order_value"] == 15.0  # 45 / 3 orders with a USD value


# -- cart and checkout ------------------------------------------------------------------


def test_cart_adds_merge_by_product_id() -> None:
    c = fold(
        ev("Product Added", {"product_id": "p1", "name": "Sock", "price": 10, "quantity": 2}),
        ev("Product Added", {"product_id": "p1", "quantity": "1", "cart_id": "c9"}, at=1),
        ev("Product Added", {"sku": "S2", "price": "5", "category": "Hats", "url": "/s2"}, at=2),
    )
    assert c["cart"] == [
        {"product_id": "p1", "name": "Sock", "price": 10.0, "quantity": 3},
        {"product_id": "S2", "sku": "S2", "category": "Hats", "url": "/s2", "price": 5.0,
         "quantity": 1},
    ]  # fmt: skip
    assert c["cart_value"] == 35.0
    assert c["cart_items_count"] == 4
    assert c["cart_id"] == "c9"
    assert c["cart_updated_at"] == iso(2)


def test_cart_item_keeps_every_spec_product_field() -> None:
    props = {
        "product_id": 507,
        "sku": "G-32",
        "name": "Monopoly",
        "category": "Games",
        "brand": "Hasbro",
        "variant": "200 pieces",
        "price": 18.99,
        "quantity": 1,
        "currency": "usd",
        "url": "https://shop/p/507",
        "image_url": "https://shop/p/507.jpg",
        "coupon": "ignored",
    }
    c = fold(ev("Product Added", props))
    assert c["cart"] == [
        {
            "product_id": "507",
            "sku": "G-32",
            "name": "Monopoly",
            "category": "Games",
            "brand": "Hasbro",
            "variant": "200 pieces",
            "price": 18.99,
            "quantity": 1,
            "currency": "USD",
            "url": "https://shop/p/507",
            "image_url": "https://shop/p/507.jpg",
        }
    ]


def test_product_removed_subtracts_or_drops_the_line() -> None:
    reducer = ComputedReducer(ReducerConfig())
    c: dict[str, Any] = {}
    reducer.apply(c, ev("Product Added", {"product_id": "p1", "price": 10, "quantity": 3}))
    reducer.apply(c, ev("Product Added", {"product_id": "p2", "price": 4}, at=1))
    reducer.apply(c, ev("Product Removed", {"product_id": "p1", "quantity": 1}, at=2))
    assert [(i["product_id"], i["quantity"]) for i in c["cart"]] == [("p1", 2), ("p2", 1)]
    assert (c["cart_value"], c["cart_items_count"]) == (24.0, 3)
    reducer.apply(c, ev("Product Removed", {"product_id": "p2"}, at=3))  # no quantity: all
    reducer.apply(c, ev("Product Removed", {"product_id": "p9"}, at=4))  # not in the cart
    assert [i["product_id"] for i in c["cart"]] == ["p1"]
    reducer.apply(c, ev("Product Removed", {"product_id": "p1", "quantity": 5}, at=5))
    assert (c["cart"], c["cart_value"], c["cart_items_count"]) == ([], 0, 0)


def test_negative_or_null_quantities_fall_back_to_defaults() -> None:
    c = fold(
        ev("Product Added", {"product_id": "p1", "quantity": -4}),  # add 1
        ev("Product Added", {"product_id": "p2", "quantity": None}, at=1),  # add 1
        ev("Product Added", {"product_id": "p2", "quantity": 2}, at=2),
        ev("Product Removed", {"product_id": "p2", "quantity": -1}, at=3),  # remove all
    )
    assert c["cart"] == [{"product_id": "p1", "quantity": 1}]


def test_fractional_quantities_do_not_leave_dust() -> None:
    c = fold(
        ev("Product Added", {"product_id": "cheese", "quantity": 0.3, "price": 20}),
        ev("Product Removed", {"product_id": "cheese", "quantity": 0.1}, at=1),
    )
    assert c["cart"][0]["quantity"] == 0.2
    assert c["cart_value"] == 4.0


def test_cart_snapshots_replace_the_cart() -> None:
    reducer = ComputedReducer(ReducerConfig())
    c: dict[str, Any] = {}
    reducer.apply(c, ev("Product Added", {"product_id": "p1", "price": 10}))
    snapshot = {"cart_id": "c1", "products": [{"product_id": "p9", "price": 3, "quantity": 2},
                                              {"product_id": "p8"}, {"name": "no id"}]}  # fmt: skip
    reducer.apply(c, ev("Cart Viewed", snapshot, at=1))
    assert c["cart"] == [
        {"product_id": "p9", "price": 3.0, "quantity": 2},
        {"product_id": "p8", "quantity": 1},
    ]
    assert (c["cart_value"], c["cart_items_count"], c["cart_id"]) == (6.0, 3, "c1")
    reducer.apply(c, ev("Checkout Started", {"products": [{"sku": "k", "price": 1}]}, at=2))
    assert c["cart"] == [{"product_id": "k", "sku": "k", "price": 1.0, "quantity": 1}]
    reducer.apply(c, ev("Cart Viewed", {"products": "broken"}, at=3))
    reducer.apply(c, ev("Cart Viewed", {}, at=4))
    assert [i["product_id"] for i in c["cart"]] == ["k"]
    reducer.apply(c, ev("Cart Viewed", {"products": []}, at=5))
    assert c["cart"] == []


def test_an_older_snapshot_does_not_undo_newer_adds() -> None:
    c = fold(
        ev("Product Added", {"product_id": "p1"}, at=10),
        ev("Cart Viewed", {"products": [{"product_id": "p2"}]}, at=5),
    )
    assert [i["product_id"] for i in c["cart"]] == ["p1"]


def test_order_completed_empties_the_cart_and_ends_the_checkout() -> None:
    c = fold(
        ev("Product Added", {"product_id": "p1", "price": 2, "cart_id": "c1"}),
        ev("Checkout Started", {"order_id": "o1"}, at=1),
        ev("Checkout Step Viewed", {"step": 2}, at=2),
        ev("Payment Info Entered", {"step": 3}, at=3),
        ev("Order Completed", {"order_id": "o1", "revenue": 2}, at=4),
    )
    assert (c["cart"], c["cart_value"], c["cart_items_count"]) == ([], 0, 0)
    assert "cart_id" not in c
    assert "checkout_started_at" not in c
    assert "last_checkout_step" not in c
    assert c["payment_info_entered_at"] == iso(3)


def test_an_older_order_does_not_clear_a_newer_checkout_or_cart() -> None:
    c = fold(
        ev("Product Added", {"product_id": "p1"}, at=10),
        ev("Checkout Started", {}, at=11),
        ev("Order Completed", {"order_id": "o0", "revenue": 1}, at=2),
    )
    assert c["checkout_started_at"] == iso(11)
    assert len(c["cart"]) == 1


def test_checkout_steps() -> None:
    c = fold(
        ev("Checkout Started", {"products": []}, at=1),
        ev("Checkout Step Viewed", {"step": 1}, at=2),
        ev("Checkout Step Completed", {"step": "2", "shipping_method": "Fedex"}, at=3),
        ev("Checkout Step Viewed", {"step": "x"}, at=2.5),  # older: ignored
    )
    assert c["checkout_started_at"] == iso(1)
    assert c["last_checkout_step"] == {
        "step": 2,
        "completed": True,
        "at": iso(3),
        "shipping_method": "Fedex",
    }


def test_cart_value_is_in_the_shop_currency() -> None:
    c = fold(
        ev("Product Added", {"product_id": "e", "price": 10, "currency": "EUR"}),
        ev("Product Added", {"product_id": "g", "price": 10, "currency": "GBP"}, at=1),
        ev("Product Added", {"product_id": "u", "price": 1.5, "quantity": 2}, at=2),
        **EUR,
    )
    assert c["cart_value"] == 14.0  # 11 (EUR) + 3; GBP has no rate
    assert c["cart_items_count"] == 4


def test_wishlist_product_added_to_cart_adds_like_product_added() -> None:
    c = fold(
        ev("Product Added to Wishlist", {"product_id": "p1", "price": 5}),
        ev("Wishlist Product Added to Cart", {"product_id": "p1", "price": 5}, at=1),
    )
    assert c["cart"] == [{"product_id": "p1", "price": 5.0, "quantity": 1}]
    assert [i["product_id"] for i in c["wishlist"]] == ["p1"]


# -- wishlist, browsing, search ---------------------------------------------------------


def test_wishlist_adds_once_and_removes() -> None:
    reducer = ComputedReducer(ReducerConfig())
    c: dict[str, Any] = {}
    reducer.apply(c, ev("Product Added to Wishlist", {"product_id": "p1", "name": "A"}, at=1))
    reducer.apply(c, ev("Product Added to Wishlist", {"product_id": "p2", "quantity": 3}, at=2))
    reducer.apply(c, ev("Product Added to Wishlist", {"product_id": "p1", "name": "A2"}, at=3))
    assert c["wishlist"] == [
        {"product_id": "p1", "name": "A2", "added_at": iso(1)},
        {"product_id": "p2", "added_at": iso(2)},
    ]
    reducer.apply(c, ev("Product Removed from Wishlist", {"product_id": "p1"}, at=0))  # older
    assert len(c["wishlist"]) == 2
    reducer.apply(c, ev("Product Removed from Wishlist", {"product_id": "p1"}, at=4))
    assert [i["product_id"] for i in c["wishlist"]] == ["p2"]


def test_viewed_products_and_categories() -> None:
    c = fold(
        ev("Product Viewed", {"product_id": "p1", "name": "Boot", "category": "Shoes"}, at=1),
        ev("Product Viewed", {"product_id": "p2", "category": "Hats", "price": "20"}, at=2),
        ev("Product Viewed", {"product_id": "p1", "name": "Boot v2", "category": "Shoes"}, at=3),
        ev("Product Viewed", {"name": "no id", "category": "Shoes"}, at=4),
        ev("Product List Viewed", {"list_id": "l", "category": "Bags"}, at=5),
    )
    assert c["product_views_count"] == 4
    assert c["viewed_products"] == {
        "p1": {"product_id": "p1", "count": 2, "last_at": iso(3), "name": "Boot v2",
               "category": "Shoes"},
        "p2": {"product_id": "p2", "count": 1, "last_at": iso(2), "category": "Hats",
               "price": 20.0},
    }  # fmt: skip
    assert c["viewed_categories"] == {
        "Shoes": {"count": 2, "last_at": iso(3)},
        "Hats": {"count": 1, "last_at": iso(2)},
        "Bags": {"count": 1, "last_at": iso(5)},
    }


def test_recent_lists_keep_the_most_recent() -> None:
    c = fold(
        ev("Product Viewed", {"product_id": "a", "category": "A"}, at=1),
        ev("Product Viewed", {"product_id": "b", "category": "B"}, at=2),
        ev("Product Viewed", {"product_id": "a", "category": "A"}, at=3),
        ev("Product Viewed", {"product_id": "c", "category": "C"}, at=4),
        ev("Products Searched", {"query": "x"}, at=5),
        ev("Products Searched", {"query": "y"}, at=6),
        ev("Products Searched", {"query": "z"}, at=7),
        ev("Products Searched", {"query": "x"}, at=8),
        recent_limit=2,
    )
    assert sorted(c["viewed_products"]) == ["a", "c"]
    assert sorted(c["viewed_categories"]) == ["A", "C"]
    assert c["recent_searches"] == [{"query": "x", "at": iso(8)}, {"query": "z", "at": iso(7)}]


def test_search_and_filters() -> None:
    c = fold(
        ev("Products Searched", {"query": " red boots "}, at=1),
        ev("Products Searched", {"query": 42}, at=2),
        ev("Products Searched", {}, at=3),
        ev(
            "Product List Filtered",
            {
                "category": "Shoes",
                "filters": [
                    {"type": "size", "value": "M"},
                    {"type": "price", "value": 50},
                    "junk",
                    {"value": "no type"},
                ],
                "sorts": [{"type": "price", "value": "desc"}],
            },
            at=4,
        ),
    )
    assert c["searches_count"] == 3
    assert c["last_search"] == {"query": "42", "at": iso(2)}
    assert c["recent_searches"] == [
        {"query": "42", "at": iso(2)},
        {"query": "red boots", "at": iso(1)},
    ]
    assert c["last_filters"] == {
        "filters": [{"type": "size", "value": "M"}, {"type": "price", "value": 50}],
        "sorts": [{"type": "price", "value": "desc"}],
        "category": "Shoes",
        "at": iso(4),
    }


def test_favorite_category_weights_views_carts_and_purchases() -> None:
    reducer = ComputedReducer(ReducerConfig())
    c: dict[str, Any] = {}
    for minute in range(4):  # Shoes: 4 views = 4
        reducer.apply(c, ev("Product Viewed", {"product_id": "s", "category": "Shoes"}, at=minute))
    reducer.apply(c, ev("Product Added", {"product_id": "h", "category": "Hats"}, at=5))  # 3
    assert c["favorite_category"] == "Shoes"
    order = {"order_id": "o", "revenue": 1, "products": [{"product_id": "h", "category": "Hats"}]}
    reducer.apply(c, ev("Order Completed", order, at=6))  # Hats: 3 + 5 = 8
    assert c["favorite_category"] == "Hats"
    reducer.apply(c, ev("Order Completed", order, at=7))  # same order again: no new score
    for minute in range(8, 12):  # Shoes: 8, tie with Hats; the more recent wins
        reducer.apply(c, ev("Product Viewed", {"product_id": "s", "category": "Shoes"}, at=minute))
    assert c["favorite_category"] == "Shoes"


def test_purchases_score_the_latest_version_of_an_order() -> None:
    hats = {"order_id": "o", "products": [{"category": "Hats"}, {"category": "Hats"}]}
    bags = {"order_id": "o", "products": [{"category": "Bags"}]}
    c = fold(
        ev("Product Viewed", {"product_id": "s", "category": "Shoes"}, at=0),  # Shoes 1
        ev("Order Completed", hats, at=1),  # Hats 10 (two lines)
        ev("Order Updated", bags, at=2),  # now Bags 5, Hats 0
        ev("Order Cancelled", {"order_id": "o"}, at=3),  # cancelled lines still count
    )
    assert c["favorite_category"] == "Bags"
    c = fold(ev("Product Viewed", {"product_id": "s", "category": "Shoes"}, at=0))
    assert c["favorite_category"] == "Shoes"


def test_coupons() -> None:
    c = fold(
        ev("Coupon Entered", {"coupon_id": "SPRING"}, at=1),
        ev("Coupon Applied", {"coupon_id": "SPRING", "discount": 5}, at=2),
        ev("Coupon Denied", {"coupon_id": "BOGUS", "reason": "expired"}, at=3),
        ev("Order Completed", {"order_id": "o", "coupon": "VIP"}, at=4),
        ev("Coupon Applied", {"coupon_name": "SPRING"}, at=5),
        ev("Coupon Applied", {}, at=6),
    )
    assert c["coupons_applied"] == ["SPRING", "VIP"]
    assert c["last_coupon"] == {"code": "SPRING", "status": "applied", "at": iso(5)}


def test_coupon_discount_is_kept_when_valid() -> None:
    c = fold(ev("Coupon Applied", {"coupon_id": "A", "discount": "2.5"}))
    assert c["last_coupon"] == {"code": "A", "status": "applied", "at": iso(0), "discount": 2.5}


def test_reviews_clicks_and_shares() -> None:
    c = fold(
        ev("Product Reviewed", {"product_id": "p1", "rating": 5}, at=1),
        ev("Product Reviewed", {"product_id": "p2", "rating": "4.5"}, at=2),
        ev("Product Reviewed", {"product_id": "p3", "rating": "great"}, at=0),
        ev("Product Clicked", {"product_id": "p1"}, at=3),
        ev("Product Shared", {"product_id": "p1", "share_via": "email"}, at=4),
    )
    assert c["reviews_count"] == 3
    assert c["last_review"] == {"product_id": "p2", "rating": 4.5, "at": iso(2)}
    assert c["product_clicks_count"] == 1
    assert c["shares_count"] == 1


# -- context ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("context", "country"),
    [
        ({"location": {"country": "no"}}, "NO"),
        ({"location": {"country": "United States"}}, "US"),
        ({"location": {"country": "Deutschland"}}, "DE"),
        ({"location": {"country": "Atlantis"}, "locale": "nb-NO"}, "NO"),
        ({"locale": "zh-Hant-TW"}, "TW"),
        ({"locale": "en_GB"}, "GB"),
        ({"locale": "es-419"}, None),
        ({"location": {"country": "SE"}, "locale": "en-US"}, "SE"),
        ({"location": "Oslo"}, None),
    ],
)
def test_country(context: dict[str, Any], country: str | None) -> None:
    assert fold(ev("x", context=context)).get("country") == country


def test_geo_country_beats_a_newer_locale() -> None:
    c = fold(
        ev("x", context={"location": {"country": "NO", "city": "Oslo"}}, at=1),
        ev("y", context={"locale": "en-US"}, at=2),
    )
    assert (c["country"], c["city"], c["locale"]) == ("NO", "Oslo", "en-US")


def test_latest_context_values_win_by_event_time() -> None:
    c = fold(
        ev("new", context={"locale": "de-DE", "timezone": "Europe/Berlin"}, at=5),
        ev("old", context={"locale": "fr-FR", "timezone": "Europe/Paris"}, at=1),
        ev(type="identify", context={"location": {"city": "Bergen"}}, at=2),
    )
    assert (c["locale"], c["timezone"], c["country"], c["city"]) == (
        "de-DE",
        "Europe/Berlin",
        "DE",
        "Bergen",
    )


IPHONE = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605 Mobile/15E148"
IPAD = "Mozilla/5.0 (iPad; CPU OS 16_6 like Mac OS X) AppleWebKit/605.1.15 Mobile/15E148"
ANDROID_PHONE = "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 Mobile Safari/537.36"
ANDROID_TABLET = "Mozilla/5.0 (Linux; Android 13; SM-X200) AppleWebKit/537.36 Safari/537.36"
WINDOWS = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 Chrome/124 Safari/537.36"


@pytest.mark.parametrize(
    ("context", "device"),
    [
        ({"device": {"type": "ios", "model": "iPhone15,2"}}, "mobile"),
        ({"device": {"type": "ios", "model": "iPad13,4"}}, "tablet"),
        ({"device": {"type": "android"}}, "mobile"),
        ({"device": {"type": "Tablet"}}, "tablet"),
        ({"device": {"type": "weird"}, "userAgent": WINDOWS}, "desktop"),
        ({"userAgent": IPHONE}, "mobile"),
        ({"userAgent": IPAD}, "tablet"),
        ({"userAgent": ANDROID_PHONE}, "mobile"),
        ({"userAgent": ANDROID_TABLET}, "tablet"),
        ({"userAgent": WINDOWS}, "desktop"),
        ({"userAgentData": {"mobile": True}, "userAgent": WINDOWS}, "mobile"),
        ({"userAgent": 12}, None),
        ({}, None),
    ],
)
def test_device_type(context: dict[str, Any], device: str | None) -> None:
    assert fold(ev("x", context=context)).get("last_device_type") == device


def test_device_types_are_sorted_and_distinct() -> None:
    c = fold(
        ev("a", context={"userAgent": WINDOWS}, at=1),
        ev("b", context={"userAgent": IPHONE}, at=2),
        ev("c", context={"userAgent": WINDOWS}, at=3),
        ev("d", context={"userAgent": IPAD}, at=0),
    )
    assert c["device_types"] == ["desktop", "mobile", "tablet"]
    assert c["last_device_type"] == "desktop"


def test_sources() -> None:
    c = fold(
        ev("a", source=("Web shop", "web"), at=2),
        ev("b", source=("POS import", "pos"), at=1),
        ev("c", source=("iOS app", "app"), at=3),
        ev("d", source=("", ""), at=9),
    )
    assert c["first_source"] == {"name": "POS import", "kind": "pos"}
    assert c["last_source"] == {"name": "iOS app", "kind": "app"}
    assert c["source_kinds"] == ["app", "pos", "web"]


# -- bad input --------------------------------------------------------------------------

GARBAGE: list[Any] = [None, "abc", "", "nan", "inf", "1e400", -1, True, [], {}, [1], {"a": 1},
                      10**400, float("nan"), float("inf"), "12.50", 3.7, "💥" * 500]  # fmt: skip
EVENTS = [
    "Product Viewed", "Product Added", "Product Removed", "Cart Viewed", "Checkout Started",
    "Checkout Step Viewed", "Checkout Step Completed", "Payment Info Entered", "Order Completed",
    "Order Updated", "Order Cancelled", "Order Refunded", "Product Added to Wishlist",
    "Product Removed from Wishlist", "Wishlist Product Added to Cart", "Products Searched",
    "Product List Viewed", "Product List Filtered", "Coupon Applied", "Coupon Entered",
    "Coupon Denied", "Coupon Removed", "Product Reviewed", "Product Clicked", "Product Shared",
]  # fmt: skip
FIELDS = [
    "product_id", "sku", "id", "name", "category", "price", "quantity", "currency", "revenue",
    "total", "subtotal", "value", "order_id", "products", "query", "filters", "sorts", "coupon",
    "coupon_id", "discount", "rating", "step", "cart_id", "url",
]  # fmt: skip


@pytest.mark.parametrize("event", EVENTS)
@pytest.mark.parametrize("garbage", GARBAGE, ids=repr)
def test_ill_typed_values_are_ignored_not_fatal(event: str, garbage: Any) -> None:
    reducer = ComputedReducer(ReducerConfig(exchange_rates={"EUR": 1.1}))
    c: dict[str, Any] = {}
    reducer.apply(c, ev("Product Added", {"product_id": "p", "price": 1, "quantity": 2}))
    reducer.apply(c, ev("Order Completed", {"order_id": "o", "revenue": 10}, at=1))
    props = {field: garbage for field in FIELDS}
    reducer.apply(c, ev(event, props, at=2, context={"location": garbage, "locale": garbage}))
    reducer.apply(c, ev(event, {"products": [garbage, {"product_id": garbage}]}, at=3))
    json.dumps(c, allow_nan=False)  # still storable: no NaN, no infinity, no odd types
    assert c["events_count"] == 4
    assert c["total_revenue"] >= 0
