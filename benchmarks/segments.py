"""Counting segments over a demo-like population: SQLite and PostgreSQL beside DuckDB.

    .venv/bin/python benchmarks/segments.py [--sizes 100000,1000000] [--database both]
        [--postgres URL] [--runs 5]
    .venv/bin/python benchmarks/segments.py --sizes 2000 --runs 1     # smoke run, seconds

For each size, one child process generates the population (seeded: the same rows every
time) and writes it, in one pass, into a fresh SQLite file (under benchmarks/results/), a
scratch PostgreSQL database (created beside --postgres, dropped at the end) and CSV files
for DuckDB. Then, each in its own child process:

- PostgreSQL and SQLite: the segments (the three below and the two the nested one
  names) are saved as a marketer saves them, and the product's segment indexes are
  built for them as its scheduler would (`segments.indexes.sync`, PostgreSQL only; the
  time it takes is reported). Each segment's condition is then parsed, compiled with
  compile_sql and counted the way the product runs it (`SELECT COUNT(*) FROM profiles p
  WHERE p.merged_into IS NULL AND (<sql>)` through shopkeeper's Database, with
  `membership.for_population`); one warm-up, then the median of --runs counts.
- DuckDB (the baseline): the CSV files loaded into an in-memory DuckDB (every thread of
  the machine), with flattened columns (country, loyalty_tier, orders_count... as
  columns; an event's category as a column), and a hand-written query per segment that
  counts the same people; warm-up and median likewise. The counts must agree with the
  product's (the run fails otherwise).

The population (docs/benchmarks.md, "Segments", says more): `size` live profiles plus one
absorbed (merged) profile for every 8, as the demo store's people look after the pipeline
has applied their events: half anonymous visitors, the rest customers with traits
(names, email, phone, address; loyalty club members with a tier), computed attributes in
the reducers' shapes (counters, orders and revenue, country and locale, devices, viewed
products and categories, the cart, bookkeeping keys), marketing consents, and about ten
events each over the last 90 days (identify, pages, Product Viewed, Product Added, Order
Completed, with the demo's Segment payloads), in the order the pipeline would have
written them (by time, so one profile's events are spread over the table). The catalog
is the demo's.

At 1M profiles the SQLite file (18 GB) and the PostgreSQL database (16 GB) together exceed
the memory of a 23 GB machine, so counts partly read from disk and vary between runs;
`--database` measures one of them alone.

Results: a table on stdout and benchmarks/results/segments.json. The file is organised as
population, segments, measurement, driver: another section (for example real-time
re-evaluation) takes the same populated databases (`Targets`) and adds its rows.
"""

from __future__ import annotations

import argparse
import bisect
import csv
import itertools
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from shopkeeper.timeutil import ms_to_iso

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
NOW_MS = 1_795_449_600_000  # 2026-11-23T12:00:00Z (the tests' clock)
MINUTE = 60_000
DAY = 86_400_000
WINDOW_DAYS = 90
DEFAULT_PG = "postgresql://postgres@127.0.0.1:5432/test"

# =========================================================================================
# The segments
# =========================================================================================


@dataclass(frozen=True)
class Segment:
    name: str
    condition: str  # the segment language, as a marketer writes it
    duckdb: str  # the hand-written equivalent over the flattened DuckDB tables


# Segments the nested one refers to (`in segment "..."`), passed to compile_sql.
NAMED = {
    "repeat_buyers_email": "orders_count >= 2 and consent.email",
    "browsing_now": 'did "Product Viewed" within 14 days',
}

SEGMENTS = (
    Segment(
        "trait-only",
        'country in ("NO", "RO") and loyalty_tier in ("gold", "platinum") and total_revenue >= 500',
        """
        SELECT count(*) FROM profiles
        WHERE merged_into IS NULL AND country IN ('NO', 'RO')
          AND loyalty_tier IN ('gold', 'platinum') AND total_revenue >= 500
        """,
    ),
    Segment(
        "event window",
        'did "Product Viewed" at least 3 times within 7 days where category = '
        '"Living room > Sofas"',
        f"""
        SELECT count(*) FROM profiles p JOIN (
            SELECT profile_id FROM events
            WHERE status = 1 AND type = 'track' AND event = 'Product Viewed'
              AND ts >= {NOW_MS - 7 * DAY} AND category = 'Living room > Sofas'
            GROUP BY profile_id HAVING count(*) >= 3
        ) e ON e.profile_id = p.id
        WHERE p.merged_into IS NULL
        """,
    ),
    Segment(
        "nested",
        'in segment "repeat_buyers_email" and not in segment "browsing_now"',
        f"""
        SELECT count(*) FROM profiles p
        LEFT JOIN consents ce
          ON ce.profile_id = p.id AND ce.channel = 'email' AND ce.purpose = 'marketing'
        LEFT JOIN consents ca
          ON ca.profile_id = p.id AND ca.channel = '*' AND ca.purpose = 'marketing'
        WHERE p.merged_into IS NULL AND p.orders_count >= 2
          AND coalesce(ce.granted, ca.granted)
          AND NOT EXISTS (
            SELECT 1 FROM events e
            WHERE e.profile_id = p.id AND e.status = 1 AND e.type = 'track'
              AND e.event = 'Product Viewed' AND e.ts >= {NOW_MS - 14 * DAY})
        """,
    ),
)


