"""What every part of the demo generator shares: the catalog as shoppers meet it (local
prices and names), the ground truth it keeps while it writes, and the one place Segment
messages are built. Pure.
"""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from shopkeeper.demo.catalog import CATEGORIES, CATEGORY_BY_PATH, Category
from shopkeeper.demo.locales import Country, local_price
from shopkeeper.demo.model import ModelParams
from shopkeeper.demo.people import Device, Person, new_id
from shopkeeper.timeutil import ms_to_iso

SOURCES = ("web", "app", "pos", "crm")


@dataclass
class Truth:
    """What the generated history holds, counted while it is written: the figures the
    tests and the demo compare with what the pipeline made of it."""

    people: int = 0
    by_kind: Counter[str] = field(default_factory=Counter)
    countries: Counter[str] = field(default_factory=Counter)  # people seen, by country
    known_people: int = 0  # sent a user id, email or phone at least once
    online_visitors: int = 0  # people with web or app activity
    anonymous_visitors: int = 0  # of those, never known
    expected_profiles: int = 0  # profiles identity resolution should end with
    carts: int = 0  # visits that put something in a cart
    carts_converted: int = 0  # of those, ending in an order
    checkouts_started: int = 0
    orders_online: int = 0
    orders_pos: int = 0
    orders_cancelled: int = 0
    refunds: int = 0
    buyers: int = 0  # people with at least one order that counts (not cancelled)
    repeat_buyers: int = 0  # with two or more
    crm_records: int = 0
    signups: int = 0
    signups_other_device: int = 0  # signed up on a device other than they browsed on
    messages: Counter[str] = field(default_factory=Counter)  # by source
    events: Counter[str] = field(default_factory=Counter)  # by track event or type
    first_ms: int | None = None
    last_ms: int | None = None

    @property
    def orders_completed(self) -> int:
        return self.orders_online + self.orders_pos

    @property
    def orders_counted(self) -> int:
        """Completed orders that were not cancelled: the sum of profiles' orders_count."""
        return self.orders_completed - self.orders_cancelled

    @property
    def abandonment_rate(self) -> float:
        return 1 - self.carts_converted / self.carts if self.carts else 0.0

    @property
    def repeat_rate(self) -> float:
        return self.repeat_buyers / self.buyers if self.buyers else 0.0

    @property
    def anonymous_share(self) -> float:
        return self.anonymous_visitors / self.online_visitors if self.online_visitors else 0.0

    def summary(self) -> dict[str, Any]:
        return {
            "people": self.people,
            "known_people": self.known_people,
            "expected_profiles": self.expected_profiles,
            "online_visitors": self.online_visitors,
            "anonymous_share": round(self.anonymous_share, 3),
            "carts": self.carts,
            "abandonment_rate": round(self.abandonment_rate, 3),
            "orders_online": self.orders_online,
            "orders_pos": self.orders_pos,
            "orders_cancelled": self.orders_cancelled,
            "refunds": self.refunds,
            "buyers": self.buyers,
            "repeat_rate": round(self.repeat_rate, 3),
            "crm_records": self.crm_records,
            "countries": dict(sorted(self.countries.items())),
            "messages": dict(sorted(self.messages.items())),
            "total_messages": sum(self.messages.values()),
        }


