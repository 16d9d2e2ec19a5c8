"""Order attributes: a small ledger of the profile's orders and the totals derived from it.

Each order the profile knows by id is one entry in `c["_orders"]`, so Order Updated,
Order Cancelled and Order Refunded can find it and a repeated Order Completed is an
update rather than a second order. The public totals are recomputed from the entries
after every order event (a few hundred entries at most, and order events are rare), which
keeps them exact whatever order the events arrive in; computing deltas would not.

Entry fields (short names: a profile may keep hundreds):
    st    "live" (completed), "pending" (seen only through updates or refunds so far,
          not yet counted) or "cancelled" (kept so a late Completed cannot revive it)
    at    earliest time of its events (for a completed order, its completion), ISO
    amt   order value in cents of the order's currency, or None when no event gave one
    vt    time of the event that set `amt` (newest wins)
    cur   the currency the newest of its events named (any order event, refunds too),
          or None: then it is the shop currency. Amounts sent without a currency are in
          the order's currency, so the ledger does not depend on arrival order.
    ct    time of the event that named `cur`
    ref   cents refunded by partial refunds; `rall` true once fully refunded
    rn    number of refund events
    n     number of product lines
    cats  categories of its product lines (one per line), for favorite_category
    pt    time of the event that gave `n` and `cats`
    cd    an Order Completed was seen: its lines count as purchases (even if it is
          cancelled later: the interest was real)

Entries beyond config.orders_limit are dropped oldest first; their share of the totals
moves to `c["_orders_rest"]` so the totals stay whole, but a dropped order can no longer
be updated, cancelled or refunded.
"""

from __future__ import annotations

import copy
from typing import Any

from shopkeeper.profiles.model import EventView
from shopkeeper.profiles.shopping import PURCHASE_WEIGHT
from shopkeeper.profiles.values import (
    ID_LIMIT,
    Settings,
    as_cents,
    as_currency,
    as_text,
    products_cents,
)

_ANONYMOUS_PREFIX = "~msg:"


def _new_rest() -> dict[str, Any]:
    return {
        "orders": 0,
        "priced": 0,
        "cents": 0,
        "refunded": 0,
        "unconverted": {},
        "refunds": 0,
        "cancelled": 0,
        "max": None,
        "first_at": None,
        "last_at": None,
        "bought": {},
    }


def _order_amount(props: dict[str, Any]) -> int | None:
    """Order value per the spec's precedence: revenue, total, subtotal, then products."""
    for key in ("revenue", "total", "subtotal"):
        cents = as_cents(props.get(key))
        if cents is not None:
            return cents
    return products_cents(props.get("products"))


def _refund_amount(props: dict[str, Any]) -> int | None:
    """A partial refund's amount; None means the whole order was refunded."""
    for key in ("revenue", "total", "value"):
        cents = as_cents(props.get(key))
        if cents is not None:
            return cents
    return products_cents(props.get("products"))


def _new_entry(status: str, at: str) -> dict[str, Any]:
    return {"st": status, "at": at, "amt": None, "vt": "", "cur": None, "ct": "", "ref": 0,
            "rall": False, "rn": 0, "n": 0, "cats": [], "pt": "", "cd": False}  # fmt: skip


def _set_currency(entry: dict[str, Any], props: dict[str, Any], at: str) -> None:
    currency = as_currency(props.get("currency"))
    if currency is not None and at >= entry["ct"]:
        entry["cur"] = currency
        entry["ct"] = at


def _set_value(entry: dict[str, Any], props: dict[str, Any], at: str) -> None:
    """Take this event's currency, value and lines, each when it is the newest to give
    one (an update may carry products without amounts, or an amount alone)."""
    _set_currency(entry, props, at)
    amount = _order_amount(props)
    if amount is not None and at >= entry["vt"]:
        entry["amt"] = amount
        entry["vt"] = at
    products = props.get("products")
    if isinstance(products, list) and at >= entry["pt"]:
        lines = [item for item in products if isinstance(item, dict)]
        categories = (as_text(item.get("category")) for item in lines)
        entry["n"] = len(lines)
        entry["cats"] = [category for category in categories if category]
        entry["pt"] = at


def _order_key(ev: EventView) -> str | None:
    order_id = as_text(ev.properties.get("order_id"), ID_LIMIT)
    if order_id is None or order_id.startswith(_ANONYMOUS_PREFIX):
        return None
    return order_id


def _entry(c: dict[str, Any], key: str, status: str, at: str) -> dict[str, Any]:
    """The ledger entry for `key`, created with `status` when new."""
    orders: dict[str, Any] = c.setdefault("_orders", {})
    entry = orders.get(key)
    if entry is None:
        entry = orders[key] = _new_entry(status, at)
    else:
        # The earliest time of any of its events, so arrival order cannot change it.
        entry["at"] = min(entry["at"], at)
    return entry


def order_completed(c: dict[str, Any], ev: EventView, s: Settings) -> None:
    key = _order_key(ev) or _ANONYMOUS_PREFIX + ev.message_id
    entry = _entry(c, key, "live", ev.timestamp)
    if entry["st"] == "pending":
        entry["st"] = "live"
    # Cancelled orders keep their latest version too: their lines still score.
    _set_value(entry, ev.properties, ev.timestamp)
    entry["cd"] = True
    _finish(c, s)


