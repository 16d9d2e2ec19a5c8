"""Computed attributes of a profile, maintained one event at a time.

`ComputedReducer.apply(computed, event)` updates a profile's `computed` dict in place;
`refold(events)` rebuilds it from a history (a merged profile is refolded from both
histories sorted by timestamp, then arrival). Pure: no database, no HTTP, no clock.

Attributes (times are ISO-8601 UTC strings, money is in the shop currency with two
decimals unless said otherwise; "absent" means no event has set it yet):

==========================  ============================================================
attribute                   meaning and JSON shape
==========================  ============================================================
events_count                int: every message (track, page, screen, identify, group,
                            alias) ever applied.
first_seen_at last_seen_at  str: earliest / latest message timestamp.
sessions_count              int: visits. A new session starts at the first activity and
                            whenever the gap since the previous activity (track, page,
                            screen; identify/group/alias are not activity) exceeds
                            config.session_timeout_ms.
page_views_count            int: page and screen messages.
track_count                 int: track messages.
orders_count                int: distinct completed orders, minus cancelled ones. A
                            repeated Order Completed with a known order_id is an update;
                            orders without order_id are each counted.
total_revenue               float: value of those orders net of refunds. Value =
                            `revenue`, else `total`, else `subtotal`, else sum of the
                            products' price * quantity; converted with
                            config.exchange_rates when the order's `currency` is not
                            the shop currency (no currency = shop currency).
revenue_unconverted         {currency: float}: net value of orders in currencies without
                            a rate (counted in orders_count, not in total_revenue).
average_order_value         float: total_revenue / orders with a shop-currency value
                            (unconverted orders would drag it down). Absent without one.
max_order_value             float: largest order value (before refunds).
first_order_at              str: earliest / latest completed order that still counts.
last_order_at
last_order                  {order_id: str|null, revenue: float (in `currency`),
                            currency: str, at: str, products_count: int}.
refunds_count               int: Order Refunded events.
refunded_revenue            float: amount refunded from counted orders; a refund's
                            amount is its revenue/total/value, else its products, else
                            the whole order; never more than the order's value.
cancelled_count             int: orders cancelled (Order Cancelled with an order_id).
cart                        [{product_id, sku, name, category, brand, variant, price,
                            quantity, currency, url, image_url}] (fields absent when
                            never sent). Product Added adds (quantity default 1);
                            Product Removed subtracts (default: the whole line); Cart
                            Viewed / Checkout Started with `products` replace it; Order
                            Completed empties it. Items need a product_id (or sku/id).
cart_value                  float: sum of price * quantity (lines in currencies without
                            a rate are left out).
cart_items_count            int|float: sum of quantities.
cart_updated_at             str: last change; older snapshots/clears are ignored.
cart_id                     str: the spec's cart_id, when sent; dropped on order.
checkout_started_at         str: last Checkout Started; cleared by a later order.
last_checkout_step          {step?: int, completed: bool, at, shipping_method?,
                            payment_method?}; cleared by a later order.
payment_info_entered_at     str: last Payment Info Entered.
product_views_count         int: Product Viewed events.
viewed_products             {product_id: {product_id, count, last_at, name?, category?,
                            brand?, price?, currency?, url?, image_url?}}: the
                            config.recent_limit most recently viewed products.
viewed_categories           {category: {count, last_at}}: categories of viewed products
                            and of viewed product lists, capped likewise.
favorite_category           str: highest score, views 1, cart adds 3, purchased product
                            lines 5 (see shopping.py for why); a cancelled order's lines
                            still count. Ties: the more recent category.
wishlist                    [{product fields..., added_at}] (Product Added to / Removed
                            from Wishlist; Wishlist Product Added to Cart leaves it).
searches_count              int: Products Searched events.
last_search                 {query, at}.
recent_searches             [{query, at}], newest first, distinct, recent_limit long.
last_filters                {filters: [{type, value}], sorts: [{type, value}],
                            category?, at} from Product List Filtered.
coupons_applied             [str]: distinct codes from Coupon Applied and orders'
                            `coupon`, newest first, recent_limit long.
last_coupon                 {code, status: applied|entered|denied|removed, at,
                            discount?} from the Coupon events.
reviews_count               int: Product Reviewed events.
last_review                 {product_id?, rating?, at}.
product_clicks_count        int: Product Clicked events.
shares_count                int: Product Shared events.
country                     str: ISO 3166 alpha-2 from context.location.country (code or
                            name), else the region of the latest context.locale.
city locale timezone        str: latest context.location.city / context.locale /
                            context.timezone.
device_types                [str]: sorted distinct of mobile, tablet, desktop, from
                            context.device.type, else userAgentData.mobile, else the
                            userAgent.
last_device_type            str.
first_source last_source    {name, kind}: the source of the earliest / latest message.
source_kinds                [str]: sorted distinct source kinds.
==========================  ============================================================

Keys starting with "_" are bookkeeping (session intervals, the order ledger, per-
attribute write times, category scores); they must be stored but not shown.

"Latest" always means latest by event timestamp, not by arrival: `_at` keeps when each
such attribute was written, so a late event from an offline phone cannot overwrite newer
values. Counters and the order totals do not depend on arrival order at all; the cart,
session splits near the bounds and capped lists may differ slightly from a refold.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from shopkeeper.profiles import orders, shopping
from shopkeeper.profiles.context_attrs import apply_context
from shopkeeper.profiles.model import EventView, ReducerConfig
from shopkeeper.profiles.values import Handler, Settings

# Sessions kept for placing late events; older ones are only a count.
_SESSIONS_KEPT = 16


def _order_completed(c: dict[str, Any], ev: EventView, s: Settings) -> None:
    orders.order_completed(c, ev, s)
    shopping.after_order(c, ev, s)
    shopping.refresh_favorite(c)


def _rescoring(handler: Handler) -> Handler:
    """Order events can change purchase scores, so the favourite category is re-picked."""

    def handle(c: dict[str, Any], ev: EventView, s: Settings) -> None:
        handler(c, ev, s)
        shopping.refresh_favorite(c)

    return handle


_TRACK_HANDLERS: dict[str, Handler] = {
    "Product Viewed": shopping.product_viewed,
    "Product Clicked": shopping.product_clicked,
    "Product Shared": shopping.product_shared,
    "Product Added": shopping.product_added,
    "Product Removed": shopping.product_removed,
    "Cart Viewed": shopping.replace_cart,
    "Checkout Started": shopping.checkout_started,
    "Checkout Step Viewed": shopping.checkout_step_viewed,
    "Checkout Step Completed": shopping.checkout_step_completed,
    "Payment Info Entered": shopping.payment_info_entered,
    "Order Completed": _order_completed,
    "Order Updated": _rescoring(orders.order_updated),
    "Order Cancelled": _rescoring(orders.order_cancelled),
    "Order Refunded": _rescoring(orders.order_refunded),
    "Product Added to Wishlist": shopping.wishlist_added,
    "Product Removed from Wishlist": shopping.wishlist_removed,
    "Wishlist Product Added to Cart": shopping.product_added,
    "Products Searched": shopping.products_searched,
    "Product List Viewed": shopping.product_list_viewed,
    "Product List Filtered": shopping.product_list_filtered,
    "Coupon Entered": shopping.coupon_entered,
    "Coupon Applied": shopping.coupon_applied,
    "Coupon Denied": shopping.coupon_denied,
    "Coupon Removed": shopping.coupon_removed,
    "Product Reviewed": shopping.product_reviewed,
}

TRACKED_EVENTS = frozenset(_TRACK_HANDLERS)
"""The e-commerce event names that change attributes beyond the counters."""

HIDDEN_PREFIX = "_"


def public_view(computed: dict[str, Any]) -> dict[str, Any]:
    """The attributes to show (API, UI, segments): everything but bookkeeping keys."""
    return {k: v for k, v in computed.items() if not k.startswith(HIDDEN_PREFIX)}


def _touch_session(c: dict[str, Any], t: int, timeout: int) -> None:
    sessions: list[list[int]] | None = c.get("_sessions")
    if not sessions:
        c["_sessions"] = [[t, t]]
        c["sessions_count"] += 1
        return
    last = sessions[-1]
    if t >= last[1]:
        if t - last[1] > timeout:
            sessions.append([t, t])
            c["sessions_count"] += 1
            del sessions[:-_SESSIONS_KEPT]
        else:
            last[1] = t
        return
    _place_late_activity(c, sessions, t, timeout)


def _place_late_activity(
    c: dict[str, Any], sessions: list[list[int]], t: int, timeout: int
) -> None:
    """Put an activity older than the latest one into the session it belongs to.

    Sessions are [start, end] intervals in time order, separated by gaps longer than the
    timeout, so the split of a set of activities into sessions does not depend on the
    order they arrive in. A late activity can extend a session, bridge two (one session
    fewer), or start its own.
    """
    index = next(i for i, (_, end) in enumerate(sessions) if t <= end + timeout)
    session = sessions[index]
    if t < session[0] - timeout:
        sessions.insert(index, [t, t])
        c["sessions_count"] += 1
        del sessions[:-_SESSIONS_KEPT]
        return
    session[0] = min(session[0], t)
    if t > session[1]:
        session[1] = t
        following = index + 1
        if following < len(sessions) and sessions[following][0] - t <= timeout:
            session[1] = sessions[following][1]
            del sessions[following]
            c["sessions_count"] -= 1


def _start(c: dict[str, Any], ev: EventView) -> None:
    c.update(
        events_count=0,
        first_seen_at=ev.timestamp,
        last_seen_at=ev.timestamp,
        sessions_count=0,
        page_views_count=0,
        track_count=0,
        orders_count=0,
        total_revenue=0.0,
    )


class ComputedReducer:
    """Applies events to a profile's computed attributes (see the module docstring)."""

    __slots__ = ("_settings", "_timeout", "config")

    def __init__(self, config: ReducerConfig) -> None:
        self.config = config
        self._settings = Settings(config)
        self._timeout = max(config.session_timeout_ms, 0)

    def apply(self, computed: dict[str, Any], ev: EventView) -> None:
        """Fold one event into `computed` (a JSON-ready dict), in place.

        Deterministic: the result depends only on `computed`, `ev` and the config, so a
        refold of the same events in the same order gives the same dict. Never raises on
        odd property values; they are ignored.
        """
        c = computed
        if "events_count" not in c:
            _start(c, ev)
        c["events_count"] += 1
        at = ev.timestamp
        if at < c["first_seen_at"]:
            c["first_seen_at"] = at
        if at > c["last_seen_at"]:
            c["last_seen_at"] = at
        kind = ev.type
        if kind == "track":
            c["track_count"] += 1
            _touch_session(c, ev.timestamp_ms, self._timeout)
            handler = _TRACK_HANDLERS.get(ev.event or "")
            if handler is not None:
                handler(c, ev, self._settings)
        elif kind == "page" or kind == "screen":
            c["page_views_count"] += 1
            _touch_session(c, ev.timestamp_ms, self._timeout)
        apply_context(c, ev)

    def refold(self, events: Iterable[EventView]) -> dict[str, Any]:
        """The attributes of a history: `apply` of each event, in the given order."""
        computed: dict[str, Any] = {}
        for ev in events:
            self.apply(computed, ev)
        return computed
