"""The names a condition may use, what each one refers to, and its type.

Profile scope (the top level of a condition): computed attributes, a few friendly
aliases, scores, consents, `known`, derived fields, and traits (`traits.x`, or a bare
name that is nothing else). Event scope (inside `where`): the event's properties (bare
names or `properties.x`), its context (`context.x`) and its product in the catalog
(`product.category`...). Pure.
"""

from __future__ import annotations

import difflib
import re
from typing import Literal

from shopkeeper.segments.lang.ast import Field

FieldType = Literal["number", "text", "time", "boolean", "list", "object", "any"]

_N: FieldType = "number"
_T: FieldType = "text"
_TIME: FieldType = "time"
_L: FieldType = "list"
_O: FieldType = "object"
COMPUTED: dict[str, FieldType] = {
    "events_count": _N, "first_seen_at": _TIME, "last_seen_at": _TIME,
    "sessions_count": _N, "page_views_count": _N, "track_count": _N,
    "orders_count": _N, "total_revenue": _N, "average_order_value": _N,
    "max_order_value": _N, "first_order_at": _TIME, "last_order_at": _TIME,
    "last_order": _O, "refunds_count": _N, "refunded_revenue": _N, "cancelled_count": _N,
    "cart": _L, "cart_value": _N, "cart_items_count": _N, "cart_updated_at": _TIME,
    "cart_id": _T, "checkout_started_at": _TIME, "last_checkout_step": _O,
    "payment_info_entered_at": _TIME, "product_views_count": _N, "viewed_products": _O,
    "viewed_categories": _O, "favorite_category": _T, "wishlist": _L,
    "searches_count": _N, "last_search": _O, "recent_searches": _L, "last_filters": _O,
    "coupons_applied": _L, "last_coupon": _O, "reviews_count": _N, "last_review": _O,
    "product_clicks_count": _N, "shares_count": _N, "country": _T, "city": _T,
    "locale": _T, "timezone": _T, "device_types": _L, "last_device_type": _T,
    "first_source": _O, "last_source": _O, "source_kinds": _L,
}  # fmt: skip

# Friendly names for what marketers ask about most.
ALIASES: dict[str, tuple[Field, FieldType]] = {
    "device": (Field("computed", ("last_device_type",), "device"), _T),
    "source": (Field("computed", ("last_source", "kind"), "source"), _T),
    "email": (Field("trait", ("email",), "email"), _T),
    "phone": (Field("trait", ("phone",), "phone"), _T),
    "first_name": (Field("trait", ("firstName",), "first_name"), _T),
    "last_name": (Field("trait", ("lastName",), "last_name"), _T),
    "name": (Field("trait", ("name",), "name"), _T),
    "birthday": (Field("trait", ("birthday",), "birthday"), _TIME),
}

SCORES: dict[str, FieldType] = {
    "rfm_recency": _N, "rfm_frequency": _N, "rfm_monetary": _N, "rfm_segment": _T,
    "lead_score": _N,
}  # fmt: skip

DERIVED: dict[str, FieldType] = {"funnel_stage": _T}

CHANNELS = ("email", "sms", "whatsapp", "push", "in_app")
DEFAULT_PURPOSE = "marketing"

PRODUCT: dict[str, FieldType] = {
    "id": _T, "sku": _T, "name": _T, "category": _T, "brand": _T, "currency": _T,
    "price": _N, "sale_price": _N, "stock_quantity": _N,
}  # fmt: skip

KNOWN_NAMES = sorted(
    [*COMPUTED, *ALIASES, *SCORES, *DERIVED, "known", "consent.email", "traits.<name>"]
)

_PART = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")


class UnknownField(ValueError):
    pass


def _check_parts(parts: list[str], name: str) -> None:
    for part in parts:
        if not _PART.match(part):
            raise UnknownField(
                f'"{name}" is not a field name: each part of a name is letters, digits and '
                "underscores, starting with a letter"
            )


def profile_field(name: str) -> tuple[Field, FieldType]:
    """What a name means at the top level of a condition."""
    parts = name.split(".")
    _check_parts(parts, name)
    head, rest = parts[0], tuple(parts[1:])
    if head == "traits" and rest:
        return Field("trait", rest, name), "any"
    if head == "computed" and rest:
        return Field("computed", rest, name), COMPUTED.get(rest[0], "any") if len(
            rest
        ) == 1 else "any"
    if head == "consent":
        if not rest or len(rest) > 2:
            raise UnknownField(
                f'"{name}": write consent.CHANNEL (one of {", ".join(CHANNELS)}), '
                "optionally with a purpose: consent.email.advertising"
            )
        if rest[0] not in CHANNELS:
            raise UnknownField(
                f'"{rest[0]}" is not a channel; consent is kept for {", ".join(CHANNELS)}'
            )
        purpose = rest[1] if len(rest) == 2 else DEFAULT_PURPOSE
        return Field("consent", (rest[0], purpose), name), "boolean"
    if head in COMPUTED:
        return Field("computed", (head, *rest), name), COMPUTED[head] if not rest else "any"
    if head in ALIASES and not rest:
        return ALIASES[head]
    if head in SCORES and not rest:
        return Field("score", (head,), name), SCORES[head]
    if head in DERIVED and not rest:
        return Field("derived", (head,), name), DERIVED[head]
    if head == "known" and not rest:
        return Field("known", (), name), "boolean"
    # Anything else is a trait, unless it looks like a typo of a field we know.
    close = difflib.get_close_matches(
        head, [*COMPUTED, *ALIASES, *SCORES, *DERIVED, "known"], n=1, cutoff=0.85
    )
    if close and close[0] != head:
        raise UnknownField(
            f'There is no field "{head}". Did you mean {close[0]}? (For a trait of that '
            f"name, write traits.{name}.)"
        )
    return Field("trait", tuple(parts), name), "any"


def event_field(name: str) -> tuple[Field, FieldType]:
    """What a name means inside an event's `where`."""
    parts = name.split(".")
    _check_parts(parts, name)
    head, rest = parts[0], tuple(parts[1:])
    if head == "properties" and rest:
        return Field("property", rest, name), "any"
    if head == "context" and rest:
        return Field("context", rest, name), "any"
    if head == "product":
        if len(rest) != 1 or rest[0] not in PRODUCT:
            raise UnknownField(
                f'"{name}": the product fields are '
                + ", ".join(f"product.{key}" for key in PRODUCT)
            )
        return Field("product", rest, name), PRODUCT[rest[0]]
    return Field("property", tuple(parts), name), "any"
