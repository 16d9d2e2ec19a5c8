"""What a message template sees about its reader: `message_context` reads the profile,
the cart joined to the catalog, the triggering product, recommendations, the coupon and
the shop's links, and says in which locale, currency and time zone to render.

Template context (every key always present):

================  ==========================================================================
profile           {id, first_name, last_name, name, email, phone, country, city, locale,
                  traits: {...}, computed: {...}} (computed without bookkeeping keys)
cart              [{product_id, name, image_url, url, price, currency, quantity,
                  line_total, sku, brand, category, variant, in_catalog, in_stock...}]
cart_total        float, in cart_currency (lines in other currencies converted by rate)
cart_currency     str
cart_count        number of items (sum of quantities)
product           the catalog product named by variables["product_id"], or None
recommendations   up to 4 products (see `recommend`)
coupon            {code, expires_at, discount, ...} from variables["coupon"], or None
free_shipping     {threshold, remaining, reached, currency}, or None without a threshold
shop              {name, url}
link, links       link(path_or_url, **utm): a shop URL with UTM and the coupon
unsubscribe_url   None here; delivery fills it in
variables         the message's variables as given
locale currency   how to render: the profile's, else the shop's defaults
timezone
now               the render time (epoch ms), for `{{ now|date }}`
channel journey   the channel and the journey key (or None)
================  ==========================================================================
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from shopkeeper.catalog import service as catalog
from shopkeeper.catalog.activity import DAY_MS
from shopkeeper.catalog.products import ProductError, locale_key, normalize_category
from shopkeeper.config import Settings
from shopkeeper.messaging import blocks
from shopkeeper.messaging.formatting import is_zone
from shopkeeper.profiles.values import as_currency, as_text
from shopkeeper.segments.audiences.fields import ProfileData, built_in_value
from shopkeeper.segments.audiences.members import profile_data
from shopkeeper.storage import tables as t

RECOMMENDATIONS = 4
# Popularity: the last 30 days of views, cart adds and orders, weighted as the profile
# reducers weigh interest (a purchase says more than a look).
POPULAR_DAYS = 30
_VIEW, _CART, _ORDER = 1, 3, 5
_PROFILE_FIELDS = ("first_name", "last_name", "name", "email", "phone", "country", "city")


class ProfileNotFound(LookupError):
    """The profile was erased (or never existed): there is nobody to write to."""


def message_context(
    conn: Connection,
    profile_id: int,
    *,
    settings: Settings,
    variables: Mapping[str, Any],
    now_ms: int,
    channel: str,
    journey_key: str | None = None,
) -> dict[str, Any]:
    """The template context for one message to one profile (see the module's table).
    A profile merged into another is read as the survivor. Raises ProfileNotFound."""
    survivor = _survivor(conn, profile_id)
    data = profile_data(conn, [survivor])[survivor] if survivor is not None else None
    if data is None or not data.exists:
        raise ProfileNotFound(f"profile {profile_id} does not exist")
    variables = dict(variables) if isinstance(variables, Mapping) else {}
    computed = {k: v for k, v in data.computed.items() if not k.startswith("_")}
    locale = _locale(data, settings.default_locale)
    currency = _currency(data, settings.shop_currency)
    timezone = _timezone(data, settings.default_timezone)

    cart = _cart(conn, computed, locale)
    in_cart = [line["product_id"] for line in cart]
    rates = settings.exchange_rates
    cart_total, cart_currency = blocks.cart_totals(cart, settings.shop_currency, rates)

    product = None
    wanted = variables.get("product_id")
    if isinstance(wanted, str | int) and not isinstance(wanted, bool) and str(wanted):
        row = catalog.get_product(conn, str(wanted))
        product = blocks.product_view(row, locale) if row is not None else None

    coupon = blocks.coupon_of(variables.get("coupon"))
    code = str(coupon["code"]) if coupon is not None else None
    link = blocks.make_link(settings.shop_url, channel, journey_key, code)
    return {
        "profile": _profile(data, computed, settings.default_phone_region),
        "cart": cart,
        "cart_total": cart_total,
        "cart_currency": cart_currency,
        "cart_count": sum(line["quantity"] for line in cart),
        "product": product,
        "recommendations": recommend(
            conn,
            computed,
            RECOMMENDATIONS,
            now_ms=now_ms,
            exclude=[*in_cart, *([product["product_id"]] if product else [])],
            locale=locale,
        ),
        "coupon": coupon,
        "free_shipping": blocks.free_shipping(
            settings.free_shipping_threshold,
            cart_total,
            cart_currency,
            settings.shop_currency,
            rates,
        ),
        "shop": {"name": settings.shop_name, "url": settings.shop_url},
        "link": link,
        "links": link,
        "unsubscribe_url": None,
        "variables": variables,
        "locale": locale,
        "currency": currency,
        "timezone": timezone,
        "now": now_ms,
        "channel": channel,
        "journey": journey_key,
    }


def _profile(
    data: ProfileData, computed: dict[str, Any], default_region: str | None
) -> dict[str, Any]:
    profile: dict[str, Any] = {"id": data.profile_id}
    for name in _PROFILE_FIELDS:
        profile[name] = built_in_value(name, data, default_region)
    profile["locale"] = built_in_value("locale", data, None)
    profile["traits"] = dict(data.traits)
    profile["computed"] = computed
    return profile


def _cart(conn: Connection, computed: Mapping[str, Any], locale: str) -> list[dict[str, Any]]:
    """The cart's lines joined to the catalog (one query for all of them)."""
    raw = computed.get("cart")
    keyed = [
        (as_text(line.get("product_id"), 200) if isinstance(line, Mapping) else None, line)
        for line in (raw if isinstance(raw, list) else [])
    ]
    ids = [pid for pid, _ in keyed if pid is not None]
    products = catalog.products_by_ids(conn, ids) if ids else {}
    lines = []
    for pid, line in keyed:
        shaped = blocks.cart_line(line, products.get(pid) if pid else None, locale)
        if shaped is not None:
            lines.append(shaped)
    return lines


def _survivor(conn: Connection, profile_id: int) -> int | None:
    row = conn.execute(
        sa.select(t.profiles.c.id, t.profiles.c.merged_into).where(t.profiles.c.id == profile_id)
    ).first()
    if row is None:
        return None
    return int(row.merged_into if row.merged_into is not None else row.id)


def _first(*values: Any) -> Any:
    for value in values:
        if value is not None:
            return value
    return None


def _tag(value: object) -> str | None:
    try:
        return locale_key(value) if isinstance(value, str) and value.strip() else None
    except ProductError:
        return None


def _locale(data: ProfileData, default: str) -> str:
    c, traits = data.computed, data.traits
    return _first(_tag(c.get("locale")), _tag(traits.get("locale")), _tag(default)) or "en"


def _currency(data: ProfileData, default: str) -> str:
    last_order = data.computed.get("last_order")
    return str(
        _first(
            as_currency(data.computed.get("currency")),
            as_currency(last_order.get("currency")) if isinstance(last_order, Mapping) else None,
            as_currency(data.traits.get("currency")),
            as_currency(default),
        )
        or "USD"
    )


def _timezone(data: ProfileData, default: str) -> str:
    for value in (data.computed.get("timezone"), data.traits.get("timezone"), default):
        if is_zone(value):
            return str(value).strip()
    return "UTC"


# -- recommendations ----------------------------------------------------------------------


def interest_category(computed: Mapping[str, Any]) -> str | None:
    """The category a person cares most about: the favourite (views, cart adds and
    purchases weighed), else the most viewed."""
    favorite = computed.get("favorite_category")
    candidates: list[object] = [favorite]
    viewed = computed.get("viewed_categories")
    if isinstance(viewed, Mapping):
        ranked = sorted(
            (
                (entry.get("count", 0), str(entry.get("last_at", "")), name)
                for name, entry in viewed.items()
                if isinstance(entry, Mapping) and isinstance(entry.get("count", 0), int | float)
            ),
            reverse=True,
        )
        candidates.extend(name for _, _, name in ranked[:1])
    for candidate in candidates:
        try:
            category = normalize_category(candidate)
        except ProductError:
            continue
        if category:
            return category
    return None


def _escape_like(text: str) -> str:
    return text.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _popular(
    conn: Connection, category: str | None, limit: int, exclude: Iterable[str], now_ms: int
) -> list[Mapping[str, Any]]:
    p, s = t.products, t.product_stats
    score = sa.func.sum(s.c.views * _VIEW + s.c.cart_adds * _CART + s.c.orders * _ORDER)
    popularity = (
        sa.select(s.c.product_id, score.label("score"))
        .where(s.c.day > now_ms // DAY_MS - POPULAR_DAYS)
        .group_by(s.c.product_id)
        .subquery()
    )
    query = (
        sa.select(p)
        .select_from(p.outerjoin(popularity, popularity.c.product_id == p.c.id))
        .where(p.c.deleted_at.is_(None))
        .where(sa.or_(p.c.stock_quantity.is_(None), p.c.stock_quantity > 0))
    )
    excluded = sorted(set(exclude))
    if excluded:
        query = query.where(p.c.id.not_in(excluded))
    if category is not None:
        lowered = sa.func.lower(p.c.category)
        query = query.where(
            sa.or_(
                lowered == category.lower(),
                lowered.like(_escape_like(category) + " > %", escape="\\"),
            )
        )
    query = query.order_by(sa.func.coalesce(popularity.c.score, 0).desc(), p.c.name, p.c.id).limit(
        limit
    )
    return [dict(row._mapping) for row in conn.execute(query)]


def recommend(
    conn: Connection,
    computed: Mapping[str, Any],
    limit: int,
    *,
    now_ms: int,
    exclude: Iterable[str] = (),
    locale: str | None = None,
) -> list[dict[str, Any]]:
    """Up to `limit` products for a person: the most popular (last 30 days) in stock in
    the category they care about most, topped up with the shop's most popular overall;
    never one in `exclude` (the cart, the triggering product). A simple strategy the
    recommendation engine replaces later, behind the same signature."""
    if limit <= 0:
        return []
    excluded = list(exclude)
    rows: list[Mapping[str, Any]] = []
    category = interest_category(computed)
    if category is not None:
        rows = _popular(conn, category, limit, excluded, now_ms)
    if len(rows) < limit:
        taken = [*excluded, *(row["id"] for row in rows)]
        rows += _popular(conn, None, limit - len(rows), taken, now_ms)
    return [blocks.product_view(row, locale) for row in rows]
