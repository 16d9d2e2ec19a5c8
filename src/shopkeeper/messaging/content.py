"""What a message template sees about its reader: `message_context` reads the profile,
the cart joined to the catalog, the triggering product, recommendations, the coupon and
the shop's links, and says in which locale, currency and time zone to render.
`ContextLoader` builds the same contexts for a batch of messages with a few queries for
all of them (delivery uses it).

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
recommendations   up to 4 products (see `recommend`); [] when built with
                  recommendations=False (delivery does so for templates that never
                  read the key, see templates.reads)
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
# Ids per IN (...) list when a batch is prefetched.
_CHUNK = 500


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
    return ContextLoader(conn, settings, now_ms).context(
        profile_id, variables=variables, channel=channel, journey_key=journey_key
    )


# Popular products already read: (category, limit, sorted exclusions) -> rows.
PopularCache = dict[tuple[str | None, int, tuple[str, ...]], list[Mapping[str, Any]]]


class ContextLoader:
    """Message contexts for many messages at one moment with few queries: `prefetch`
    reads every person (their survivor and profile), their carts' products and the
    triggering products for a whole batch at once, then `context` builds each one from
    memory (reading on demand whatever was not prefetched). Popular products for
    recommendations are read once per category and exclusions."""

    def __init__(self, conn: Connection, settings: Settings, now_ms: int) -> None:
        self.conn = conn
        self.settings = settings
        self.now_ms = now_ms
        # Asked-for profile id -> the survivor's data (None: no such profile).
        self._people: dict[int, ProfileData | None] = {}
        # Product id -> the catalog's row (None: not in the catalog).
        self._products: dict[str, dict[str, Any] | None] = {}
        self.popular: PopularCache = {}

    def prefetch(self, profile_ids: Iterable[int], product_ids: Iterable[str] = ()) -> None:
        """Read these people and products (and the products in their carts) now."""
        asked = sorted(set(profile_ids) - set(self._people))
        survivors: dict[int, int] = {}
        p = t.profiles
        for start in range(0, len(asked), _CHUNK):
            for row in self.conn.execute(
                sa.select(p.c.id, p.c.merged_into).where(p.c.id.in_(asked[start : start + _CHUNK]))
            ):
                survivors[int(row.id)] = int(
                    row.merged_into if row.merged_into is not None else row.id
                )
        found = profile_data(self.conn, sorted(set(survivors.values()))) if survivors else {}
        wanted = list(product_ids)
        for pid in asked:
            survivor = survivors.get(pid)
            data = found.get(survivor) if survivor is not None else None
            self._people[pid] = data
            if data is not None and data.exists:
                wanted.extend(_cart_ids(data.computed.get("cart")))
        self._load_products(wanted)

    def _person(self, profile_id: int) -> ProfileData | None:
        if profile_id not in self._people:
            self.prefetch([profile_id])
        return self._people[profile_id]

    def _load_products(self, ids: Iterable[str]) -> None:
        missing = [pid for pid in dict.fromkeys(ids) if pid not in self._products]
        if not missing:
            return
        rows = catalog.products_by_ids(self.conn, missing)
        for pid in missing:
            self._products[pid] = rows.get(pid)

    def _product(self, product_id: str) -> dict[str, Any] | None:
        if product_id not in self._products:
            self._products[product_id] = catalog.get_product(self.conn, product_id)
        return self._products[product_id]

    def context(
        self,
        profile_id: int,
        *,
        variables: Mapping[str, Any],
        channel: str,
        journey_key: str | None = None,
        recommendations: bool = True,
    ) -> dict[str, Any]:
        """The template context for one message (see the module's table); with
        recommendations=False its recommendations are [] (fill them in with
        `recommend` when the template reads them). Raises ProfileNotFound."""
        settings = self.settings
        data = self._person(profile_id)
        if data is None or not data.exists:
            raise ProfileNotFound(f"profile {profile_id} does not exist")
        variables = dict(variables) if isinstance(variables, Mapping) else {}
        computed = {k: v for k, v in data.computed.items() if not k.startswith("_")}
        locale = _locale(data, settings.default_locale)
        currency = _currency(data, settings.shop_currency)
        timezone = _timezone(data, settings.default_timezone)

        cart = self._cart(computed, locale)
        rates = settings.exchange_rates
        cart_total, cart_currency = blocks.cart_totals(cart, settings.shop_currency, rates)

        product = None
        wanted = variables.get("product_id")
        if isinstance(wanted, str | int) and not isinstance(wanted, bool) and str(wanted):
            row = self._product(str(wanted))
            product = blocks.product_view(row, locale) if row is not None else None

        coupon = blocks.coupon_of(variables.get("coupon"))
        code = str(coupon["code"]) if coupon is not None else None
        link = blocks.make_link(settings.shop_url, channel, journey_key, code)
        context = {
            "profile": _profile(data, computed, settings.default_phone_region),
            "cart": cart,
            "cart_total": cart_total,
            "cart_currency": cart_currency,
            "cart_count": sum(line["quantity"] for line in cart),
            "product": product,
            "recommendations": [],
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
            "now": self.now_ms,
            "channel": channel,
            "journey": journey_key,
        }
        if recommendations:
            context["recommendations"] = self.recommend(context)
        return context

    def recommend(self, context: Mapping[str, Any]) -> list[dict[str, Any]]:
        """The recommendations for a context `context` built: never a product in the
        cart nor the triggering product."""
        product = context["product"]
        return recommend(
            self.conn,
            context["profile"]["computed"],
            RECOMMENDATIONS,
            now_ms=self.now_ms,
            exclude=[
                *(line["product_id"] for line in context["cart"]),
                *([product["product_id"]] if product else []),
            ],
            locale=context["locale"],
            cache=self.popular,
        )

    def _cart(self, computed: Mapping[str, Any], locale: str) -> list[dict[str, Any]]:
        """The cart's lines joined to the catalog (one query for all that are not read
        yet)."""
        raw = computed.get("cart")
        keyed = [
            (as_text(line.get("product_id"), 200) if isinstance(line, Mapping) else None, line)
            for line in (raw if isinstance(raw, list) else [])
        ]
        self._load_products(pid for pid, _ in keyed if pid is not None)
        lines = []
        for pid, line in keyed:
            shaped = blocks.cart_line(line, self._products.get(pid) if pid else None, locale)
            if shaped is not None:
                lines.append(shaped)
        return lines


def _cart_ids(raw: object) -> list[str]:
    """The product ids a cart (computed["cart"]) names."""
    if not isinstance(raw, list):
        return []
    ids = (as_text(line.get("product_id"), 200) for line in raw if isinstance(line, Mapping))
    return [pid for pid in ids if pid is not None]


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
    cache: PopularCache | None = None,
) -> list[dict[str, Any]]:
    """Up to `limit` products for a person: the most popular (last 30 days) in stock in
    the category they care about most, topped up with the shop's most popular overall;
    never one in `exclude` (the cart, the triggering product). A simple strategy the
    recommendation engine replaces later, behind the same signature. `cache` keeps
    the popular products read (for one `now_ms`), for many people at once."""
    if limit <= 0:
        return []
    excluded = list(exclude)
    rows: list[Mapping[str, Any]] = []
    category = interest_category(computed)
    if category is not None:
        rows = _popular_cached(conn, category, limit, excluded, now_ms, cache)
    if len(rows) < limit:
        taken = [*excluded, *(row["id"] for row in rows)]
        rows = [*rows, *_popular_cached(conn, None, limit - len(rows), taken, now_ms, cache)]
    return [blocks.product_view(row, locale) for row in rows]


def _popular_cached(
    conn: Connection,
    category: str | None,
    limit: int,
    exclude: Iterable[str],
    now_ms: int,
    cache: PopularCache | None,
) -> list[Mapping[str, Any]]:
    """`_popular`, read once per (category, limit, exclusions) when given a cache (for
    one moment: `now_ms` must not change while the cache is in use)."""
    if cache is None:
        return _popular(conn, category, limit, exclude, now_ms)
    key = (category, limit, tuple(sorted(set(exclude))))
    found = cache.get(key)
    if found is None:
        found = cache[key] = _popular(conn, category, limit, key[2], now_ms)
    return found
