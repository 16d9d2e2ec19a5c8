"""Tolerant readers for the values inside Segment messages, shared by the reducers.

Senders put anything anywhere: prices as "12.50", quantities as null, products as a
string. Every reader here returns a clean value or None and never raises, so one odd
event cannot stop a profile's pipeline.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from shopkeeper.profiles.model import EventView, ReducerConfig

# Amounts beyond this are typos or attacks, not orders; they would also overflow cents.
_MAX_AMOUNT = 1e12
_MAX_NUMBER_TEXT = 40

ID_LIMIT = 200
NAME_LIMIT = 300
URL_LIMIT = 2000

# Product fields the e-commerce spec defines and the profile keeps, with their length caps.
_PRODUCT_TEXT_FIELDS = (
    ("sku", ID_LIMIT),
    ("name", NAME_LIMIT),
    ("category", NAME_LIMIT),
    ("brand", NAME_LIMIT),
    ("variant", NAME_LIMIT),
    ("url", URL_LIMIT),
    ("image_url", URL_LIMIT),
)


def as_number(value: object) -> float | None:
    """A finite number from a number or a numeric string; None for anything else.

    Booleans are refused: `True` is not a price.
    """
    if isinstance(value, bool):
        return None
    if isinstance(value, float):
        number = value
    elif isinstance(value, int):
        if abs(value) > _MAX_AMOUNT:
            return None
        number = float(value)
    elif isinstance(value, str):
        text = value.strip()
        if not text or len(text) > _MAX_NUMBER_TEXT:
            return None
        try:
            number = float(text)
        except ValueError:
            return None
    else:
        return None
    if not math.isfinite(number) or abs(number) > _MAX_AMOUNT:
        return None
    return number


def as_cents(value: object) -> int | None:
    """A non-negative money amount as integer cents (sums of cents are exact)."""
    number = as_number(value)
    if number is None or number < 0:
        return None
    return round(number * 100)


def as_quantity(value: object) -> int | float | None:
    """A positive quantity: an int when whole, else a float (kilograms of cheese)."""
    number = as_number(value)
    if number is None or number <= 0:
        return None
    return tidy_quantity(number)


def tidy_quantity(number: float) -> int | float:
    """Whole quantities as ints; others rounded so 0.3 - 0.1 does not leave dust."""
    if isinstance(number, int):
        return number
    number = round(number, 3)
    return int(number) if number.is_integer() else number


def as_text(value: object, limit: int = NAME_LIMIT) -> str | None:
    """A non-empty stripped string, capped at `limit`; whole numbers become their digits
    because ids arrive as numbers from some senders."""
    if isinstance(value, str):
        text = value.strip()
        return text[:limit] if text else None
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return str(value)[:limit]
    if isinstance(value, float) and math.isfinite(value) and value.is_integer():
        return str(int(value))[:limit]
    return None


def as_currency(value: object) -> str | None:
    """An ISO 4217-shaped code, upper-cased."""
    if not isinstance(value, str):
        return None
    code = value.strip().upper()
    if len(code) == 3 and code.isascii() and code.isalpha():
        return code
    return None


def as_scalar(value: object, limit: int = NAME_LIMIT) -> str | int | float | bool | None:
    """A JSON scalar worth keeping (filter values, ratings); containers are dropped."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float):
        return value if isinstance(value, int) or math.isfinite(value) else None
    if isinstance(value, str):
        return value.strip()[:limit]
    return None


def product_id_of(props: dict[str, Any]) -> str | None:
    """The spec's product key: product_id, else sku, else id."""
    for key in ("product_id", "sku", "id"):
        pid = as_text(props.get(key), ID_LIMIT)
        if pid is not None:
            return pid
    return None


