"""Shopping attributes: cart, wishlist, browsing, searches, coupons, reviews, checkout.

Each handler takes (computed, event, settings) and mutates `computed` in place. Lists
that are shown newest first are kept sorted by event time, not arrival, and every cap
breaks ties on the key, so the result never depends on dict order (JSONB does not keep
it) and barely on arrival order.
"""

from __future__ import annotations

from typing import Any

from shopkeeper.profiles.model import EventView
from shopkeeper.profiles.values import (
    ID_LIMIT,
    NAME_LIMIT,
    Handler,
    Settings,
    as_number,
    as_scalar,
    as_text,
    cap_by_recency,
    line_cents,
    product_id_of,
    read_product,
    read_products,
    set_latest,
    tidy_quantity,
)

# favorite_category weights: a purchase says more than a cart add, which says more than a
# look. Purchases count per product line of an order's latest version, not per unit, so
# one bulk order of socks does not outweigh months of browsing.
VIEW_WEIGHT = 1
CART_WEIGHT = 3
PURCHASE_WEIGHT = 5

# Bounds against runaway senders; real carts and wishlists stay far below.
MAX_CART_ITEMS = 200
MAX_WISHLIST_ITEMS = 200
_MAX_FILTERS = 20


# -- cart -------------------------------------------------------------------------------


def _cart_totals(c: dict[str, Any], s: Settings, at: str) -> None:
    value = 0
    count: int | float = 0
    for item in c["cart"]:
        count += item["quantity"]
        cents = line_cents(item)
        if cents is not None:
            # Lines in a currency without a rate cannot be added up honestly; skip them.
            value += s.to_shop(cents, item.get("currency")) or 0
    c["cart_value"] = value / 100
    c["cart_items_count"] = count
    if at > c.get("cart_updated_at", ""):
        c["cart_updated_at"] = at


def _set_cart_id(c: dict[str, Any], props: dict[str, Any]) -> None:
    cart_id = as_text(props.get("cart_id"), ID_LIMIT)
    if cart_id is not None:
        c["cart_id"] = cart_id


def _add_to_cart(c: dict[str, Any], product: dict[str, Any]) -> bool:
    cart: list[dict[str, Any]] = c.setdefault("cart", [])
    quantity = product.pop("quantity", 1)
    for item in cart:
        if item["product_id"] == product["product_id"]:
            item.update(product)
            item["quantity"] = tidy_quantity(item["quantity"] + quantity)
            return True
    if len(cart) >= MAX_CART_ITEMS:
        return False
    product["quantity"] = quantity
    cart.append(product)
    return True


def product_added(c: dict[str, Any], ev: EventView, s: Settings) -> None:
    """Product Added and Wishlist Product Added to Cart: add to the cart line."""
    product = read_product(ev.properties)
    _set_cart_id(c, ev.properties)
    if product is None:
        return
    category = product.get("category")
    if _add_to_cart(c, product):
        _cart_totals(c, s, ev.timestamp)
    if category:
        add_category_score(c, category, CART_WEIGHT, ev.timestamp, s)


def product_removed(c: dict[str, Any], ev: EventView, s: Settings) -> None:
    product = read_product(ev.properties)
    cart = c.get("cart")
    if product is None or not cart:
        return
    for index, item in enumerate(cart):
        if item["product_id"] == product["product_id"]:
            # No (valid) quantity means the whole line went.
            remaining = item["quantity"] - product.get("quantity", item["quantity"])
            if remaining <= 0:
                del cart[index]
            else:
                item["quantity"] = tidy_quantity(remaining)
            _cart_totals(c, s, ev.timestamp)
            return


def replace_cart(c: dict[str, Any], ev: EventView, s: Settings) -> None:
    """Cart Viewed / Checkout Started: a `products` array is the whole cart right now.

    A snapshot older than the cart's last change would undo newer adds, so it is skipped.
    """
    if ev.timestamp < c.get("cart_updated_at", ""):
        return
    _set_cart_id(c, ev.properties)
    products = ev.properties.get("products")
    if not isinstance(products, list):
        return
    c["cart"] = []
    for product in read_products(products):
        _add_to_cart(c, product)
    _cart_totals(c, s, ev.timestamp)


def empty_cart(c: dict[str, Any], ev: EventView, s: Settings) -> None:
    if ev.timestamp < c.get("cart_updated_at", ""):
        return
    c["cart"] = []
    c.pop("cart_id", None)
    _cart_totals(c, s, ev.timestamp)


# -- wishlist ---------------------------------------------------------------------------


def wishlist_added(c: dict[str, Any], ev: EventView, s: Settings) -> None:
    product = read_product(ev.properties)
    if product is None:
        return
    product.pop("quantity", None)
    wishlist: list[dict[str, Any]] = c.setdefault("wishlist", [])
    for item in wishlist:
        if item["product_id"] == product["product_id"]:
            item.update(product)
            item["added_at"] = min(item["added_at"], ev.timestamp)
            return
    product["added_at"] = ev.timestamp
    wishlist.append(product)
    if len(wishlist) > MAX_WISHLIST_ITEMS:
        oldest = min(wishlist, key=lambda item: (item["added_at"], item["product_id"]))
        wishlist.remove(oldest)


