"""The demo shop generator: the shape of what it makes (issue 3, section 4), checked on a
seeded run, and the BG/NBD draws against the model's own expectations."""

from __future__ import annotations

import itertools
import random
from collections import Counter
from typing import Any

import msgspec
import phonenumbers
import pytest

from shopkeeper.catalog.products import parse_product
from shopkeeper.demo.generator import DemoShop
from shopkeeper.demo.locales import COUNTRIES, local_price
from shopkeeper.demo.model import DAY, WEEK, ModelParams, bgnbd_purchases
from shopkeeper.identity.identifiers import JunkFilter
from shopkeeper.ingest.spec import Accepted, Envelope, Limits, MessageValidator
from shopkeeper.timeutil import parse_iso_ms

NOW = parse_iso_ms("2026-11-23T12:00:00Z")
PEOPLE = 1000


@pytest.fixture(scope="module")
def shop() -> tuple[DemoShop, list[tuple[str, dict[str, Any]]]]:
    generated = DemoShop(PEOPLE, seed=11, now_ms=NOW)
    return generated, list(generated.messages())


def test_about_three_quarters_of_carts_are_abandoned(shop: Any) -> None:
    truth = shop[0].truth
    assert truth.carts > 1000
    assert truth.carts == truth.carts_converted + round(truth.abandonment_rate * truth.carts)
    assert 0.70 <= truth.abandonment_rate <= 0.80
    # Every online order came from a cart, and every cart id in the stream is one cart.
    assert truth.carts_converted == truth.orders_online
    cart_ids = {
        m["properties"]["cart_id"]
        for _, m in shop[1]
        if m.get("event") == "Product Added" and "cart_id" in m["properties"]
    }
    assert len(cart_ids) == truth.carts


def test_buyers_come_back_in_a_realistic_share(shop: Any) -> None:
    truth = shop[0].truth
    assert truth.buyers > 250
    # CDNOW-like heterogeneity over a year: most buyers buy once, a fifth to a third again.
    assert 0.15 <= truth.repeat_rate <= 0.35
    per_person: Counter[str] = Counter()
    cancelled = {
        m["properties"]["order_id"] for _, m in shop[1] if m.get("event") == "Order Cancelled"
    }
    for _, message in shop[1]:
        if message.get("event") == "Order Completed":
            if message["properties"]["order_id"] in cancelled:
                continue
            who = (
                message.get("userId")
                or message["context"].get("traits", {}).get("email")
                or message["context"].get("traits", {}).get("phone")
            )
            per_person[who] += 1
    # Identified by user id, email or phone: the same person may show up under two keys
    # in this count, so it bounds the truth rather than equalling it.
    assert sum(per_person.values()) == truth.orders_counted
    assert truth.buyers <= len(per_person)


def test_about_half_of_the_visitors_stay_anonymous(shop: Any) -> None:
    truth = shop[0].truth
    assert 0.45 <= truth.anonymous_share <= 0.65
    assert truth.known_people + truth.anonymous_visitors >= truth.online_visitors
    # Some sign up on another device than the one they browsed on first.
    assert truth.signups_other_device > 10
    assert truth.expected_profiles > truth.people  # unlinked devices stay separate


def test_countries_and_languages(shop: Any) -> None:
    truth = shop[0].truth
    assert set(truth.countries) == {"TH", "US", "RO", "NO", "CN"}
    assert truth.countries.most_common(1)[0][0] == "TH"
    locales = Counter(m["context"].get("locale") for _, m in shop[1])
    assert {"th-TH", "en-US", "ro-RO", "nb-NO", "zh-CN"} <= set(locales)
    zones = {m["context"].get("timezone") for _, m in shop[1]} - {None}
    assert {"Asia/Bangkok", "Asia/Shanghai", "Europe/Oslo", "Europe/Bucharest"} <= zones
    assert any(zone.startswith("America/") for zone in zones)


def test_every_source_sends_and_every_message_is_valid(shop: Any) -> None:
    validator = MessageValidator(JunkFilter(), Limits())
    envelope = Envelope(received_ms=NOW)
    encode = msgspec.json.Encoder().encode
    by_source: Counter[str] = Counter()
    ids = set()
    for index, (source, message) in enumerate(shop[1]):
        by_source[source] += 1
        size = len(encode(message))
        result = validator.check(dict(message), index=index, size=size, envelope=envelope)
        assert isinstance(result, Accepted), result
        ids.add(message["messageId"])
    assert set(by_source) == {"web", "app", "pos", "crm"}
    assert by_source["web"] > by_source["app"] > by_source["crm"] > 0
    pos_orders = [m for s, m in shop[1] if s == "pos" and m.get("event") == "Order Completed"]
    assert len(pos_orders) == shop[0].truth.orders_pos
    assert len(ids) == len(shop[1])  # message ids never repeat
    assert sum(by_source.values()) == sum(shop[0].truth.messages.values())