def read_product(props: object) -> dict[str, Any] | None:
    """The spec's product fields that are present and well-typed, as a new dict.

    Returns None when `props` is not a dict or names no product id: such a product
    cannot be matched later (removed from a cart, counted as viewed).
    """
    if not isinstance(props, dict):
        return None
    pid = product_id_of(props)
    if pid is None:
        return None
    product: dict[str, Any] = {"product_id": pid}
    for key, limit in _PRODUCT_TEXT_FIELDS:
        text = as_text(props.get(key), limit)
        if text is not None:
            product[key] = text
    cents = as_cents(props.get("price"))
    if cents is not None:
        product["price"] = cents / 100
    quantity = as_quantity(props.get("quantity"))
    if quantity is not None:
        product["quantity"] = quantity
    currency = as_currency(props.get("currency"))
    if currency is not None:
        product["currency"] = currency
    return product


def read_products(value: object) -> list[dict[str, Any]]:
    """The readable products of a `products` array; anything else reads as none."""
    if not isinstance(value, list):
        return []
    products = []
    for item in value:
        product = read_product(item)
        if product is not None:
            products.append(product)
    return products


def line_cents(product: dict[str, Any]) -> int | None:
    """price * quantity (quantity defaults to 1) in cents, or None without a price."""
    price: float | None = product.get("price")
    if price is None:
        return None
    quantity: float = product.get("quantity", 1)
    return round(round(price * 100) * quantity)


def products_cents(value: object) -> int | None:
    """Sum of price * quantity over a `products` array; None when nothing has a price.

    Products without an id still count here: the amount is real even if the line
    cannot be matched later.
    """
    if not isinstance(value, list):
        return None
    total = None
    for item in value:
        if not isinstance(item, dict):
            continue
        cents = as_cents(item.get("price"))
        if cents is None:
            continue
        quantity = as_quantity(item.get("quantity"))
        total = (total or 0) + round(cents * (1 if quantity is None else quantity))
    return total


@dataclass(frozen=True, slots=True)
class Settings:
    """ReducerConfig with its exchange rates checked once, not once per event."""

    config: ReducerConfig
    shop_currency: str = field(init=False)
    rates: dict[str, float] = field(init=False)

    def __post_init__(self) -> None:
        shop = as_currency(self.config.shop_currency) or "USD"
        rates: dict[str, float] = {}
        for code, rate in self.config.exchange_rates.items():
            currency = as_currency(code)
            number = as_number(rate)
            if currency is not None and number is not None and number > 0:
                rates[currency] = number
        rates[shop] = 1.0
        object.__setattr__(self, "shop_currency", shop)
        object.__setattr__(self, "rates", rates)

    def to_shop(self, cents: int, currency: str | None) -> int | None:
        """`cents` of `currency` (None = shop currency) in shop-currency cents, or None
        when there is no rate for that currency."""
        rate = self.rates.get(currency or self.shop_currency)
        if rate is None:
            return None
        return round(cents * rate)


Handler = Callable[[dict[str, Any], EventView, "Settings"], None]
"""What every attribute handler looks like: (computed, event, settings) -> None."""


def set_latest(c: dict[str, Any], key: str, value: Any, at: str) -> bool:
    """Newest-wins write of one attribute, by event time rather than arrival order.

    The time each attribute was last written lives in `c["_at"]` so a late-arriving
    older event cannot overwrite a newer value. `value=None` clears the attribute but
    keeps its time. Ties go to the later call, as a refold in arrival order would.
    """
    times = c.get("_at")
    if times is None:
        times = c["_at"] = {}
    if at < times.get(key, ""):
        return False
    times[key] = at
    if value is None:
        c.pop(key, None)
    else:
        c[key] = value
    return True


def set_earliest(c: dict[str, Any], key: str, value: Any, at: str) -> None:
    """Oldest-wins write (first source, first order); ties keep the earlier call."""
    times = c.get("_at")
    if times is None:
        times = c["_at"] = {}
    known = times.get(key)
    if known is None or at < known:
        times[key] = at
        c[key] = value


def cap_by_recency(entries: dict[str, dict[str, Any]], limit: int, time_key: str) -> None:
    """Drop the least recent entries beyond `limit` (ties: the smallest key goes first,
    so the outcome does not depend on dict order, which JSONB does not keep)."""
    while len(entries) > max(limit, 0):
        oldest = min(entries, key=lambda k: (entries[k].get(time_key, ""), k))
        del entries[oldest]
