"""A customer's events told as visits: grouping by session and one line per event.

Pure: takes the timeline rows of profiles/view.py (newest first) and the catalog's
products, returns what the page shows.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from shopkeeper.profiles.context_attrs import device_type
from shopkeeper.web import format as fmt


@dataclass
class Visit:
    """Events with no gap longer than the session timeout between them, newest first."""

    events: list[dict[str, Any]] = field(default_factory=list)
    start_ms: int = 0
    end_ms: int = 0

    @property
    def sources(self) -> list[str]:
        return sorted({e["source"] for e in self.events if e.get("source")})

    @property
    def devices(self) -> list[str]:
        found = {device_type(e.get("context") or {}) for e in self.events}
        return sorted(d for d in found if d)


def group_visits(events: Sequence[dict[str, Any]], gap_ms: int) -> list[Visit]:
    """Split newest-first events into visits: a gap longer than `gap_ms` between two
    consecutive events starts a new one."""
    visits: list[Visit] = []
    for event in events:
        at = fmt.to_ms(event.get("timestamp")) or 0
        current = visits[-1] if visits else None
        if current is None or current.start_ms - at > gap_ms:
            current = Visit(start_ms=at, end_ms=at)
            visits.append(current)
        current.events.append(event)
        current.start_ms = min(current.start_ms, at)
    return visits


@dataclass(frozen=True)
class EventLine:
    kind: str  # a CSS class: view, cart, order, search, page, identify, other
    title: str
    fields: list[tuple[str, str]]


def product_ids(events: Sequence[dict[str, Any]]) -> set[str]:
    ids: set[str] = set()
    for event in events:
        props = event.get("properties") or {}
        for item in [props, *(props.get("products") or [])]:
            if isinstance(item, dict):
                pid = item.get("product_id") or item.get("sku")
                if isinstance(pid, str | int) and not isinstance(pid, bool):
                    ids.add(str(pid))
    return ids


def _product_name(item: Mapping[str, Any], products: Mapping[str, Mapping[str, Any]]) -> str:
    pid = item.get("product_id") or item.get("sku")
    known = products.get(str(pid)) if pid is not None else None
    if known and known.get("name"):
        return str(known["name"])
    if isinstance(item.get("name"), str) and item["name"].strip():
        return str(item["name"])
    return f"product {pid}" if pid is not None else "a product"


def _amount(props: Mapping[str, Any], currency: str) -> str | None:
    for key in ("revenue", "total", "value", "subtotal", "price"):
        value = props.get(key)
        if isinstance(value, str):
            try:
                value = float(value)
            except ValueError:
                continue
        if fmt._finite(value) is not None:
            code = props.get("currency") if isinstance(props.get("currency"), str) else currency
            return fmt.money(value, code)
    return None


# Event properties that hold money (Segment's e-commerce spec), shown as money.
_MONEY_FIELDS = frozenset(
    {"price", "revenue", "total", "subtotal", "value", "discount", "shipping", "tax"}
)


# Details in this order, then the rest by name: the same on both databases (PostgreSQL's
# JSONB does not keep the order the sender used).
_FIRST = ("order_id", "email", "phone", "firstName", "lastName", "name", "product_id", "sku",
          "category", "brand", "variant", "query", "price", "quantity", "revenue", "total",
          "subtotal", "currency", "products")  # fmt: skip


def _order(key: str) -> tuple[int, str]:
    return (_FIRST.index(key), "") if key in _FIRST else (len(_FIRST), key)


def _fields(
    payload: Mapping[str, Any], skip: set[str], currency: str | None = None
) -> list[tuple[str, str]]:
    code = payload.get("currency") if isinstance(payload.get("currency"), str) else currency
    out = []
    for key in sorted(payload, key=_order):
        value = payload[key]
        if key in skip or value in (None, "", [], {}):
            continue
        if key in _MONEY_FIELDS and fmt._finite(value) is not None:
            out.append((fmt.label(key), fmt.money(value, code)))
            continue
        if key == "products" and isinstance(value, list):
            names = [
                f"{item.get('quantity', 1)} \u00d7 {item.get('name') or item.get('product_id')}"
                for item in value
                if isinstance(item, dict)
            ]
            out.append(("Products", ", ".join(names) or fmt.DASH))
            continue
        out.append((fmt.label(str(key)), fmt.plain(value, 200)))
    return out[:30]


_NAMED: dict[str, tuple[str, str]] = {
    # event name: (kind, title with {product})
    "Product Viewed": ("view", "Viewed {product}"),
    "Product Clicked": ("view", "Clicked {product}"),
    "Product Added": ("cart", "Added {product} to the cart"),
    "Product Removed": ("cart", "Removed {product} from the cart"),
    "Product Added to Wishlist": ("cart", "Added {product} to the wishlist"),
    "Product Removed from Wishlist": ("cart", "Removed {product} from the wishlist"),
    "Wishlist Product Added to Cart": ("cart", "Moved {product} from the wishlist to the cart"),
    "Product Shared": ("view", "Shared {product}"),
    "Product Reviewed": ("view", "Reviewed {product}"),
}


def describe(
    event: Mapping[str, Any], products: Mapping[str, Mapping[str, Any]], currency: str
) -> EventLine:
    kind = event.get("type")
    name = event.get("event") or ""
    props: Mapping[str, Any] = event.get("properties") or {}
    fields = _fields(props, set(), currency)
    if kind == "identify":
        traits: Mapping[str, Any] = event.get("traits") or {}
        shared = ", ".join(fmt.label(str(k)).lower() for k in sorted(traits, key=_order)[:8])
        who = event.get("user_id") or traits.get("email")
        title = f"Identified as {who}" if who else "Shared their details"
        if shared:
            title += f" ({shared})"
        return EventLine("identify", title, _fields(traits, set()))
    if kind in ("page", "screen"):
        where = name or props.get("title") or props.get("path") or props.get("url") or "a page"
        verb = "Opened screen" if kind == "screen" else "Visited"
        return EventLine("page", f"{verb} {where}", fields)
    if kind == "alias":
        return EventLine("identify", "Linked a previous ID to this customer", fields)
    if kind == "group":
        return EventLine("identify", "Joined a group or company", _fields(event, {"context"}))
    if name in _NAMED:
        css, template = _NAMED[name]
        return EventLine(css, template.format(product=_product_name(props, products)), fields)
    amount = _amount(props, currency)
    order = props.get("order_id")
    order_text = f" {order}" if isinstance(order, str | int) and not isinstance(order, bool) else ""
    if name == "Order Completed":
        return EventLine("order", f"Placed order{order_text}" + _suffix(amount), fields)
    if name == "Order Refunded":
        return EventLine("order", f"Refund for order{order_text}" + _suffix(amount), fields)
    if name == "Order Cancelled":
        return EventLine("order", f"Cancelled order{order_text}", fields)
    if name == "Checkout Started":
        return EventLine("cart", "Started checkout" + _suffix(amount), fields)
    if name == "Cart Viewed":
        return EventLine("cart", "Looked at the cart", fields)
    if name == "Products Searched":
        query = props.get("query")
        text = f"Searched for “{query}”" if isinstance(query, str) and query else "Searched"
        return EventLine("search", text, fields)
    if name in ("Product List Viewed", "Product List Filtered"):
        where = props.get("category") or props.get("list_id")
        return EventLine("search", f"Browsed {where}" if where else "Browsed products", fields)
    if name.startswith("Coupon "):
        code = props.get("coupon_id") or props.get("coupon_name") or props.get("coupon")
        status = name.removeprefix("Coupon ").lower()
        return EventLine("cart", f"Coupon {code} {status}" if code else name, fields)
    return EventLine("other", name or str(kind), fields)


def _suffix(amount: str | None) -> str:
    return f" · {amount}" if amount else ""