def compiled_count(segment: Segment, dialect: str) -> tuple[str, dict[str, Any]]:
    """The product's counting query for a segment: compile_sql as membership runs it."""
    from shopkeeper.segments.lang.parser import parse
    from shopkeeper.segments.lang.to_sql import compile_sql

    named = {key: parse(text) for key, text in NAMED.items()}
    compiled = compile_sql(parse(segment.condition), dialect, NOW_MS, named)  # type: ignore[arg-type]
    sql = f"SELECT COUNT(*) FROM profiles p WHERE p.merged_into IS NULL AND ({compiled.sql})"
    return sql, compiled.params


# =========================================================================================
# The population
# =========================================================================================

_TIERS = ("bronze", "silver", "gold", "platinum")
_AGENTS = {
    "desktop": (
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
        "Chrome/125.0.0.0 Safari/537.36",
        "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like "
        "Gecko) Version/17.4 Safari/605.1.15",
    ),
    "mobile": (
        "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, "
        "like Gecko) Version/17.4 Mobile/15E148 Safari/604.1",
        "Mozilla/5.0 (Linux; Android 14; SM-S918B) AppleWebKit/537.36 (KHTML, like Gecko) "
        "Chrome/125.0.0.0 Mobile Safari/537.36",
    ),
    "tablet": (
        "Mozilla/5.0 (iPad; CPU OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like "
        "Gecko) Version/17.4 Mobile/15E148 Safari/604.1",
    ),
}
_LIBRARY = '{"name":"analytics.js","version":"next-1.70.0"}'
_SHOP = "https://baanliving.example"


class _Person:
    """One live profile: who it is (planned first), then what its events made of it."""

    __slots__ = (
        "add_rate",
        "agent",
        "anonymous_id",
        "cart",
        "cart_at",
        "cats",
        "city",
        "country",
        "email_opt",
        "events",
        "fav",
        "first_ms",
        "first_order",
        "form",
        "kind",
        "last_ms",
        "last_order",
        "loyalty",
        "max_order",
        "orders",
        "pages",
        "pid",
        "prior",
        "revenue",
        "sessions",
        "sms_opt",
        "star_marketing",
        "tracks",
        "viewed",
        "views",
    )

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.events = self.pages = self.tracks = self.views = self.sessions = 0
        self.orders = 0
        self.revenue = 0.0
        self.max_order = 0.0
        self.first_ms = self.last_ms = 0
        self.first_order: int | None = None
        self.last_order: tuple[int, str, float, str, int] | None = None
        self.viewed: dict[int, list[int]] = {}
        self.cats: dict[str, list[Any]] = {}
        self.cart: list[int] = []
        self.cart_at = 0


