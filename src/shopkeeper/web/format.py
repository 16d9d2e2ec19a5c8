"""How values read on the admin UI's pages: money, dates, durations, labels.

Pure functions (no database, no clock: `now_ms` is passed in), registered as Jinja
filters. Times are shown in UTC and say so; the page's script rewrites them to the
reader's own time zone when it runs.
"""

from __future__ import annotations

import math
import re
import time
from typing import Any

from babel.numbers import format_currency, format_decimal
from babel.numbers import format_percent as babel_percent

from shopkeeper.timeutil import parse_iso_ms

LOCALE = "en_US"
DASH = "—"

_ISO = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$")
_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")
_CODE_THEN_DIGIT = re.compile(r"^(-?[A-Z]{3})(?=\d)")

# Names people use, for the keys that appear most: identifier types, traits, attributes.
LABELS: dict[str, str] = {
    "user_id": "Customer ID",
    "anonymous_id": "Browser or device ID",
    "email": "Email",
    "phone": "Phone",
    "device_id": "Device ID",
    "push_token": "Push token",
    "firstName": "First name",
    "lastName": "Last name",
    "name": "Name",
    "birthday": "Birthday",
    "createdAt": "Account created",
    "events_count": "Events",
    "first_seen_at": "First seen",
    "last_seen_at": "Last seen",
    "sessions_count": "Visits",
    "page_views_count": "Pages viewed",
    "track_count": "Actions",
    "orders_count": "Orders",
    "total_revenue": "Total spent",
    "average_order_value": "Average order",
    "max_order_value": "Largest order",
    "first_order_at": "First order",
    "last_order_at": "Last order",
    "refunds_count": "Refunds",
    "refunded_revenue": "Refunded",
    "cancelled_count": "Cancelled orders",
    "cart_value": "Cart value",
    "cart_items_count": "Items in cart",
    "cart_updated_at": "Cart changed",
    "checkout_started_at": "Checkout started",
    "payment_info_entered_at": "Payment details entered",
    "product_views_count": "Products viewed",
    "favorite_category": "Favourite category",
    "searches_count": "Searches",
    "reviews_count": "Reviews",
    "product_clicks_count": "Product clicks",
    "shares_count": "Shares",
    "country": "Country",
    "city": "City",
    "locale": "Language",
    "timezone": "Time zone",
    "device_types": "Devices",
    "last_device_type": "Last device",
    "coupons_applied": "Coupons used",
    "product_id": "Product ID",
    "order_id": "Order ID",
    "cart_id": "Cart ID",
    "checkout_id": "Checkout ID",
    "coupon_id": "Coupon ID",
    "sku": "SKU",
    "url": "Address",
    "crm_id": "CRM ID",
    "sms": "SMS",
    "whatsapp": "WhatsApp",
    "push": "Push notifications",
    "in_app": "In-app messages",
    "sms_opt_in": "SMS opt-in",
    "email_opt_in": "Email opt-in",
}

# Computed attributes holding money in the shop currency.
MONEY_ATTRIBUTES = frozenset(
    {"total_revenue", "average_order_value", "max_order_value", "refunded_revenue", "cart_value"}
)


def label(key: str) -> str:
    """`orders_count` -> "Orders", `loyaltyTier` -> "Loyalty tier"."""
    known = LABELS.get(key)
    if known is not None:
        return known
    words = _CAMEL.sub(" ", key).replace("_", " ").replace(".", " ").strip()
    return words[:1].upper() + words[1:].lower() if words else key


def _finite(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    number = float(value)
    return number if math.isfinite(number) else None


def money(value: Any, currency: str | None) -> str:
    number = _finite(value)
    if number is None:
        return DASH
    code = (currency or "USD").upper()
    if not re.fullmatch(r"[A-Z]{3}", code):
        return f"{format_decimal(number, format='#,##0.00', locale=LOCALE)} {code[:10]}"
    # Babel writes "NOK99.90" where CLDR's spacing rules want "NOK 99.90".
    return _CODE_THEN_DIGIT.sub("\\1\u00a0", str(format_currency(number, code, locale=LOCALE)))


def number(value: Any) -> str:
    num = _finite(value)
    if num is None:
        return DASH
    if num == int(num):
        return str(format_decimal(int(num), locale=LOCALE))
    return str(format_decimal(num, format="#,##0.##", locale=LOCALE))


def percent(value: float | None) -> str:
    if value is None or not math.isfinite(value):
        return DASH
    return str(babel_percent(value, format="#,##0.0%", locale=LOCALE))


def to_ms(value: Any) -> int | None:
    """Epoch ms from epoch ms or an ISO string; None for anything else."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and _ISO.match(value):
        try:
            return parse_iso_ms(value)
        except ValueError:
            return None
    return None


def when(value: Any) -> str:
    """`23 Nov 2026, 14:05 UTC`."""
    ms = to_ms(value)
    if ms is None:
        return DASH if value in (None, "") else str(value)
    return time.strftime("%-d %b %Y, %H:%M UTC", time.gmtime(ms / 1000))


def clock(value: Any) -> str:
    """`14:05` (UTC)."""
    ms = to_ms(value)
    if ms is None:
        return DASH
    return time.strftime("%H:%M", time.gmtime(ms / 1000))


def day(value: Any) -> str:
    ms = to_ms(value)
    if ms is None:
        return DASH
    return time.strftime("%-d %b %Y", time.gmtime(ms / 1000))


def iso(value: Any) -> str:
    """Machine form for <time datetime=...>."""
    ms = to_ms(value)
    if ms is None:
        return ""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ms / 1000))


def duration(ms: int | float) -> str:
    seconds = max(0, round(ms / 1000))
    if seconds < 60:
        return f"{seconds} s"
    minutes = round(seconds / 60)
    if minutes < 60:
        return f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return f"{hours} h {minutes} min" if minutes else f"{hours} h"
    return f"{round(hours / 24)} days"


def ago(value: Any, now_ms: int) -> str:
    """`just now`, `5 minutes ago`, `3 days ago`; an old date as a date."""
    ms = to_ms(value)
    if ms is None:
        return DASH
    seconds = (now_ms - ms) / 1000
    if seconds < -60:
        return "in the future: " + when(ms)
    if seconds < 60:
        return "just now"
    for size, unit in ((86_400, "day"), (3600, "hour"), (60, "minute")):
        if seconds >= size:
            count = int(seconds // size)
            if unit == "day" and count > 30:
                return day(ms)
            return f"{count} {unit}{'' if count == 1 else 's'} ago"
    return "just now"  # pragma: no cover - the loop always returns


def plain(value: Any, limit: int = 300) -> str:
    """Any JSON value as a short line of text for a table cell."""
    if isinstance(value, bool):
        return "Yes" if value else "No"
    if isinstance(value, int | float):
        return number(value)
    if not value:  # None, "", [], {} and the templates' undefined values
        return DASH
    if isinstance(value, str):
        text = when(value) if _ISO.match(value) else value
    elif isinstance(value, list):
        text = ", ".join(plain(item, limit) for item in value) if value else DASH
    elif isinstance(value, dict):
        text = "; ".join(f"{label(str(k))}: {plain(v, limit)}" for k, v in value.items())
    else:
        text = str(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def attribute(key: str, value: Any, currency: str) -> str:
    """A computed attribute for people: money as money, times as dates."""
    if key in MONEY_ATTRIBUTES:
        return money(value, currency)
    return plain(value)
