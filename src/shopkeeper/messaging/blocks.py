"""The dynamic blocks of a message, shaped for templates: products, the cart with its
total, "spend X more for free shipping", the coupon and shop links with UTM parameters.
Pure: content.py reads the rows, this module decides what they mean.

Profiles hold whatever the shop's events sent (prices as text, carts with lines missing
fields), so every reader here tolerates odd values: a line without a price has no line
total, a line in a currency without an exchange rate stays out of the total, and
nothing raises.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from typing import Any
from urllib.parse import urlsplit

from shopkeeper.messaging.formatting import locale_chain, normalize_tag
from shopkeeper.messaging.links import with_utm
from shopkeeper.profiles.values import as_currency, as_number, as_text

UTM_SOURCE = "shopkeeper"
_LINK_OPTIONS = frozenset({"source", "medium", "campaign", "content", "coupon"})
_CART_TEXT_FIELDS = ("sku", "name", "category", "brand", "variant", "url", "image_url")


def _localized(locales: object, locale: str | None) -> Mapping[str, Any]:
    """The product's texts for the reader's locale (nb-NO, then nb), if it has them."""
    if not isinstance(locales, Mapping) or not locales:
        return {}
    by_tag = {normalize_tag(key): value for key, value in locales.items()}
    for tag in locale_chain(locale):
        entry = by_tag.get(tag)
        if isinstance(entry, Mapping):
            return entry
    return {}


def product_view(row: Mapping[str, Any], locale: str | None) -> dict[str, Any]:
    """A catalog product as templates see it: the name and url in the reader's language
    when the catalog has them, and the price a customer pays now."""
    local = _localized(row.get("locales"), locale)
    regular = as_number(row.get("price"))
    sale = as_number(row.get("sale_price"))
    price = sale if sale is not None else regular
    stock = row.get("stock_quantity")
    return {
        "product_id": row.get("id"),
        "id": row.get("id"),
        "sku": row.get("sku"),
        "name": as_text(local.get("name")) or row.get("name"),
        "description": row.get("description"),
        "category": row.get("category"),
        "brand": row.get("brand"),
        "price": price,
        "regular_price": regular,
        "on_sale": sale is not None and regular is not None and sale < regular,
        "currency": as_currency(row.get("currency")),
        "url": as_text(local.get("url"), 2000) or row.get("url"),
        "image_url": row.get("image_url"),
        "stock_quantity": stock,
        "in_stock": stock is None or (isinstance(stock, int | float) and stock > 0),
    }


def cart_line(
    raw: object, product: Mapping[str, Any] | None, locale: str | None
) -> dict[str, Any] | None:
    """One cart line: the catalog's product when it has it (current name, image and
    price), else what the cart itself holds. None for a line naming no product."""
    if not isinstance(raw, Mapping):
        return None
    product_id = as_text(raw.get("product_id"), 200)
    if product_id is None:
        return None
    quantity = as_number(raw.get("quantity"))
    if quantity is None or quantity <= 0:
        quantity = 1
    line: dict[str, Any] = {key: as_text(raw.get(key), 2000) for key in _CART_TEXT_FIELDS}
    line["price"] = as_number(raw.get("price"))
    line["currency"] = as_currency(raw.get("currency"))
    if product is not None:
        shown = product_view(product, locale)
        for key, value in shown.items():
            # The cart's own variant ("size M") is more precise than the product's.
            if value is not None or key not in line:
                line[key] = value
        if shown["price"] is not None:
            # A catalog price without a currency is in the shop currency, whatever the
            # cart line said.
            line["currency"] = shown["currency"]
        line["in_catalog"] = True
    else:
        line.update(
            {"product_id": product_id, "id": product_id, "in_catalog": False, "in_stock": None}
        )
    line["product_id"] = product_id
    line["quantity"] = int(quantity) if float(quantity).is_integer() else quantity
    price = line.get("price")
    line["line_total"] = round(price * quantity, 2) if isinstance(price, float | int) else None
    return line


def convert(
    amount: float, source: str | None, target: str, shop_currency: str, rates: Mapping[str, float]
) -> float | None:
    """`amount` in `source` (None: the shop currency) expressed in `target`, through the
    shop currency with the configured rates (units of shop currency per unit); None
    without a rate."""
    source = source or shop_currency
    if source == target:
        return amount
    to_shop = 1.0 if source == shop_currency else rates.get(source)
    from_shop = 1.0 if target == shop_currency else rates.get(target)
    if not to_shop or not from_shop:
        return None
    return amount * to_shop / from_shop


def cart_totals(
    lines: Iterable[Mapping[str, Any]], shop_currency: str, rates: Mapping[str, float]
) -> tuple[float, str]:
    """(total, currency): the currency most lines are priced in (the shop's when none
    say), and the sum of the line totals converted to it where a rate allows."""
    priced = [line for line in lines if line.get("line_total") is not None]
    counts = Counter(line.get("currency") or shop_currency for line in priced)
    currency = counts.most_common(1)[0][0] if counts else shop_currency
    total = 0.0
    for line in priced:
        value = convert(line["line_total"], line.get("currency"), currency, shop_currency, rates)
        if value is not None:
            total += value
    return round(total, 2), currency


def free_shipping(
    threshold: float | None,
    cart_total: float,
    cart_currency: str,
    shop_currency: str,
    rates: Mapping[str, float],
) -> dict[str, Any] | None:
    """{threshold, remaining, reached, currency} in the shop currency (the threshold's);
    None without a threshold, or when the cart's currency has no rate."""
    if threshold is None:
        return None
    total = convert(cart_total, cart_currency, shop_currency, shop_currency, rates)
    if total is None:
        return None
    return {
        "threshold": threshold,
        "remaining": round(max(threshold - total, 0.0), 2),
        "reached": total >= threshold,
        "currency": shop_currency,
    }


def coupon_of(value: object) -> dict[str, Any] | None:
    """The coupon a message carries: {code, expires_at, discount, ...}, or None. A bare
    string is taken as the code."""
    if isinstance(value, str):
        code = as_text(value, 100)
        return {"code": code, "expires_at": None, "discount": None} if code else None
    if not isinstance(value, Mapping):
        return None
    code = as_text(value.get("code"), 100)
    if code is None:
        return None
    return {"expires_at": None, "discount": None, **value, "code": code}


def absolute_url(shop_url: str, path_or_url: object) -> str:
    """A shop path ("/cart", "products/x") under the shop's address; full URLs as given."""
    if not isinstance(path_or_url, str) or not path_or_url.strip():
        return shop_url
    text = path_or_url.strip()
    if urlsplit(text).scheme or text.startswith("//"):
        return text
    return f"{shop_url.rstrip('/')}/{text.lstrip('/')}"


def make_link(
    shop_url: str, medium: str, campaign: str | None, coupon: str | None
) -> Callable[..., str]:
    """The template function `link(path_or_url, **utm)`: a shop URL with utm_source=
    shopkeeper, utm_medium=<channel>, utm_campaign=<journey> and the coupon (which the
    shop applies on arrival). Keyword arguments override each: link("/", content="hero"),
    link("/", coupon=None)."""

    def link(path_or_url: object = "", **options: Any) -> str:
        unknown = sorted(set(options) - _LINK_OPTIONS)
        if unknown:
            raise TypeError(
                f"link() takes source, medium, campaign, content and coupon, not {unknown[0]}"
            )
        url = absolute_url(shop_url, path_or_url)
        if not url.lower().startswith(("http://", "https://")):
            return url
        values = {
            "source": UTM_SOURCE,
            "medium": medium,
            "campaign": campaign,
            "content": None,
            "coupon": coupon,
        }
        for key, value in options.items():
            values[key] = str(value) if value not in (None, False, "") else None
        return with_utm(
            url,
            values["source"],
            values["medium"],
            values["campaign"],
            content=values["content"],
            coupon=values["coupon"],
        )

    return link