class Population:
    """The seeded population of one size: planned first (people and their visits), then
    rendered as rows in the order the pipeline would have written them. Rows come from
    `write`, which feeds every sink the same chunks."""

    def __init__(self, size: int, seed: int = 1) -> None:
        from shopkeeper.demo.catalog import generate_catalog
        from shopkeeper.demo.emit import ShopCatalog
        from shopkeeper.demo.locales import COUNTRIES

        self.size = size
        self.merged = size // 8
        self.products = generate_catalog(random.Random(f"segments:{seed}:catalog"))
        self.shop = ShopCatalog(random.Random(f"segments:{seed}:shop"), self.products)
        self._category_cum = list(itertools.accumulate(self.shop.category_weights))
        self.rng = rng = random.Random(f"segments:{seed}:people")
        self._fragments: dict[Any, str] = {}
        start = NOW_MS - WINDOW_DAYS * DAY
        span = WINDOW_DAYS * DAY - 3 * 3_600_000
        countries = list(COUNTRIES)
        weights = [c.weight for c in countries]
        people: list[_Person] = []
        visits: list[tuple[int, int]] = []
        for pid in range(1, size + 1):
            person = _Person(pid)
            person.country = country = rng.choices(countries, weights)[0]
            city = rng.choices([c for c, _ in country.cities], [w for _, w in country.cities])
            person.city = city[0]
            roll = rng.random()
            person.kind = "anonymous" if roll < 0.5 else ("store" if roll < 0.6 else "registered")
            fav: list[int] = []
            while len(fav) < 2:
                pick = self._category(rng)
                if pick not in fav:
                    fav.append(pick)
            person.fav = fav
            r = rng.random()
            form = "mobile" if r < country.mobile_share else ("tablet" if r < 0.72 else "desktop")
            person.form = form
            person.agent = rng.choice(_AGENTS[form])
            person.anonymous_id = str(uuid.UUID(int=rng.getrandbits(128), version=4))
            person.add_rate = rng.betavariate(2.0, 3.0) * 0.6
            known = person.kind != "anonymous"
            person.email_opt = known and rng.random() < country.email_opt_in
            person.sms_opt = known and rng.random() < country.sms_opt_in
            # Some consent managers answer for every channel at once.
            person.star_marketing = known and rng.random() < 0.1
            person.loyalty = person.kind == "store" or (known and rng.random() < 0.3)
            person.prior = (0, 0.0, 0)
            if known and rng.random() < 0.35:  # orders before the 90 days
                count = 1
                while rng.random() < 0.45:
                    count += 1
                last = start - rng.randrange(640 * DAY)
                person.prior = (count, round(count * rng.uniform(30, 400), 2), last)
            extra = 2.6 if known else 0.7
            n = 1
            while rng.random() < extra / (1 + extra):
                n += 1
            for _ in range(n):
                visits.append((start + rng.randrange(span), pid))
            people.append(person)
        visits.sort()
        self.people = people
        self.visits = visits

    # -- rendering ------------------------------------------------------------------------

    def _category(self, rng: random.Random) -> int:
        """A category by popularity (the demo's weights)."""
        cum = self._category_cum
        return bisect.bisect(cum, rng.random() * cum[-1])

    def _pick(self, rng: random.Random, category: int) -> int:
        """A product of the category, best sellers first (the demo's Zipf-like weights)."""
        cum = self.shop.cum_weights[category]
        return self.shop.by_category[category][bisect.bisect(cum, rng.random() * cum[-1])]

    def _context(self, person: _Person) -> str:
        key = ("ctx", person.country.code, person.city.name, person.agent)
        text = self._fragments.get(key)
        if text is None:
            c = person.country
            text = (
                f'{{"locale":"{c.locale}","timezone":"{person.city.timezone}",'
                f'"location":{json.dumps({"country": c.code, "city": person.city.name})},'
                f'"library":{_LIBRARY},"userAgent":"{person.agent}","ip":"127.0.0.1"'
            )
            self._fragments[key] = text
        return text

    def _product(self, index: int, person: _Person) -> tuple[str, str]:
        """(properties, context.page) of a product as the demo's events carry it."""
        key = ("product", index, person.country.code)
        props = self._fragments.get(key)
        if props is None:
            item = dict(self.shop.item(index, person.country))
            item["quantity"] = 1
            props = json.dumps(item, ensure_ascii=False, separators=(",", ":"))
            lang = person.country.locale[:2]
            pid = item["product_id"]
            page = json.dumps(
                {
                    "path": f"/{lang}/p/{pid}",
                    "url": f"{_SHOP}/{lang}/p/{pid}",
                    "title": f"{item['name']} | Baan Living",
                    "referrer": f"{_SHOP}/{lang}/search?q=",
                    "search": "",
                },
                ensure_ascii=False,
                separators=(",", ":"),
            )
            self._fragments[key] = props
            self._fragments[("page", index, person.country.code)] = page
        return props, self._fragments[("page", index, person.country.code)]

    def _traits(self, person: _Person) -> dict[str, Any]:
        if person.kind == "anonymous":
            return {}
        rng = random.Random(person.pid)
        country = person.country
        female = rng.random() < 0.56
        first = rng.choice(country.female if female else country.male)
        last = rng.choice(country.family)
        name = f"{last[0]}{first[0]}" if country.family_first else f"{first[0]} {last[0]}"
        traits: dict[str, Any] = {
            "email": f"{first[1]}.{last[1]}{person.pid}@mail.example".lower().replace(" ", ""),
            "firstName": first[0],
            "lastName": last[0],
            "name": name,
            "gender": "female" if female else "male",
            "createdAt": "2025-11-26T15:25:22.175Z",
            "address": {"city": person.city.local, "country": country.code},
            "email_opt_in": person.email_opt,
            "phone": f"+{country.calling_code}9{person.pid:08d}",
            "sms_opt_in": person.sms_opt,
        }
        if rng.random() < 0.6:
            traits["birthday"] = f"{rng.randint(1950, 2006)}-{rng.randint(1, 12):02d}-" + (
                f"{rng.randint(1, 28):02d}"
            )
        if person.loyalty:
            orders = person.orders + person.prior[0]
            traits["loyalty_tier"] = _TIERS[min(orders // 2, 3)]
            traits["loyalty_points"] = 120 * orders + rng.randint(0, 99)
            traits["preferred_store"] = rng.choice(country.stores)
        return traits

    def _visit(self, at: int, person: _Person, seq: int) -> list[tuple[Any, ...]]:
        """One visit's events: (seq, type, event, ts, user id, anonymous id, profile id,
        payload, category, product id, revenue)."""
        rng, shop = self.rng, self.shop
        known = person.kind != "anonymous"
        country = person.country
        out: list[tuple[Any, ...]] = []
        logged_in = known and rng.random() < 0.7
        user = f"{1_000_000 + person.pid}" if logged_in else None
        ctx = self._context(person)
        tail = f',"anonymousId":"{person.anonymous_id}"' + (f',"userId":"{user}"' if user else "")

        def emit(kind: str, name: str | None, body: str, cat: Any, prod: Any, rev: Any) -> None:
            nonlocal at
            iso = _iso(at)
            payload = (
                f'{{"type":"{kind}",{body},"messageId":"{_message_id(seq + len(out))}",'
                f'"timestamp":"{iso}"{tail},"originalTimestamp":"{iso}",'
                f'"receivedAt":"{iso}"}}'
            )
            out.append(
                (
                    seq + len(out),
                    kind,
                    name,
                    at,
                    user,
                    person.anonymous_id,
                    person.pid,
                    payload,
                    cat,
                    prod,
                    rev,
                )
            )
            person.events += 1
            if kind == "page":
                person.pages += 1
            elif kind == "track":
                person.tracks += 1
            at += rng.randrange(20_000, 120_000)

        if person.sessions == 0:
            person.first_ms = at
        person.sessions += 1
        if known and person.sessions == 1:
            traits = json.dumps(self._traits(person), ensure_ascii=False, separators=(",", ":"))
            emit("identify", None, f'"traits":{traits},"context":{ctx}}}', None, None, None)
        n = 1
        while rng.random() < 0.55:
            n += 1
        viewed: list[int] = []
        for i in range(n):
            roll = rng.random()
            cat = (
                person.fav[0]
                if roll < 0.55
                else (person.fav[1] if roll < 0.75 else self._category(rng))
            )
            index = self._pick(rng, cat)
            props, page = self._product(index, person)
            if i == 0:
                emit(
                    "page",
                    "Product",
                    f'"name":"Product","properties":{page},"context":{ctx}}}',
                    None,
                    None,
                    None,
                )
            category = self.products[index]["category"]
            emit(
                "track",
                "Product Viewed",
                f'"event":"Product Viewed","properties":{props},"context":{ctx},"page":{page}}}',
                category,
                self.products[index]["id"],
                None,
            )
            viewed.append(index)
            person.views += 1
            seen = person.viewed.get(index)
            if seen is None:
                if len(person.viewed) >= 20:
                    del person.viewed[next(iter(person.viewed))]
                person.viewed[index] = [1, at]
            else:
                seen[0] += 1
                seen[1] = at
            cstat = person.cats.setdefault(category, [0, 0])
            cstat[0] += 1
            cstat[1] = at
        if rng.random() < person.add_rate:
            index = viewed[-1]
            props, page = self._product(index, person)
            emit(
                "track",
                "Product Added",
                f'"event":"Product Added","properties":{props},"context":{ctx},"page":{page}}}',
                self.products[index]["category"],
                self.products[index]["id"],
                None,
            )
            person.cart.append(index)
            person.cart_at = at
            if known and rng.random() < 0.45:
                lines = [shop.item(i, country) for i in person.cart]
                total = round(sum(line["price"] for line in lines), 2)
                order_id = f"{country.code}{2_000_000 + seq}"
                props = json.dumps(
                    {
                        "order_id": order_id,
                        "total": total,
                        "revenue": total,
                        "currency": country.currency,
                        "products": [{**line, "quantity": 1} for line in lines],
                    },
                    ensure_ascii=False,
                    separators=(",", ":"),
                )
                emit(
                    "track",
                    "Order Completed",
                    f'"event":"Order Completed","properties":{props},"context":{ctx}}}',
                    None,
                    None,
                    total,
                )
                usd = round(total / country.per_usd, 2)
                person.orders += 1
                person.revenue += usd
                person.max_order = max(person.max_order, usd)
                if person.first_order is None:
                    person.first_order = at
                person.last_order = (at, order_id, total, country.currency, len(lines))
                person.cart = []
        person.last_ms = at
        return out

    def events(self) -> Iterator[list[tuple[Any, ...]]]:
        """Chunks of rendered events, in time order (the event log's seq order)."""
        people = self.people
        chunk: list[tuple[Any, ...]] = []
        seq = 1
        for at, pid in self.visits:
            rows = self._visit(at, people[pid - 1], seq)
            seq += len(rows)
            chunk += rows
            if len(chunk) >= 20_000:
                yield chunk
                chunk = []
        if chunk:
            yield chunk

    def _computed(self, person: _Person) -> dict[str, Any]:
        country = person.country
        c: dict[str, Any] = {
            "events_count": person.events,
            "first_seen_at": _iso(person.first_ms),
            "last_seen_at": _iso(person.last_ms),
            "sessions_count": person.sessions,
            "page_views_count": person.pages,
            "track_count": person.tracks,
        }
        prior_n, prior_rev, prior_last = person.prior
        orders = person.orders + prior_n
        if orders:
            revenue = round(person.revenue + prior_rev, 2)
            c["orders_count"] = orders
            c["total_revenue"] = revenue
            c["average_order_value"] = round(revenue / orders, 2)
            c["max_order_value"] = round(max(person.max_order, prior_rev / max(prior_n, 1)), 2)
            first = prior_last if prior_n else person.first_order
            c["first_order_at"] = _iso(first or 0)
            if person.last_order is not None:
                at, order_id, total, currency, count = person.last_order
                c["last_order_at"] = _iso(at)
                c["last_order"] = {
                    "order_id": order_id,
                    "revenue": total,
                    "currency": currency,
                    "at": _iso(at),
                    "products_count": count,
                }
            else:
                c["last_order_at"] = _iso(prior_last)
            c["refunds_count"] = 0
            c["refunded_revenue"] = 0.0
            c["cancelled_count"] = 0
        last = _iso(person.last_ms)
        c["_at"] = {
            key: last
            for key in (
                "city",
                "locale",
                "timezone",
                "last_device_type",
                "first_source",
                "last_source",
            )
        }
        c["country"] = country.code
        c["city"] = person.city.name
        c["locale"] = country.locale
        c["timezone"] = person.city.timezone
        c["device_types"] = [person.form]
        c["last_device_type"] = person.form
        source = {"name": "web shop", "kind": "web"}
        c["first_source"] = c["last_source"] = source
        c["source_kinds"] = ["web"]
        c["product_views_count"] = person.views
        viewed = {}
        for index, (count, at) in person.viewed.items():
            item = self.shop.item(index, country)
            viewed[item["product_id"]] = {
                "product_id": item["product_id"],
                "count": count,
                "last_at": _iso(at),
                "name": item["name"],
                "category": item["category"],
                "brand": item["brand"],
                "price": item["price"],
                "currency": item["currency"],
                "url": item["url"],
                "image_url": item["image_url"],
            }
        c["viewed_products"] = viewed
        c["viewed_categories"] = {
            cat: {"count": n, "last_at": _iso(at)} for cat, (n, at) in person.cats.items()
        }
        if person.cats:
            c["favorite_category"] = max(person.cats.items(), key=lambda kv: kv[1])[0]
        if person.cart:
            lines = [self.shop.item(i, country) for i in person.cart]
            c["cart"] = [{**line, "quantity": 1} for line in lines]
            c["cart_value"] = round(sum(line["price"] for line in lines), 2)
            c["cart_items_count"] = len(lines)
            c["cart_updated_at"] = _iso(person.cart_at)
        return c

    def profiles(self) -> Iterator[list[tuple[Any, ...]]]:
        """Chunks of (id, merged_into, is_known, display_name, traits, computed, created_at,
        updated_at) after `events` (computed attributes come from the events): the live
        profiles, then the absorbed ones."""
        chunk: list[tuple[Any, ...]] = []
        for person in self.people:
            traits = self._traits(person)
            chunk.append(
                (
                    person.pid,
                    None,
                    person.kind != "anonymous",
                    traits.get("name"),
                    traits,
                    self._computed(person),
                    person.first_ms,
                    person.last_ms,
                )
            )
            if len(chunk) >= 10_000:
                yield chunk
                chunk = []
        rng = random.Random(f"segments:merged:{self.size}")
        for offset in range(self.merged):
            pid = self.size + 1 + offset
            survivor = rng.randint(1, self.size)
            computed = {"events_count": 0, "country": self.people[survivor - 1].country.code}
            chunk.append(
                (pid, survivor, False, None, {}, computed, NOW_MS - 30 * DAY, NOW_MS - 30 * DAY)
            )
            if len(chunk) >= 10_000:
                yield chunk
                chunk = []
        if chunk:
            yield chunk

    def consents(self) -> list[tuple[Any, ...]]:
        """(profile_id, channel, purpose, granted) of the live profiles."""
        rows: list[tuple[Any, ...]] = []
        for person in self.people:
            if person.kind == "anonymous":
                if person.country.eu:  # the cookie banner's answers
                    rows.append((person.pid, "*", "advertising", person.pid % 3 == 0))
                continue
            if person.star_marketing:
                rows.append((person.pid, "*", "marketing", person.email_opt))
            else:
                rows.append((person.pid, "email", "marketing", person.email_opt))
            rows.append((person.pid, "sms", "marketing", person.sms_opt))
        return rows

    def write(self, sinks: Sequence[Sink]) -> dict[str, float]:
        """Render every row once and hand it to each sink; seconds spent per sink (and in
        generating the rows, "generate")."""
        spent = {"generate": 0.0, **{sink.name: 0.0 for sink in sinks}}

        def feed(method: str, rows: Any) -> None:
            for sink in sinks:
                began = time.perf_counter()
                getattr(sink, method)(rows)
                spent[sink.name] += time.perf_counter() - began

        feed("products", self.products)
        began = time.perf_counter()
        for chunk in self.events():
            spent["generate"] += time.perf_counter() - began
            feed("events", chunk)
            began = time.perf_counter()
        began = time.perf_counter()
        for chunk in self.profiles():
            spent["generate"] += time.perf_counter() - began
            feed("profiles", chunk)
            began = time.perf_counter()
        began = time.perf_counter()
        consents = self.consents()
        spent["generate"] += time.perf_counter() - began
        feed("consents", consents)
        for sink in sinks:
            began = time.perf_counter()
            sink.finish()
            spent[sink.name] += time.perf_counter() - began
        return {key: round(value, 1) for key, value in spent.items()}


_iso = ms_to_iso


def _message_id(seq: int) -> str:
    return f"5e9b0000-0000-4000-8000-{seq:012x}"


def _partition(pid: int) -> int:
    return (pid * 2_654_435_761) % 64


# -- sinks: where the rows go -------------------------------------------------------------


class Sink:
    """Receives the population's rows; `write` times each sink separately."""

    name = "sink"

    def products(self, products: list[dict[str, Any]]) -> None:
        pass

    def events(self, rows: list[tuple[Any, ...]]) -> None:
        pass

    def profiles(self, rows: list[tuple[Any, ...]]) -> None:
        pass

    def consents(self, rows: list[tuple[Any, ...]]) -> None:
        pass

    def finish(self) -> None:
        pass


def _dumps(value: Any) -> str:
    from shopkeeper.storage.db import json_dumps

    return json_dumps(value)


def _event_rows(rows: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
    """Rendered events as rows of the events table, applied to their profile."""
    return [
        (
            seq,
            1,
            _message_id(seq),
            kind,
            name,
            user,
            anon,
            _partition(pid),
            at,
            at + 400,
            1,
            pid,
            at + 1500,
            None,
            payload,
        )
        for seq, kind, name, at, user, anon, pid, payload, _c, _p, _r in rows
    ]


def _profile_rows(rows: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
    return [
        (pid, merged, known, name, _dumps(traits), _dumps(computed), "{}", created, updated)
        for pid, merged, known, name, traits, computed, created, updated in rows
    ]


def _consent_rows(rows: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
    at = NOW_MS - WINDOW_DAYS * DAY
    return [
        (pid, ch, purpose, granted, at, "web shop", "trait", None)
        for pid, ch, purpose, granted in rows
    ]


_EVENT_COLUMNS = (
    "seq, source_id, message_id, type, event, user_id, anonymous_id, partition, timestamp, "
    "received_at, status, profile_id, processed_at, error, payload"
)
_PROFILE_COLUMNS = (
    "id, merged_into, is_known, display_name, traits, computed, trait_times, created_at, updated_at"
)
_CONSENT_COLUMNS = "profile_id, channel, purpose, granted, updated_at, source, via, message_id"


def _migrate(url: str, products: list[dict[str, Any]]) -> None:
    """A migrated database with the catalog, written by the catalog service."""
    from shopkeeper.catalog.service import upsert_products
    from shopkeeper.storage import migrate
    from shopkeeper.storage.db import Database

    db = Database(url, sqlite_synchronous="OFF")
    migrate.upgrade(db)
    upsert_products(db, products, NOW_MS - WINDOW_DAYS * DAY, low_stock_threshold=5)
    db.dispose()


class SqliteSink(Sink):
    """Plain executemany in big chunks (the product's own settings apply when counting)."""

    name = "sqlite"

    def __init__(self, url: str) -> None:
        self.url = url
        self.path = url.removeprefix("sqlite:///")

    def products(self, products: list[dict[str, Any]]) -> None:
        import sqlite3

        _migrate(self.url, products)
        self.conn = sqlite3.connect(self.path, isolation_level=None)
        for pragma in ("journal_mode=OFF", "synchronous=OFF", "cache_size=-1000000"):
            self.conn.execute(f"PRAGMA {pragma}")
        self.conn.execute("BEGIN")

    def _insert(self, table: str, columns: str, rows: list[tuple[Any, ...]]) -> None:
        marks = ", ".join("?" for _ in columns.split(","))
        self.conn.executemany(f"INSERT INTO {table} ({columns}) VALUES ({marks})", rows)

    def events(self, rows: list[tuple[Any, ...]]) -> None:
        self._insert("events", _EVENT_COLUMNS, _event_rows(rows))

    def profiles(self, rows: list[tuple[Any, ...]]) -> None:
        self._insert("profiles", _PROFILE_COLUMNS, _profile_rows(rows))

    def consents(self, rows: list[tuple[Any, ...]]) -> None:
        self._insert("consents", _CONSENT_COLUMNS, _consent_rows(rows))

    def finish(self) -> None:
        self.conn.execute("COMMIT")
        self.conn.execute("PRAGMA journal_mode=WAL")
        self.conn.close()


class PostgresSink(Sink):
    """COPY, one statement per chunk, one transaction per table; then VACUUM ANALYZE (what
    autovacuum would have done by the time anyone counts)."""

    name = "postgresql"

    def __init__(self, url: str) -> None:
        self.url = url

    def products(self, products: list[dict[str, Any]]) -> None:
        import psycopg

        _migrate(self.url, products)
        plain = self.url.replace("postgresql+psycopg://", "postgresql://")
        self.conn = psycopg.connect(plain)
        self.conn.execute("SET synchronous_commit = off")

    def _copy(self, table: str, columns: str, rows: list[tuple[Any, ...]]) -> None:
        with self.conn.cursor() as cur, cur.copy(f"COPY {table} ({columns}) FROM STDIN") as cp:
            for row in rows:
                cp.write_row(row)

    def events(self, rows: list[tuple[Any, ...]]) -> None:
        self._copy("events", _EVENT_COLUMNS, _event_rows(rows))

    def profiles(self, rows: list[tuple[Any, ...]]) -> None:
        self._copy("profiles", _PROFILE_COLUMNS, _profile_rows(rows))

    def consents(self, rows: list[tuple[Any, ...]]) -> None:
        self._copy("consents", _CONSENT_COLUMNS, _consent_rows(rows))

    def finish(self) -> None:
        for table, column in (("events", "seq"), ("profiles", "id")):
            self.conn.execute(
                f"SELECT setval(pg_get_serial_sequence('{table}', '{column}'), "
                f"(SELECT max({column}) FROM {table}))"
            )
        self.conn.commit()
        self.conn.autocommit = True
        self.conn.execute("VACUUM ANALYZE")
        self.conn.close()


class DuckCsvSink(Sink):
    """The flattened columns the DuckDB baseline reads, as CSV files."""

    name = "duckdb-csv"

    def __init__(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.files = {
            n: (directory / f"{n}.csv").open("w", newline="")
            for n in ("events", "profiles", "consents")
        }
        self.writers = {n: csv.writer(f) for n, f in self.files.items()}

    def events(self, rows: list[tuple[Any, ...]]) -> None:
        self.writers["events"].writerows(
            (pid, 1, kind, name, at, cat, prod, rev)
            for _seq, kind, name, at, _u, _a, pid, _payload, cat, prod, rev in rows
        )

    def profiles(self, rows: list[tuple[Any, ...]]) -> None:
        self.writers["profiles"].writerows(
            (
                pid,
                merged,
                computed.get("country"),
                traits.get("loyalty_tier"),
                computed.get("orders_count"),
                computed.get("total_revenue"),
            )
            for pid, merged, _k, _n, traits, computed, _c, _u in rows
        )

    def consents(self, rows: list[tuple[Any, ...]]) -> None:
        self.writers["consents"].writerows(rows)

    def finish(self) -> None:
        for f in self.files.values():
            f.close()


DUCK_TABLES = {
    "events": "profile_id BIGINT, status SMALLINT, type VARCHAR, event VARCHAR, ts BIGINT, "
    "category VARCHAR, product_id VARCHAR, revenue DOUBLE",
    "profiles": "id BIGINT, merged_into BIGINT, country VARCHAR, loyalty_tier VARCHAR, "
    "orders_count DOUBLE, total_revenue DOUBLE",
    "consents": "profile_id BIGINT, channel VARCHAR, purpose VARCHAR, granted BOOLEAN",
}


def load_duckdb(directory: Path) -> Any:
    """An in-memory DuckDB with the CSV files as tables."""
    import duckdb

    con = duckdb.connect()
    for table, columns in DUCK_TABLES.items():
        names = [part.split()[0] for part in columns.split(", ")]
        types = {part.split()[0]: part.split()[1] for part in columns.split(", ")}
        con.execute(f"CREATE TABLE {table} ({columns})")
        con.execute(
            f"INSERT INTO {table} SELECT {', '.join(names)} FROM read_csv(?, header=false, "
            f"columns={types!r}, nullstr='')",
            [str(directory / f"{table}.csv")],
        )
    return con


# =========================================================================================
# Measurement
# =========================================================================================


def timed(count: Callable[[], int], runs: int) -> dict[str, Any]:
    """One warm-up, then the median of `runs` counts (fewer when one count takes more than
    10 s); every count must be the same."""
    began = time.perf_counter()
    first = count()
    warm = time.perf_counter() - began
    if warm > 10:
        runs = max(1, min(runs, 3))
    times = []
    for _ in range(runs):
        began = time.perf_counter()
        n = count()
        times.append((time.perf_counter() - began) * 1000)
        if n != first:
            raise AssertionError(f"count changed between runs: {first} then {n}")
    return {
        "count": first,
        "median_ms": round(statistics.median(times), 1),
        "runs_ms": [round(x, 1) for x in times],
        "warmup_ms": round(warm * 1000, 1),
    }


def count_sql(url: str, segment: Segment, runs: int) -> dict[str, Any]:
    """A segment counted as the product counts it, through shopkeeper's Database."""
    import sqlalchemy as sa

    from shopkeeper.segments.membership import for_population
    from shopkeeper.storage.db import Database

    db = Database(url)
    sql, params = compiled_count(segment, db.dialect)
    query = sa.text(sql).bindparams(**params)

    def count() -> int:
        with db.read() as conn, conn.begin():
            for_population(conn)
            return int(conn.execute(query).scalar_one())

    try:
        return timed(count, runs)
    finally:
        db.dispose()


def save_segments(url: str) -> dict[str, Any]:
    """The segments saved (no refresh: counting is what is measured) and the segment
    indexes built for them, as the product's scheduler does."""
    from shopkeeper.config import Settings
    from shopkeeper.segments import indexes
    from shopkeeper.segments.lang.parser import parse
    from shopkeeper.segments.store import insert_segment
    from shopkeeper.storage.db import Database

    db = Database(url)
    saved = {**NAMED, **{f"bench_{i}": s.condition for i, s in enumerate(SEGMENTS)}}
    try:
        with db.write() as conn:
            for key, text in saved.items():
                insert_segment(
                    conn, key=key, name=key, description=None, node=parse(text),
                    condition=text, realtime=False, refresh_minutes=1440, builtin=None,
                    now_ms=NOW_MS,
                )  # fmt: skip
        began = time.perf_counter()
        result = indexes.sync(db, Settings(database_url=url), NOW_MS)
        return {"indexes": len(result.created), "index_s": round(time.perf_counter() - began, 1)}
    finally:
        db.dispose()


def count_duckdb(con: Any, segment: Segment, runs: int) -> dict[str, Any]:
    return timed(lambda: int(con.execute(segment.duckdb).fetchone()[0]), runs)


# =========================================================================================
# The driver: populate once per size, then each section measures the populated targets
# =========================================================================================


@dataclass
class Targets:
    """The populated databases of one size, for every section to measure."""

    size: int
    scratch: Path
    sql_urls: dict[str, str] = field(default_factory=dict)  # database name -> URL

    @property
    def duck_dir(self) -> Path:
        return self.scratch / "duckdb"


def _child(*args: str) -> Any:
    done = subprocess.run(
        [sys.executable, __file__, *args], check=True, capture_output=True, text=True
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


def counts_section(targets: Targets, runs: int) -> list[dict[str, Any]]:
    """Each segment counted on every database and on DuckDB (each in its own process)."""
    duck = _child("--count-duckdb", str(targets.duck_dir), str(runs))
    rows = []
    for database, url in targets.sql_urls.items():
        for index, segment in enumerate(SEGMENTS):
            got = _child("--count-sql", url, str(index), str(runs))
            base = duck["segments"][segment.name]
            if got["count"] != base["count"]:
                raise AssertionError(
                    f"{database} counts {got['count']} for {segment.name!r}, "
                    f"DuckDB {base['count']}: the baseline is not equivalent"
                )
            rows.append(
                {
                    "section": "counts",
                    "size": targets.size,
                    "database": database,
                    "segment": segment.name,
                    "count": got["count"],
                    "median_ms": got["median_ms"],
                    "runs_ms": got["runs_ms"],
                    "duckdb_ms": base["median_ms"],
                    "duckdb_runs_ms": base["runs_ms"],
                    "ratio": round(got["median_ms"] / max(base["median_ms"], 0.01), 1),
                    "duckdb_load_s": duck["load_s"],
                    "duckdb_threads": duck["threads"],
                }
            )
    return rows


# Each section takes the populated targets of a size and returns result rows.
SECTIONS: dict[str, Callable[[Targets, int], list[dict[str, Any]]]] = {
    "counts": counts_section,
}


def populate(
    size: int, seed: int, sqlite_url: str | None, pg_url: str | None, duck_dir: str
) -> dict[str, Any]:
    began = time.perf_counter()
    population = Population(size, seed)
    planned = time.perf_counter() - began
    sinks: list[Sink] = []
    if sqlite_url:
        sinks.append(SqliteSink(sqlite_url))
    if pg_url:
        sinks.append(PostgresSink(pg_url))
    sinks.append(DuckCsvSink(Path(duck_dir)))
    spent = population.write(sinks)
    events = sum(p.events for p in population.people)
    return {
        "plan_s": round(planned, 1),
        **{f"{k}_s": v for k, v in spent.items()},
        "profiles": size + population.merged,
        "live_profiles": size,
        "events": events,
        "total_s": round(time.perf_counter() - began, 1),
    }


def _machine() -> dict[str, Any]:
    import sqlite3

    import duckdb

    return {
        "cpus": os.cpu_count(),
        "loadavg": [round(x, 2) for x in os.getloadavg()],
        "python": sys.version.split()[0],
        "sqlite": sqlite3.sqlite_version,
        "duckdb": duckdb.__version__,
    }


def print_table(rows: list[dict[str, Any]]) -> None:
    head = ("size", "database", "segment", "count", "median ms", "DuckDB ms", "ratio", "<= 3x")
    lines = [head] + [
        (
            f"{r['size']:,}",
            r["database"],
            r["segment"],
            f"{r['count']:,}",
            f"{r['median_ms']:,.1f}",
            f"{r['duckdb_ms']:,.1f}",
            f"{r['ratio']:,.1f}",
            "yes" if r["ratio"] <= 3 else "no",
        )
        for r in rows
        if r["section"] == "counts"
    ]
    widths = [max(len(str(line[i])) for line in lines) for i in range(len(head))]
    for n, line in enumerate(lines):
        print(
            " | ".join(
                str(v).rjust(w) if i in (0, 3, 4, 5, 6) else str(v).ljust(w)
                for i, (v, w) in enumerate(zip(line, widths, strict=True))
            )
        )
        if n == 0:
            print("-+-".join("-" * w for w in widths))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="100000,1000000")
    parser.add_argument("--database", choices=("sqlite", "postgresql", "both"), default="both")
    parser.add_argument(
        "--postgres",
        default=os.environ.get("SHOPKEEPER_TEST_DATABASE_URL", DEFAULT_PG),
        help="a server URL: the scratch database is created beside it",
    )
    parser.add_argument("--runs", type=int, default=5, help="timed counts after a warm-up")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--populate", nargs=5, help=argparse.SUPPRESS)
    parser.add_argument("--count-sql", nargs=3, help=argparse.SUPPRESS)
    parser.add_argument("--save-segments", nargs=1, help=argparse.SUPPRESS)
    parser.add_argument("--count-duckdb", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.populate:
        size, seed, sqlite_url, pg_url, duck_dir = args.populate
        print(
            json.dumps(populate(int(size), int(seed), sqlite_url or None, pg_url or None, duck_dir))
        )
        return
    if args.save_segments:
        print(json.dumps(save_segments(args.save_segments[0])))
        return
    if args.count_sql:
        url, index, runs = args.count_sql
        print(json.dumps(count_sql(url, SEGMENTS[int(index)], int(runs))))
        return
    if args.count_duckdb:
        directory, runs = args.count_duckdb
        began = time.perf_counter()
        con = load_duckdb(Path(directory))
        loaded = round(time.perf_counter() - began, 1)
        threads = con.execute("SELECT current_setting('threads')").fetchone()[0]
        out = {s.name: count_duckdb(con, s, int(runs)) for s in SEGMENTS}
        print(json.dumps({"load_s": loaded, "threads": threads, "segments": out}))
        return

    import sqlalchemy as sa

    from shopkeeper.storage.db import normalize_url

    RESULTS.mkdir(parents=True, exist_ok=True)
    results: list[dict[str, Any]] = []
    runs_info: list[dict[str, Any]] = []
    for size in (int(s) for s in args.sizes.split(",")):
        scratch = Path(tempfile.mkdtemp(dir=RESULTS, prefix="segments-"))
        targets = Targets(size, scratch)
        admin = None
        if args.database in ("sqlite", "both"):
            targets.sql_urls["sqlite"] = f"sqlite:///{scratch / 'bench.db'}"
        if args.database in ("postgresql", "both"):
            server = normalize_url(args.postgres)
            name = f"sk_bench_{uuid.uuid4().hex[:8]}"
            admin = sa.create_engine(server, isolation_level="AUTOCOMMIT")
            with admin.connect() as conn:
                conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
            url = sa.engine.make_url(server).set(database=name)
            targets.sql_urls["postgresql"] = url.render_as_string(hide_password=False)
        try:
            machine = _machine()
            began = time.perf_counter()
            populated = _child(
                "--populate",
                str(size),
                str(args.seed),
                targets.sql_urls.get("sqlite", ""),
                targets.sql_urls.get("postgresql", ""),
                str(targets.duck_dir),
            )
            print(
                f"size {size:,}: populated in {time.perf_counter() - began:.0f} s: "
                f"{json.dumps(populated)}",
                flush=True,
            )
            for database, url in targets.sql_urls.items():
                saved = _child("--save-segments", url)
                populated[f"{database}_segment_indexes"] = saved
                print(f"size {size:,}: {database}: segments saved: {json.dumps(saved)}")
            for section, measure in SECTIONS.items():
                began = time.perf_counter()
                rows = measure(targets, args.runs)
                print(
                    f"size {size:,}: {section} measured in {time.perf_counter() - began:.0f} s",
                    flush=True,
                )
                results += rows
            runs_info.append({"size": size, "machine": machine, "populate": populated})
        finally:
            if admin is not None:
                with admin.connect() as conn:
                    db_name = sa.engine.make_url(targets.sql_urls["postgresql"]).database
                    conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{db_name}"'))
                admin.dispose()
            shutil.rmtree(scratch, ignore_errors=True)
    print()
    print_table(results)
    out = {
        "segments": [{"name": s.name, "condition": s.condition} for s in SEGMENTS],
        "named": NAMED,
        "runs": runs_info,
        "results": results,
    }
    (RESULTS / "segments.json").write_text(json.dumps(out, indent=2) + "\n")


if __name__ == "__main__":
    main()