class ShopCatalog:
    """Products as shoppers see them: by category, by popularity, with the price and
    name of their country."""

    def __init__(self, rng: random.Random, products: list[dict[str, Any]]) -> None:
        self.products = products
        self.categories: list[Category] = list(CATEGORIES)
        index_of = {category.path: i for i, category in enumerate(self.categories)}
        by_category: list[list[int]] = [[] for _ in self.categories]
        for i, product in enumerate(products):
            by_category[index_of[product["category"]]].append(i)
        self.by_category: list[list[int]] = []
        self.cum_weights: list[list[float]] = []
        for members in by_category:
            rng.shuffle(members)  # popularity rank within the category
            total, cum = 0.0, []
            for rank in range(len(members)):
                total += 1.0 / (rank + 1) ** 0.9  # Zipf-like: a few best sellers
                cum.append(total)
            self.by_category.append(members)
            self.cum_weights.append(cum)
        self.category_weights = [c.popularity for c in self.categories]
        self._lines: dict[tuple[int, str], dict[str, Any]] = {}

    def pick(self, rng: random.Random, category: int) -> int:
        members = self.by_category[category]
        return members[rng.choices(range(len(members)), cum_weights=self.cum_weights[category])[0]]

    def any_category(self, rng: random.Random) -> int:
        return rng.choices(range(len(self.categories)), self.category_weights)[0]

    def in_stock(self, index: int) -> bool:
        return bool(self.products[index]["stock_quantity"])

    def category_of(self, index: int) -> Category:
        return CATEGORY_BY_PATH[self.products[index]["category"]]

    def item(self, index: int, country: Country) -> dict[str, Any]:
        """The product as an event's properties carry it (Segment's ecommerce spec), in
        the country's currency and language. Cached: treat as read-only."""
        key = (index, country.code)
        line = self._lines.get(key)
        if line is None:
            product = self.products[index]
            usd = product["sale_price"] or product["price"]
            local = product["locales"][country.locale]
            line = {
                "product_id": product["id"],
                "sku": product["sku"],
                "category": product["category"],
                "name": local["name"],
                "brand": product["brand"],
                "variant": product["attributes"]["color"],
                "price": local_price(usd, country),
                "currency": country.currency,
                "url": local["url"],
                "image_url": product["image_url"],
            }
            self._lines[key] = line
        return line


class Emitter:
    """Builds messages, collects them with their times, and keeps the ground truth."""

    def __init__(
        self, rng: random.Random, catalog: ShopCatalog, params: ModelParams, now_ms: int
    ) -> None:
        self.rng = rng
        self.catalog = catalog
        self.params = params
        self.now_ms = now_ms
        self.truth = Truth()
        self.out: list[tuple[int, str, dict[str, Any]]] = []
        self.order_numbers: Counter[str] = Counter()

    def next_order_id(self, prefix: str) -> str:
        self.order_numbers[prefix] += 1
        return f"{prefix}{100_000 + self.order_numbers[prefix] * 7 + self.rng.randrange(7)}"

    def send(
        self,
        source: str,
        person: Person,
        device: Device | None,
        at_ms: int,
        message: dict[str, Any],
        *,
        anonymous_id: str | None = None,
    ) -> dict[str, Any]:
        """Complete `message` (type and payload set by the caller) with its ids and time,
        record it, and update what the truth knows about the person's identities."""
        message["messageId"] = new_id(self.rng)
        message["timestamp"] = ms_to_iso(at_ms)
        anon = anonymous_id or (device.anonymous_id if device is not None else None)
        if anon is not None:
            message["anonymousId"] = anon
        if device is not None and device.logged_in and "userId" not in message:
            message["userId"] = person.user_id
        known = set()
        if "userId" in message:
            known.add("user_id")
        for holder in (message.get("traits"), message.get("context", {}).get("traits")):
            if isinstance(holder, dict):
                if "email" in holder:
                    known.add("email")
                if "phone" in holder:
                    known.add("phone")
        if known:
            person.known_ids.update(known)
        if device is not None:
            key = device.truth_key
            person.keys[key] = person.keys.get(key, False) or bool(known)
        truth = self.truth
        truth.messages[source] += 1
        truth.events[message.get("event") or message["type"]] += 1
        if truth.first_ms is None or at_ms < truth.first_ms:
            truth.first_ms = at_ms
        if truth.last_ms is None or at_ms > truth.last_ms:
            truth.last_ms = at_ms
        self.out.append((at_ms, source, message))
        return message

    def finish_person(self, person: Person) -> None:
        """Count a person whose history is complete."""
        truth = self.truth
        if not person.keys and not person.known_ids:
            return  # everything planned fell after `now`: never seen
        truth.people += 1
        truth.by_kind[person.kind] += 1
        truth.countries[person.country.code] += 1
        unlinked = sum(1 for linked in person.keys.values() if not linked)
        if person.known_ids:
            truth.known_people += 1
            truth.expected_profiles += 1 + unlinked
        else:
            truth.expected_profiles += unlinked
        if person.keys:
            truth.online_visitors += 1
            if not person.known_ids:
                truth.anonymous_visitors += 1
        counted = sum(1 for order in person.orders if not order["cancelled"])
        if counted:
            truth.buyers += 1
            if counted > 1:
                truth.repeat_buyers += 1
