"""Products as the catalog keeps them: parsing and checking what shops send (JSON objects
from the API and JSON Lines files, flat rows from CSV files), and the stock and price
changes worth an internal event. Pure: no database, no HTTP, no clock.

Errors name the field and what to do about it, and quote at most a short prefix of the
value: a reason ends up in import reports and logs, where a whole description would not
belong.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

ID_LIMIT = 200
SKU_LIMIT = 200
NAME_LIMIT = 500
BRAND_LIMIT = 200
CATEGORY_LIMIT = 500
DESCRIPTION_LIMIT = 20_000
URL_LIMIT = 2_000
CURRENCY_LIMIT = 3
# Amounts beyond this are typos (a barcode pasted into the price column).
MAX_PRICE = 1e12
# The stock column is a 32-bit integer.
MAX_STOCK = 2**31 - 1
MAX_ATTRIBUTES = 200
ATTRIBUTE_NAME_LIMIT = 100
# Serialized size of all attributes of one product: they are stored in the row.
ATTRIBUTES_BYTES_LIMIT = 32 * 1024
MAX_LOCALES = 100

# The keys of the dict parse_product returns, in this order.
FIELDS = (
    "id",
    "sku",
    "name",
    "description",
    "category",
    "brand",
    "price",
    "sale_price",
    "currency",
    "stock_quantity",
    "url",
    "image_url",
    "attributes",
    "locales",
)

# Other names shops' exports use for the same fields.
ALIASES = {"product_id": "id", "stock": "stock_quantity", "image": "image_url"}
LOCALE_FIELDS = ("name", "url")

_LOCALE = re.compile(r"^[A-Za-z]{2,3}(?:[-_][A-Za-z0-9]{1,8})*$")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
# Descriptions may hold line breaks and tabs, not other control characters.
_CONTROL_IN_TEXT = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_QUOTE_LIMIT = 40

# Catalog event types.
BACK_IN_STOCK = "Product Back In Stock"
OUT_OF_STOCK = "Product Out Of Stock"
LOW_STOCK = "Product Low Stock"
PRICE_DROPPED = "Product Price Dropped"
EVENT_TYPES = (BACK_IN_STOCK, OUT_OF_STOCK, LOW_STOCK, PRICE_DROPPED)


class ProductError(ValueError):
    """A product that cannot be stored, with the reason and the field it concerns."""

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


def _quote(value: object) -> str:
    """A value as an error may show it: short, one line."""
    text = value if isinstance(value, str) else repr(value)
    text = _CONTROL.sub(" ", text)
    if len(text) > _QUOTE_LIMIT:
        text = text[: _QUOTE_LIMIT - 3] + "..."
    return repr(text) if isinstance(value, str) else text


def _blank(value: object) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


# -- scalar fields ---------------------------------------------------------------------------


def _text(value: object, field: str, limit: int, *, multiline: bool = False) -> str | None:
    if _blank(value):
        return None
    if isinstance(value, bool):
        raise ProductError(f"{field} must be text, not {value}", field)
    if isinstance(value, int):
        text = str(value)
    elif isinstance(value, float) and math.isfinite(value) and value.is_integer():
        # Ids read from JSON as numbers (12.0) mean the digits.
        text = str(int(value))
    elif isinstance(value, str):
        text = value.strip()
    else:
        raise ProductError(f"{field} must be text, not {type(value).__name__}", field)
    if len(text) > limit:
        raise ProductError(f"{field} is {len(text)} characters long; at most {limit}", field)
    pattern = _CONTROL_IN_TEXT if multiline else _CONTROL
    if pattern.search(text):
        raise ProductError(f"{field} holds control characters (line breaks, tabs...)", field)
    return text


def _decimal_text(text: str) -> str:
    """A number written the way people write prices, in Python's notation: "12,50" and
    "1.234,50" (comma decimals), "1,234.50" (comma thousands), "1 234,50"."""
    text = text.replace("\u00a0", "").replace("\u202f", "").replace(" ", "")
    comma, dot = text.rfind(","), text.rfind(".")
    if comma >= 0 and dot >= 0:
        if comma > dot:
            return text.replace(".", "").replace(",", ".")
        return text.replace(",", "")
    if comma >= 0:
        if text.count(",") == 1:
            return text.replace(",", ".")
        return text.replace(",", "")  # 1,234,567
    return text


def _price(value: object, field: str) -> float | None:
    if _blank(value):
        return None
    if isinstance(value, bool):
        raise ProductError(f"{field} must be a number, not {value}", field)
    if isinstance(value, int | float):
        number = float(value)
    elif isinstance(value, str):
        text = _decimal_text(value.strip())
        try:
            if "_" in text:  # float() would accept 1_000
                raise ValueError(text)
            number = float(text)
        except ValueError:
            raise ProductError(
                f"{field} must be a number such as 12.50 or 12,50, not {_quote(value)}", field
            ) from None
    else:
        raise ProductError(f"{field} must be a number, not {type(value).__name__}", field)
    if not math.isfinite(number):
        raise ProductError(f"{field} must be a finite number", field)
    if number < 0:
        raise ProductError(f"{field} must not be negative ({_quote(value)})", field)
    if number > MAX_PRICE:
        raise ProductError(f"{field} is implausibly large ({_quote(value)})", field)
    # Prices come as decimal text; keep them free of binary-float dust (19.990000000000002).
    return round(number, 6)


def _stock(value: object, field: str) -> int | None:
    """Units in stock; None means the shop does not track stock for this product."""
    if _blank(value):
        return None
    number: float
    if isinstance(value, bool):
        raise ProductError(f"{field} must be a whole number, not {value}", field)
    if isinstance(value, int | float):
        number = value
    elif isinstance(value, str):
        try:
            number = float(value.strip())
        except ValueError:
            raise ProductError(
                f"{field} must be a whole number of units (or empty when stock is not "
                f"tracked), not {_quote(value)}",
                field,
            ) from None
    else:
        raise ProductError(f"{field} must be a whole number, not {type(value).__name__}", field)
    if not math.isfinite(number) or not float(number).is_integer():
        raise ProductError(f"{field} must be a whole number of units, not {_quote(value)}", field)
    if number < 0:
        raise ProductError(f"{field} must not be negative ({_quote(value)})", field)
    if number > MAX_STOCK:
        raise ProductError(f"{field} is implausibly large ({_quote(value)})", field)
    return int(number)


def _currency(value: object, field: str = "currency") -> str | None:
    if _blank(value):
        return None
    if not isinstance(value, str):
        raise ProductError(f"{field} must be a three-letter ISO 4217 code such as EUR", field)
    code = value.strip().upper()
    if len(code) != CURRENCY_LIMIT or not (code.isascii() and code.isalpha()):
        raise ProductError(
            f"{field} must be a three-letter ISO 4217 code such as EUR, not {_quote(value)}", field
        )
    return code


def _url(value: object, field: str) -> str | None:
    text = _text(value, field, URL_LIMIT)
    if text is None:
        return None
    scheme, sep, rest = text.partition("://")
    host = rest.split("/", 1)[0].split("?", 1)[0].split("#", 1)[0]
    if not sep or scheme.lower() not in ("http", "https") or not host or " " in text:
        raise ProductError(
            f"{field} must be an http:// or https:// address, not {_quote(text)}", field
        )
    return text


def normalize_category(value: object, field: str = "category") -> str | None:
    """A category path, most general first, as "Home > Living room > Sofas". Accepts ">"
    or "/" between the parts, or a list of parts."""
    if _blank(value):
        return None
    if isinstance(value, list | tuple):
        parts = [_text(part, field, CATEGORY_LIMIT) for part in value]
    elif isinstance(value, str):
        parts = [part.strip() for part in re.split(r"[>/]", value)]
    else:
        raise ProductError(f"{field} must be a path such as 'Home > Living room'", field)
    path = " > ".join(part for part in parts if part)
    if not path:
        return None
    if len(path) > CATEGORY_LIMIT:
        raise ProductError(
            f"{field} is {len(path)} characters long; at most {CATEGORY_LIMIT}", field
        )
    if _CONTROL.search(path):
        raise ProductError(f"{field} holds control characters", field)
    return path


# -- nested fields ---------------------------------------------------------------------------


def _json_object(value: object, field: str) -> dict[str, Any]:
    """A JSON object, or a CSV cell holding one."""
    if _blank(value):
        return {}
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            raise ProductError(f"{field} must be a JSON object such as {{'a': 1}}", field) from None
    if not isinstance(value, Mapping):
        raise ProductError(f"{field} must be a JSON object, not {type(value).__name__}", field)
    return dict(value)


def _attribute_name(name: object, field: str) -> str:
    if not isinstance(name, str) or not name.strip():
        raise ProductError(f"{field}: attribute names must be non-empty text", field)
    name = name.strip()
    if len(name) > ATTRIBUTE_NAME_LIMIT or _CONTROL.search(name):
        raise ProductError(
            f"{field}: attribute name {_quote(name)} is too long or holds control characters",
            field,
        )
    return name


def locale_key(value: object, field: str = "locales") -> str:
    """A locale tag, loosely checked and tidied: "nb_no" -> "nb-NO", "zh-hant-tw" ->
    "zh-Hant-TW"."""
    if not isinstance(value, str) or not _LOCALE.match(value.strip()):
        raise ProductError(
            f"{field}: {_quote(value)} is not a locale; use tags such as en, nb-NO or zh-Hant-TW",
            field,
        )
    first, *rest = value.strip().replace("_", "-").split("-")
    tidy = [first.lower()]
    for part in rest:
        if len(part) == 2 and part.isalpha():
            tidy.append(part.upper())
        elif len(part) == 4 and part.isalpha():
            tidy.append(part.title())
        else:
            tidy.append(part.lower())
    return "-".join(tidy)


def _locale_entry(value: object, field: str) -> dict[str, str]:
    entry = _json_object(value, field)
    unknown = sorted(set(entry) - set(LOCALE_FIELDS))
    if unknown:
        raise ProductError(
            f"{field}: unknown field {_quote(unknown[0])}; a locale has a name and a url",
            f"{field}.{unknown[0]}",
        )
    out: dict[str, str] = {}
    name = _text(entry.get("name"), f"{field}.name", NAME_LIMIT)
    if name is not None:
        out["name"] = name
    url = _url(entry.get("url"), f"{field}.url")
    if url is not None:
        out["url"] = url
    return out


def _set_locale(locales: dict[str, dict[str, str]], key: str, entry: Mapping[str, str]) -> None:
    if not entry:
        return
    locales.setdefault(key, {}).update(entry)
    if len(locales) > MAX_LOCALES:
        raise ProductError(f"a product has at most {MAX_LOCALES} locales", "locales")


# -- the product ------------------------------------------------------------------------------


def parse_product(raw: Mapping[str, Any]) -> dict[str, Any]:
    """Check and normalise one product. Accepts the nested form (attributes and locales as
    objects) and flat rows from CSV files (`attr.<name>`, `name.<locale>` and
    `url.<locale>` columns, every value a string, empty meaning absent). Columns it does
    not know are ignored, so that a shop's export can be loaded as it is.

    Returns a dict with exactly the keys of FIELDS. Raises ProductError."""
    if not isinstance(raw, Mapping):
        raise ProductError("a product must be a JSON object")
    fields: dict[str, Any] = {}
    attributes: dict[str, Any] = {}
    flat_locales: list[tuple[str, str, str, Any]] = []
    for key, value in raw.items():
        if not isinstance(key, str):
            continue
        column = key.strip()
        lower = column.lower()
        if lower.startswith(("attr.", "attributes.")):
            attr = _attribute_name(column.split(".", 1)[1], column)
            if not _blank(value):
                attributes[attr] = value.strip() if isinstance(value, str) else value
            continue
        base, dot, suffix = column.partition(".")
        if dot and base.lower() in LOCALE_FIELDS:
            flat_locales.append((base.lower(), suffix, column, value))
            continue
        canonical = ALIASES.get(lower, lower)
        if canonical not in FIELDS:
            continue
        # The canonical column wins over an alias (a file with both "id" and
        # "product_id"), and a filled column over an empty one.
        if canonical in fields and (
            _blank(value) or (lower != canonical and not _blank(fields[canonical]))
        ):
            continue
        fields[canonical] = value

    product_id = _text(fields.get("id"), "id", ID_LIMIT)
    if product_id is None:
        raise ProductError("id is required: the shop's product id, as events carry it", "id")
    name = _text(fields.get("name"), "name", NAME_LIMIT)
    if name is None:
        raise ProductError("name is required", "name")

    nested = _json_object(fields.get("attributes"), "attributes")
    merged: dict[str, Any] = {}
    for attr, value in nested.items():
        merged[_attribute_name(attr, "attributes")] = value
    merged.update(attributes)  # attr.<name> columns are the more specific source
    if len(merged) > MAX_ATTRIBUTES:
        raise ProductError(f"a product has at most {MAX_ATTRIBUTES} attributes", "attributes")
    try:
        encoded = json.dumps(merged, allow_nan=False)
    except (TypeError, ValueError):
        raise ProductError("attributes must hold JSON values only", "attributes") from None
    if len(encoded) > ATTRIBUTES_BYTES_LIMIT:
        raise ProductError(
            f"attributes take {len(encoded)} bytes as JSON; at most {ATTRIBUTES_BYTES_LIMIT}",
            "attributes",
        )

    locales: dict[str, dict[str, str]] = {}
    for key, entry in _json_object(fields.get("locales"), "locales").items():
        tag = locale_key(key)
        _set_locale(locales, tag, _locale_entry(entry, f"locales.{tag}"))
    for which, suffix, column, value in flat_locales:
        tag = locale_key(suffix, column)
        if which == "name":
            text = _text(value, column, NAME_LIMIT)
            _set_locale(locales, tag, {"name": text} if text is not None else {})
        else:
            url = _url(value, column)
            _set_locale(locales, tag, {"url": url} if url is not None else {})

    price = _price(fields.get("price"), "price")
    sale_price = _price(fields.get("sale_price"), "sale_price")
    if price is not None and sale_price is not None and sale_price > price:
        raise ProductError(
            f"sale_price ({sale_price:g}) is higher than price ({price:g}); a sale price is "
            "the reduced price",
            "sale_price",
        )
    return {
        "id": product_id,
        "sku": _text(fields.get("sku"), "sku", SKU_LIMIT),
        "name": name,
        "description": _text(
            fields.get("description"), "description", DESCRIPTION_LIMIT, multiline=True
        ),
        "category": normalize_category(fields.get("category")),
        "brand": _text(fields.get("brand"), "brand", BRAND_LIMIT),
        "price": price,
        "sale_price": sale_price,
        "currency": _currency(fields.get("currency")),
        "stock_quantity": _stock(fields.get("stock_quantity"), "stock_quantity"),
        "url": _url(fields.get("url"), "url"),
        "image_url": _url(fields.get("image_url"), "image_url"),
        "attributes": merged,
        "locales": {tag: locales[tag] for tag in sorted(locales)},
    }


# -- changes worth an event ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CatalogEvent:
    """A stock or price change, for journeys to trigger on."""

    product_id: str
    type: str
    details: dict[str, Any]


def effective_price(product: Mapping[str, Any]) -> float | None:
    """What a customer pays: the sale price while there is one, else the price."""
    sale = product.get("sale_price")
    return sale if sale is not None else product.get("price")


def changes(
    old: Mapping[str, Any] | None, new: Mapping[str, Any], low_stock_threshold: int
) -> list[CatalogEvent]:
    """The catalog events that replacing `old` with `new` causes.

    A new product (old None) causes none: nobody was waiting for it. Stock events need
    stock tracked on both sides (None means untracked). A price drop compares effective
    prices in the same currency: a change of currency is a repricing, not a drop."""
    if old is None:
        return []
    pid = str(new["id"])
    base = {"product_id": pid, "name": new.get("name")}
    events: list[CatalogEvent] = []
    before, after = old.get("stock_quantity"), new.get("stock_quantity")
    if before is not None and after is not None:
        stock = {**base, "old_stock": before, "new_stock": after}
        if before == 0 and after > 0:
            events.append(CatalogEvent(pid, BACK_IN_STOCK, stock))
        elif before > 0 and after == 0:
            events.append(CatalogEvent(pid, OUT_OF_STOCK, stock))
        elif before > low_stock_threshold >= after > 0:
            stock["threshold"] = low_stock_threshold
            events.append(CatalogEvent(pid, LOW_STOCK, stock))
    old_price, new_price = effective_price(old), effective_price(new)
    if (
        old_price is not None
        and new_price is not None
        and old.get("currency") == new.get("currency")
        # Compared in cents-and-below so that float dust is not a price change.
        and round(new_price, 4) < round(old_price, 4)
    ):
        events.append(
            CatalogEvent(
                pid,
                PRICE_DROPPED,
                {
                    **base,
                    "old_price": old_price,
                    "new_price": new_price,
                    "currency": new.get("currency"),
                    "drop_percent": round((old_price - new_price) / old_price * 100, 2),
                },
            )
        )
    return events
