"""POS order rows -> `Order Completed` messages (Segment e-commerce v2). Pure.

An order is either one row with its products in a `products` JSON column, or several
consecutive rows with the same order id, one per line item (product_id, sku, name,
category, brand, variant, price, quantity columns). Only consecutive rows are joined, so
memory holds one order at a time whatever the size of the file.

The message's timestamp is the order's date, so imported history lands in the past where
it belongs. The customer is named by the customer id (userId), else by email or phone:
those travel in context.traits, where identity resolution reads them, with a stable
anonymous id derived from them. Orders whose status says they never happened
(cancelled, void) become `Order Cancelled`, so they are not counted as revenue.
"""

from __future__ import annotations

from typing import Any

from shopkeeper.imports import values as v
from shopkeeper.imports.mapping import MappedRow
from shopkeeper.imports.model import RowError

MAX_LINES = 1000
CANCELLED_STATUSES = frozenset({"cancelled", "canceled", "void", "voided"})
_ORDER_FIELDS = ("order_id", "user_id", "email", "phone", "date", "total", "revenue",
                 "subtotal", "tax", "shipping", "discount", "coupon", "currency", "store",
                 "status", "products")  # fmt: skip
_LINE_TEXT = (("product_id", "product_id"), ("sku", "sku"), ("product_name", "name"),
              ("category", "category"), ("brand", "brand"), ("variant", "variant"))  # fmt: skip
_AMOUNTS = ("total", "revenue", "subtotal", "tax", "shipping")


class OrderAssembler:
    """Joins consecutive rows of one order. `add` returns the previous order when a row
    starts a new one; `finish` returns the last. Rows without an order id stand alone."""

    def __init__(self) -> None:
        self._rows: list[MappedRow] = []
        self._key: str | None = None
        self._overflow = False

    def add(self, row: MappedRow) -> list[MappedRow] | None:
        key = row.values.get("order_id")
        key = str(key).strip() if key is not None else None
        if self._rows and key is not None and key == self._key:
            if len(self._rows) < MAX_LINES:
                self._rows.append(row)
            else:
                self._overflow = True  # keep reading its rows, but hold no more of them
            return None
        try:
            return self.finish()
        finally:  # the new row starts the next order even when the previous one failed
            self._rows = [row]
            self._key = key

    def finish(self) -> list[MappedRow] | None:
        if not self._rows:
            return None
        rows = self._rows
        if self._overflow:
            self._overflow = False
            self._rows, self._key = [], None
            raise RowError(f"the order has more than {MAX_LINES} rows", rows[0].line)
        self._rows, self._key = [], None
        return rows


def _order_values(rows: list[MappedRow]) -> MappedRow:
    """The order-level fields: for each, the first row that has it."""
    first = rows[0]
    merged = MappedRow(first.line, {}, first.extras, first.columns)
    for row in rows:
        for name in _ORDER_FIELDS:
            if name not in merged.values and name in row.values:
                merged.values[name] = row.values[name]
    return merged


def _line(row: MappedRow) -> dict[str, Any] | None:
    line: dict[str, Any] = {}
    try:
        for target, key in _LINE_TEXT:
            value = v.text(row, target)
            if value is not None:
                line[key] = value
        for target in ("price", "quantity"):
            amount = v.number(row, target)
            if amount is not None:
                line[target] = amount
    except RowError as exc:
        raise RowError(exc.reason, row.line) from None
    return line or None


def order_message(rows: list[MappedRow]) -> dict[str, Any]:
    order = _order_values(rows)
    order_id = v.identifier(order, "order_id")
    if order_id is None:
        raise RowError("the row has no order id")
    date = v.time_ms(order, "date")
    if date is None:
        raise RowError("the order has no date")
    who = v.contact(order, "the order has no customer id, email or phone to link it to a customer")

    properties: dict[str, Any] = dict(order.extras)
    properties["order_id"] = order_id
    for target in _AMOUNTS:
        amount = v.number(order, target)
        if amount is not None:
            properties[target] = amount
    discount = v.number(order, "discount", signed=True)
    if discount is not None:
        properties["discount"] = abs(discount)  # some systems write discounts negative
    currency = v.text(order, "currency")
    if currency is not None:
        code = currency.strip().upper()
        if len(code) != 3 or not code.isalpha() or not code.isascii():
            raise RowError(f"{order.label('currency')} is not a three-letter currency code")
        properties["currency"] = code
    for target, key in (("coupon", "coupon"), ("store", "affiliation"), ("status", "status")):
        value = v.text(order, target)
        if value is not None:
            properties[key] = value
    products = v.json_list(order, "products") or []
    for row in rows:
        line = _line(row)
        if line is not None:
            products.append(line)
    if products:
        properties["products"] = products

    status = properties.get("status")
    cancelled = isinstance(status, str) and status.strip().casefold() in CANCELLED_STATUSES
    message: dict[str, Any] = {
        "type": "track",
        "event": "Order Cancelled" if cancelled else "Order Completed",
        "properties": properties,
        "timestamp": v.iso(date),
    }
    context_traits = {
        key: value for key, value in (("email", who.email), ("phone", who.phone)) if value
    }
    if context_traits:
        message["context"] = {"traits": context_traits}
    message.update(who.identity())
    return message