def wishlist_removed(c: dict[str, Any], ev: EventView, s: Settings) -> None:
    product = read_product(ev.properties)
    wishlist = c.get("wishlist")
    if product is None or not wishlist:
        return
    for index, item in enumerate(wishlist):
        # A removal older than the add is about an earlier stint on the list.
        if item["product_id"] == product["product_id"] and ev.timestamp >= item["added_at"]:
            del wishlist[index]
            return


# -- browsing ---------------------------------------------------------------------------


def _category_rank(c: dict[str, Any], category: str) -> tuple[int, str, str]:
    """(score, last time, name): the favourite is the largest, so ties go to the more
    recent, then to the name, and the pick never depends on dict order."""
    looked = c.get("_category_scores", {}).get(category)
    bought = c.get("_purchase_scores", {}).get(category)
    score = (looked[0] if looked else 0) + (bought[0] if bought else 0)
    at = max(looked[1] if looked else "", bought[1] if bought else "")
    return (score, at, category)


def refresh_favorite(c: dict[str, Any]) -> None:
    """Recompute favorite_category from scratch (after order events, which can lower a
    score; views and cart adds only raise one)."""
    categories = {*c.get("_category_scores", {}), *c.get("_purchase_scores", {})}
    if categories:
        c["favorite_category"] = max(categories, key=lambda k: _category_rank(c, k))
    else:
        c.pop("favorite_category", None)


def add_category_score(c: dict[str, Any], category: str, weight: int, at: str, s: Settings) -> None:
    """Raise a category's look-and-cart score and keep `favorite_category` on the best.

    Purchases are scored from the order ledger instead (orders.py), so that an order
    re-sent with other products counts as its latest version. Only this category's score
    grew, so comparing it with the current favourite is enough.
    """
    scores: dict[str, list[Any]] = c.setdefault("_category_scores", {})
    entry = scores.get(category)
    if entry is None:
        entry = scores[category] = [0, at]
    entry[0] += weight
    entry[1] = max(entry[1], at)
    limit = max(s.config.recent_limit, 1)
    if len(scores) > limit:
        while len(scores) > limit:
            weakest = min(scores, key=lambda k: (scores[k][0], scores[k][1], k))
            del scores[weakest]
        refresh_favorite(c)
        return
    favorite = c.get("favorite_category")
    if favorite is None or _category_rank(c, category) > _category_rank(c, favorite):
        c["favorite_category"] = category


def _view_category(c: dict[str, Any], category: str, at: str, s: Settings) -> None:
    categories: dict[str, dict[str, Any]] = c.setdefault("viewed_categories", {})
    entry = categories.get(category)
    if entry is None:
        categories[category] = {"count": 1, "last_at": at}
        cap_by_recency(categories, s.config.recent_limit, "last_at")
    else:
        entry["count"] += 1
        if at > entry["last_at"]:
            entry["last_at"] = at
    add_category_score(c, category, VIEW_WEIGHT, at, s)


_VIEWED_FIELDS = ("name", "category", "brand", "price", "currency", "url", "image_url")


def product_viewed(c: dict[str, Any], ev: EventView, s: Settings) -> None:
    c["product_views_count"] = c.get("product_views_count", 0) + 1
    product = read_product(ev.properties)
    if product is None:
        return
    at = ev.timestamp
    viewed: dict[str, dict[str, Any]] = c.setdefault("viewed_products", {})
    pid = product["product_id"]
    entry = viewed.get(pid)
    if entry is None:
        entry = viewed[pid] = {"product_id": pid, "count": 0, "last_at": at}
    count = entry["count"] + 1
    if at >= entry["last_at"]:
        # The product as its latest view showed it; merging fields from several views
        # would depend on the order late events arrive in.
        entry = viewed[pid] = {"product_id": pid, "count": count, "last_at": at}
        for key in _VIEWED_FIELDS:
            if key in product:
                entry[key] = product[key]
    else:
        entry["count"] = count
    if len(viewed) > s.config.recent_limit:
        cap_by_recency(viewed, s.config.recent_limit, "last_at")
    category = product.get("category")
    if category:
        _view_category(c, category, at, s)


def product_list_viewed(c: dict[str, Any], ev: EventView, s: Settings) -> None:
    category = as_text(ev.properties.get("category"))
    if category:
        _view_category(c, category, ev.timestamp, s)


def product_clicked(c: dict[str, Any], ev: EventView, s: Settings) -> None:
    c["product_clicks_count"] = c.get("product_clicks_count", 0) + 1


def product_shared(c: dict[str, Any], ev: EventView, s: Settings) -> None:
    c["shares_count"] = c.get("shares_count", 0) + 1