def test_timestamps_cover_the_last_year_in_order(shop: Any) -> None:
    times = [parse_iso_ms(m["timestamp"]) for _, m in shop[1]]
    assert times == sorted(times)
    assert times[0] >= NOW - 365 * DAY
    assert times[-1] <= NOW
    # A year of history, not a burst: activity in (almost) every month.
    months = {(t - (NOW - 365 * DAY)) // (30 * DAY) for t in times}
    assert len(months) >= 12


def test_people_look_like_people(shop: Any) -> None:
    traits = [m["traits"] for _, m in shop[1] if m["type"] == "identify" and "email" in m["traits"]]
    assert len(traits) > 300
    for trait in traits:
        assert trait["email"].endswith(".example")  # can never reach anybody
        if "phone" in trait:
            number = phonenumbers.parse(trait["phone"])
            assert phonenumbers.is_valid_number(number)
            assert trait["phone"] == phonenumbers.format_number(
                number, phonenumbers.PhoneNumberFormat.E164
            )
            region = phonenumbers.region_code_for_number(number)
            assert region == trait["address"]["country"]
    names = {t["name"] for t in traits if "name" in t}
    assert any("\u0e00" <= ch <= "\u0e7f" for name in names for ch in name)  # Thai script
    assert any("\u4e00" <= ch <= "\u9fff" for name in names for ch in name)  # Chinese
    agents = Counter(m["context"].get("userAgent", "")[:30] for _, m in shop[1])
    assert any("iPhone" in agent for agent in agents)
    assert any("Windows" in agent for agent in agents)
    devices = [m["context"]["device"] for _, m in shop[1] if "device" in m["context"]]
    assert {d["type"] for d in devices} == {"ios", "android"}
    assert any("token" in d for d in devices)  # push enabled for some
    consent = [t["email_opt_in"] for t in traits if "email_opt_in" in t]
    assert 0.3 < sum(consent) / len(consent) < 0.7


def test_the_same_seed_makes_the_same_shop() -> None:
    first = DemoShop(80, seed=5, now_ms=NOW)
    second = DemoShop(80, seed=5, now_ms=NOW)
    other = DemoShop(80, seed=6, now_ms=NOW)
    assert first.products == second.products
    assert list(first.messages()) == list(second.messages())
    assert first.truth.summary() == second.truth.summary()
    assert list(other.messages()) != list(DemoShop(80, seed=5, now_ms=NOW).messages())


def test_the_catalog() -> None:
    products = DemoShop(1, seed=3, now_ms=NOW).products
    assert 300 <= len(products) <= 400
    parsed = [parse_product(product) for product in products]
    assert [p["id"] for p in parsed] == [p["id"] for p in products]
    assert len({p["id"] for p in products}) == len(products)
    stock = [p["stock_quantity"] for p in products]
    assert 0.03 < stock.count(0) / len(stock) < 0.12
    assert 0.05 < sum(1 for s in stock if 1 <= s <= 5) / len(stock) < 0.16
    on_sale = [p for p in products if p["sale_price"] is not None]
    assert 0.08 < len(on_sale) / len(products) < 0.25
    assert all(p["sale_price"] < p["price"] for p in on_sale)
    categories = {p["category"] for p in products}
    assert "Bedroom > Bedding > Duvets" in categories
    assert "Kitchen > Cookware > Pans" in categories
    assert len({c.split(" > ")[0] for c in categories}) >= 8
    for product in products:
        assert set(product["locales"]) == {c.locale for c in COUNTRIES}
    assert len({p["brand"] for p in products}) >= 10


def test_local_prices_are_rounded_as_shops_do() -> None:
    by_code = {c.code: c for c in COUNTRIES}
    assert local_price(56.99, by_code["TH"]) == 1989.0  # 1,994.65 THB -> 1,990 - 1
    assert local_price(56.99, by_code["NO"]) == 599.0  # 598.4 NOK -> 600 - 1
    assert local_price(56.99, by_code["US"]) == 56.99
    assert local_price(56.99, by_code["CN"]) == 410.0  # 410.3 CNY
    assert local_price(56.99, by_code["RO"]) == 261.99  # 262.15 RON -> 262 - 0.01


def test_bgnbd_draws_follow_the_model() -> None:
    """With a dropout Beta(3, 12) (mean 0.2) and rates fast enough that the horizon never
    cuts a history short, the number of purchases is geometric given p: P(one purchase)
    = E[p] = 0.2 and E[purchases] = E[1/p] = (a + b - 1) / (a - 1) = 7."""
    rng = random.Random(42)
    params = ModelParams(r=20.0, alpha=10.0, a=3.0, b=12.0)
    horizon = 10_000 * WEEK
    counts = []
    gaps = []
    for _ in range(20_000):
        times, active = bgnbd_purchases(rng, 0, horizon, params)
        assert not active
        counts.append(len(times))
        gaps.extend(b - a for a, b in itertools.pairwise(times))
    assert abs(counts.count(1) / len(counts) - 0.2) < 0.01
    assert abs(sum(counts) / len(counts) - 7.0) < 0.35
    # Time between purchases: Exp(lambda), lambda ~ Gamma(20, 1/10): mean 1 / lambda is
    # alpha / (r - 1) = 10 / 19 weeks.
    assert abs(sum(gaps) / len(gaps) / WEEK - 10 / 19) < 0.02