def order_updated(c: dict[str, Any], ev: EventView, s: Settings) -> None:
    key = _order_key(ev)
    if key is None:
        return
    _set_value(_entry(c, key, "pending", ev.timestamp), ev.properties, ev.timestamp)
    _finish(c, s)


def order_cancelled(c: dict[str, Any], ev: EventView, s: Settings) -> None:
    # Without an id there is nothing to take back; counting it alone would let
    # cancelled_count disagree with orders_count.
    key = _order_key(ev)
    if key is None:
        return
    _entry(c, key, "cancelled", ev.timestamp)["st"] = "cancelled"
    _finish(c, s)


def order_refunded(c: dict[str, Any], ev: EventView, s: Settings) -> None:
    key = _order_key(ev)
    if key is None:
        c.setdefault("_orders_rest", _new_rest())["refunds"] += 1
        _finish(c, s)
        return
    entry = _entry(c, key, "pending", ev.timestamp)
    entry["rn"] += 1
    # Refunds are paid in the order's currency; one naming a currency names the order's.
    _set_currency(entry, ev.properties, ev.timestamp)
    amount = _refund_amount(ev.properties)
    if amount is None:
        entry["rall"] = True
    else:
        entry["ref"] += amount
    _finish(c, s)


def _accumulate(acc: dict[str, Any], entry: dict[str, Any], s: Settings) -> None:
    acc["refunds"] += entry["rn"]
    if entry["cd"]:
        bought: dict[str, list[Any]] = acc["bought"]
        for category in entry["cats"]:
            score = bought.setdefault(category, [0, entry["at"]])
            score[0] += PURCHASE_WEIGHT
            score[1] = max(score[1], entry["at"])
    if entry["st"] == "cancelled":
        acc["cancelled"] += 1
        return
    if entry["st"] != "live":
        return
    acc["orders"] += 1
    at = entry["at"]
    if acc["first_at"] is None or at < acc["first_at"]:
        acc["first_at"] = at
    if acc["last_at"] is None or at > acc["last_at"]:
        acc["last_at"] = at
    gross = entry["amt"] or 0
    refunded = gross if entry["rall"] else min(entry["ref"], gross)
    currency = entry["cur"] or s.shop_currency
    rate = s.rates.get(currency)
    if rate is None:
        unconverted = acc["unconverted"]
        unconverted[currency] = unconverted.get(currency, 0) + gross - refunded
        return
    acc["priced"] += 1
    acc["cents"] += round((gross - refunded) * rate)
    acc["refunded"] += round(refunded * rate)
    value = round(gross * rate)
    if acc["max"] is None or value > acc["max"]:
        acc["max"] = value


def _finish(c: dict[str, Any], s: Settings) -> None:
    """Drop the oldest entries beyond the limit, then recompute the public totals."""
    orders: dict[str, Any] = c.setdefault("_orders", {})
    limit = max(s.config.orders_limit, 0)
    if len(orders) > limit:
        rest = c.setdefault("_orders_rest", _new_rest())
        while len(orders) > limit:
            oldest = min(orders, key=lambda k: (orders[k]["at"], k))
            _accumulate(rest, orders.pop(oldest), s)
    acc = _new_rest()
    rest = c.get("_orders_rest")
    if rest is not None:
        acc.update(copy.deepcopy(rest))
    newest: tuple[str, str] | None = None
    for key, entry in orders.items():
        _accumulate(acc, entry, s)
        if entry["st"] == "live" and (newest is None or (entry["at"], key) > newest):
            newest = (entry["at"], key)
    last_key = newest[1] if newest else None
    _publish(c, acc, orders[last_key] if last_key else None, last_key, s.shop_currency)


def _publish(
    c: dict[str, Any],
    acc: dict[str, Any],
    last: dict[str, Any] | None,
    last_key: str | None,
    shop: str,
) -> None:
    c["orders_count"] = acc["orders"]
    c["total_revenue"] = acc["cents"] / 100
    c["refunds_count"] = acc["refunds"]
    c["refunded_revenue"] = acc["refunded"] / 100
    c["cancelled_count"] = acc["cancelled"]
    c["_purchase_scores"] = acc["bought"]
    optional = {
        "average_order_value": round(acc["cents"] / acc["priced"]) / 100 if acc["priced"] else None,
        "max_order_value": acc["max"] / 100 if acc["max"] is not None else None,
        "first_order_at": acc["first_at"],
        "last_order_at": acc["last_at"],
        "revenue_unconverted": {k: v / 100 for k, v in sorted(acc["unconverted"].items()) if v}
        or None,
        "last_order": None,
    }
    if last is not None and last_key is not None:
        optional["last_order"] = {
            "order_id": None if last_key.startswith(_ANONYMOUS_PREFIX) else last_key,
            "revenue": (last["amt"] or 0) / 100,
            "currency": last["cur"] or shop,
            "at": last["at"],
            "products_count": last["n"],
        }
    for key, value in optional.items():
        if value is None:
            c.pop(key, None)
        else:
            c[key] = value