def products_searched(c: dict[str, Any], ev: EventView, s: Settings) -> None:
    c["searches_count"] = c.get("searches_count", 0) + 1
    query = as_text(ev.properties.get("query"))
    if query is None:
        return
    at = ev.timestamp
    set_latest(c, "last_search", {"query": query, "at": at}, at)
    recent: list[dict[str, Any]] = c.setdefault("recent_searches", [])
    for item in recent:
        if item["query"] == query:
            item["at"] = max(item["at"], at)
            break
    else:
        recent.append({"query": query, "at": at})
    recent.sort(key=lambda item: (item["at"], item["query"]), reverse=True)
    del recent[max(s.config.recent_limit, 0) :]


def _pairs(value: object) -> list[dict[str, Any]]:
    """Spec filters and sorts: a list of {type, value}; other shapes are dropped."""
    if not isinstance(value, list):
        return []
    pairs = []
    for item in value[:_MAX_FILTERS]:
        if isinstance(item, dict):
            kind = as_text(item.get("type"), ID_LIMIT)
            if kind is not None:
                pairs.append({"type": kind, "value": as_scalar(item.get("value"))})
    return pairs


def product_list_filtered(c: dict[str, Any], ev: EventView, s: Settings) -> None:
    props = ev.properties
    filters: dict[str, Any] = {
        "filters": _pairs(props.get("filters")),
        "sorts": _pairs(props.get("sorts")),
    }
    category = as_text(props.get("category"))
    if category is not None:
        filters["category"] = category
    set_latest(c, "last_filters", {**filters, "at": ev.timestamp}, ev.timestamp)


# -- coupons, reviews, checkout ---------------------------------------------------------


def coupon_code(props: dict[str, Any]) -> str | None:
    """The code a customer typed: `coupon` (orders, carts), else coupon_id, else name."""
    for key in ("coupon", "coupon_id", "coupon_name"):
        code = as_text(props.get(key), ID_LIMIT)
        if code is not None:
            return code
    return None


def remember_coupon(c: dict[str, Any], code: str, at: str, s: Settings) -> None:
    times: dict[str, str] = c.setdefault("_coupon_times", {})
    times[code] = max(times.get(code, at), at)
    limit = max(s.config.recent_limit, 0)
    while len(times) > limit:
        del times[min(times, key=lambda k: (times[k], k))]
    c["coupons_applied"] = sorted(times, key=lambda k: (times[k], k), reverse=True)


def _coupon_event(status: str) -> Handler:
    def handle(c: dict[str, Any], ev: EventView, s: Settings) -> None:
        code = coupon_code(ev.properties)
        if code is None:
            return
        last: dict[str, Any] = {"code": code, "status": status, "at": ev.timestamp}
        discount = as_number(ev.properties.get("discount"))
        if discount is not None and discount >= 0:
            last["discount"] = round(discount, 2)
        set_latest(c, "last_coupon", last, ev.timestamp)
        if status == "applied":
            remember_coupon(c, code, ev.timestamp, s)

    return handle


coupon_applied = _coupon_event("applied")
coupon_entered = _coupon_event("entered")
coupon_denied = _coupon_event("denied")
coupon_removed = _coupon_event("removed")


def product_reviewed(c: dict[str, Any], ev: EventView, s: Settings) -> None:
    c["reviews_count"] = c.get("reviews_count", 0) + 1
    review: dict[str, Any] = {}
    product_id = product_id_of(ev.properties)
    if product_id is not None:
        review["product_id"] = product_id
    rating = as_number(ev.properties.get("rating"))
    if rating is not None:
        review["rating"] = rating if not rating.is_integer() else int(rating)
    review["at"] = ev.timestamp
    set_latest(c, "last_review", review, ev.timestamp)


def checkout_started(c: dict[str, Any], ev: EventView, s: Settings) -> None:
    set_latest(c, "checkout_started_at", ev.timestamp, ev.timestamp)
    replace_cart(c, ev, s)


def _checkout_step(completed: bool) -> Handler:
    def handle(c: dict[str, Any], ev: EventView, s: Settings) -> None:
        step: dict[str, Any] = {"completed": completed, "at": ev.timestamp}
        number = as_number(ev.properties.get("step"))
        if number is not None and number.is_integer():
            step["step"] = int(number)
        for key in ("shipping_method", "payment_method"):
            text = as_text(ev.properties.get(key), NAME_LIMIT)
            if text is not None:
                step[key] = text
        set_latest(c, "last_checkout_step", step, ev.timestamp)

    return handle


checkout_step_viewed = _checkout_step(False)
checkout_step_completed = _checkout_step(True)


def payment_info_entered(c: dict[str, Any], ev: EventView, s: Settings) -> None:
    set_latest(c, "payment_info_entered_at", ev.timestamp, ev.timestamp)


def after_order(c: dict[str, Any], ev: EventView, s: Settings) -> None:
    """What a completed order does to the shopping state: the cart and the checkout are
    done, and its coupon was used."""
    empty_cart(c, ev, s)
    set_latest(c, "checkout_started_at", None, ev.timestamp)
    set_latest(c, "last_checkout_step", None, ev.timestamp)
    code = as_text(ev.properties.get("coupon"), ID_LIMIT)
    if code is not None:
        remember_coupon(c, code, ev.timestamp, s)
