"""Message content on SQLite and PostgreSQL: the template context built from a real
profile (events through /v1 and the pipeline) and a real catalog (the admin API), and
the template store."""

from __future__ import annotations

from typing import Any

import pytest
import sqlalchemy as sa

from shopkeeper.messaging import template_store
from shopkeeper.messaging.content import ProfileNotFound, message_context, recommend
from shopkeeper.messaging.template_store import TemplateInvalid
from shopkeeper.messaging.templates import pick_variant, render
from shopkeeper.profiles.view import resolve
from shopkeeper.storage import tables as t
from shopkeeper.storage.db import Database
from tests.harness import NOW, Harness, harness

NBSP = "\xa0"
SOFAS = "Home > Living room > Sofas"
LAMPS = "Home > Living room > Lamps"
SETTINGS: dict[str, Any] = {
    "shop_currency": "NOK",
    "exchange_rates": {"EUR": 11.5},
    "free_shipping_threshold": 12000,
    "shop_url": "https://shop.example/",
    "shop_name": "Nordic Home",
    "default_locale": "en",
    "default_timezone": "Europe/London",
}

PRODUCTS: dict[str, dict[str, Any]] = {
    "sofa-1": {"name": "Oslo Sofa", "category": SOFAS, "price": 4999, "currency": "NOK",
               "stock_quantity": 3, "url": "https://shop.example/p/sofa-1",
               "image_url": "https://cdn.example/sofa-1.jpg",
               "locales": {"nb": {"name": "Oslo-sofa", "url": "https://shop.example/nb/sofa-1"}}},
    "lamp-1": {"name": "Reading Lamp", "category": LAMPS, "price": 299.5, "sale_price": 249.5,
               "currency": "NOK", "image_url": "https://cdn.example/lamp-1.jpg"},
    "sofa-2": {"name": "Bergen Sofa", "category": SOFAS, "price": 5999, "currency": "NOK",
               "stock_quantity": 2},
    "sofa-3": {"name": "Sold-out Sofa", "category": SOFAS, "price": 3999, "currency": "NOK",
               "stock_quantity": 0},
    "sofa-4": {"name": "Alta Sofa", "category": SOFAS + " > Corner", "price": 7999,
               "currency": "NOK"},
    "sofa-5": {"name": "Deleted Sofa", "category": SOFAS, "price": 999, "currency": "NOK"},
    "rug-1": {"name": "Wool Rug", "category": "Home > Rugs", "price": 1499, "currency": "NOK"},
    "vase-1": {"name": "Vase", "category": "Home > Decor", "price": 199, "currency": "NOK"},
}  # fmt: skip


def _catalog(h: Harness) -> None:
    for product_id, body in PRODUCTS.items():
        response = h.client.put(f"/api/products/{product_id}", json=body, headers=h.admin)
        assert response.status_code == 200, response.text
    assert h.client.delete("/api/products/sofa-5", headers=h.admin).status_code == 200


def _event(who: dict[str, str], event: str, n: int, **properties: Any) -> dict[str, Any]:
    return {
        "type": "track",
        "event": event,
        **who,
        "messageId": f"{event}-{n}-{next(iter(who.values()))}",
        "timestamp": f"2026-11-23T10:{n:02d}:00Z",
        "properties": properties,
    }


def _shopper(h: Harness) -> int:
    kari = {"userId": "u1"}
    h.send(
        "identify",
        {
            **kari,
            "messageId": "id-1",
            "timestamp": "2026-11-23T09:00:00Z",
            "traits": {
                "firstName": "Kari",
                "lastName": "Nordmann",
                "email": "Kari@Example.com",
                "nickname": "<b>K</b>",
            },
            "context": {"locale": "nb-NO", "timezone": "Europe/Oslo"},
        },
    )
    events = [
        _event(kari, "Product Added", 1, product_id="sofa-1", quantity=2, price=4000,
               currency="NOK", category=SOFAS),
        _event(kari, "Product Added", 2, product_id="lamp-1", category=LAMPS),
        _event(kari, "Product Added", 3, product_id="gift-9", name="Gift card", price="150",
               currency="NOK", image_url="https://cdn.example/gift.png"),
        _event(kari, "Product Viewed", 4, product_id="sofa-2", category=SOFAS),
        _event(kari, "Product Viewed", 5, product_id="sofa-4", category=SOFAS),
    ]  # fmt: skip
    # Other visitors make sofa-2 and the rug popular (and the unavailable ones more so).
    views = {"sofa-2": 3, "sofa-4": 1, "rug-1": 5, "sofa-3": 9, "sofa-5": 9}
    for product_id, count in views.items():
        for n in range(count):
            events.append(_event({"anonymousId": f"v-{product_id}-{n}"}, "Product Viewed", n,
                                 product_id=product_id))  # fmt: skip
    h.batch(events)
    h.drain()
    with h.services.db.read() as conn:
        profile_id = resolve(conn, "user_id", "u1")
    assert profile_id is not None
    return profile_id


def _context(h: Harness, profile_id: int, **kwargs: Any) -> dict[str, Any]:
    options: dict[str, Any] = {"variables": {}, "channel": "email", "journey_key": "cart"}
    options.update(kwargs)
    with h.services.db.read() as conn:
        return message_context(
            conn, profile_id, settings=h.services.settings, now_ms=NOW, **options
        )


def test_context_of_a_shopper_with_a_cart(db_url: str) -> None:
    with harness(db_url, **SETTINGS) as h:
        _catalog(h)
        profile_id = _shopper(h)
        coupon = {"code": "CART-7Q2K", "expires_at": NOW + 86_400_000, "discount": "10%"}
        context = _context(h, profile_id, variables={"coupon": coupon, "product_id": "rug-1"})

    profile = context["profile"]
    assert (profile["id"], profile["first_name"], profile["last_name"]) == (
        profile_id,
        "Kari",
        "Nordmann",
    )
    assert (profile["name"], profile["email"], profile["locale"]) == (
        "Kari Nordmann",
        "kari@example.com",
        "nb-NO",
    )
    assert profile["traits"]["nickname"] == "<b>K</b>"
    assert profile["computed"]["favorite_category"] == SOFAS
    assert not any(key.startswith("_") for key in profile["computed"])
    assert (context["locale"], context["currency"], context["timezone"]) == (
        "nb-NO",
        "NOK",
        "Europe/Oslo",
    )

    lines = {line["product_id"]: line for line in context["cart"]}
    assert list(lines) == ["sofa-1", "lamp-1", "gift-9"]
    sofa, lamp, gift = lines["sofa-1"], lines["lamp-1"], lines["gift-9"]
    # The catalog's current price and the reader's language, not what the cart held.
    assert (sofa["name"], sofa["url"], sofa["price"], sofa["quantity"], sofa["line_total"]) == (
        "Oslo-sofa",
        "https://shop.example/nb/sofa-1",
        4999.0,
        2,
        9998.0,
    )
    assert sofa["image_url"] == "https://cdn.example/sofa-1.jpg"
    assert sofa["in_catalog"]
    assert (lamp["price"], lamp["regular_price"], lamp["on_sale"], lamp["line_total"]) == (
        249.5,
        299.5,
        True,
        249.5,
    )
    # Not in the catalog: what the cart itself holds.
    assert (gift["name"], gift["price"], gift["currency"], gift["in_catalog"]) == (
        "Gift card",
        150.0,
        "NOK",
        False,
    )
    assert gift["image_url"] == "https://cdn.example/gift.png"
    assert (context["cart_total"], context["cart_currency"], context["cart_count"]) == (
        10397.5,
        "NOK",
        4,
    )
    assert context["free_shipping"] == {
        "threshold": 12000,
        "remaining": 1602.5,
        "reached": False,
        "currency": "NOK",
    }
    assert context["product"]["name"] == "Wool Rug"
    assert context["coupon"]["code"] == "CART-7Q2K"
    # Sofas first (the favourite category: popular, in stock, not in the cart, not
    # deleted), then the shop's most popular; the triggering rug is left out.
    assert [p["product_id"] for p in context["recommendations"]] == [
        "sofa-2",
        "sofa-4",
        "vase-1",
    ]
    assert context["shop"] == {"name": "Nordic Home", "url": "https://shop.example/"}
    assert context["unsubscribe_url"] is None
    assert context["link"]("/cart") == (
        "https://shop.example/cart?utm_source=shopkeeper&utm_medium=email&utm_campaign=cart"
        "&coupon=CART-7Q2K"
    )
    assert context["links"](sofa["url"], content="item", coupon=None) == (
        "https://shop.example/nb/sofa-1?utm_source=shopkeeper&utm_medium=email"
        "&utm_campaign=cart&utm_content=item"
    )


def test_the_context_renders_a_cart_email(db_url: str) -> None:
    with harness(db_url, **SETTINGS) as h:
        _catalog(h)
        profile_id = _shopper(h)
        context = _context(h, profile_id, variables={"coupon": "SAVE10"}, channel="sms")
    parts = {
        "subject": "{{ profile.first_name or 'Hei' }}, {{ cart_count }} varer venter",
        "html": (
            "<p>{{ profile.traits.nickname }}</p>"
            '{% for item in cart %}<a href="{{ link(item.url) }}">{{ item.name }}</a> '
            "{{ item.quantity }} x {{ item.price|money(item.currency) }}\n{% endfor %}"
            "Sum {{ cart_total|money(cart_currency) }}. "
            "{% if free_shipping and not free_shipping.reached %}"
            "{{ free_shipping.remaining|money(free_shipping.currency) }} til fri frakt."
            "{% endif %} Kode {{ coupon.code }}, {{ now|date('long') }}"
        ),
    }
    out = render(
        parts,
        context,
        locale=context["locale"],
        currency=context["currency"],
        timezone=context["timezone"],
    )
    assert out["subject"] == "Kari, 4 varer venter"
    html = out["html"]
    assert html.startswith("<p>&lt;b&gt;K&lt;/b&gt;</p>")
    assert (
        '<a href="https://shop.example/nb/sofa-1?utm_source=shopkeeper&amp;utm_medium=sms'
        '&amp;utm_campaign=cart&amp;coupon=SAVE10">Oslo-sofa</a>'
    ) in html
    assert f"2 x 4{NBSP}999,00{NBSP}kr" in html
    assert f"1 x 249,50{NBSP}kr" in html
    assert f"Sum 10{NBSP}397,50{NBSP}kr." in html
    assert f"1{NBSP}602,50{NBSP}kr til fri frakt." in html
    assert html.endswith("Kode SAVE10, 23. november 2026")


def test_odd_profile_data_does_not_break_the_context(db_url: str) -> None:
    with harness(db_url, **SETTINGS) as h:
        _catalog(h)
        h.send("identify", {"userId": "odd", "messageId": "odd-1", "traits": {"name": "Ola"}})
        h.drain()
        with h.services.db.write() as conn:
            profile_id = resolve(conn, "user_id", "odd")
            assert profile_id is not None
            # Data older code or a bad import might have left behind.
            conn.execute(
                t.profiles.update()
                .where(t.profiles.c.id == profile_id)
                .values(
                    computed={
                        "cart": [
                            None,
                            "sofa-1",
                            {"product_id": None, "price": 5},
                            {"product_id": "sofa-1", "quantity": "many", "price": "free"},
                            {"product_id": 12, "price": "12.5", "quantity": "2"},
                            {
                                "product_id": "ghost",
                                "price": "abc",
                                "currency": "kroner",
                                "quantity": -3,
                                "name": ["not", "text"],
                            },
                            {"product_id": "euro", "price": 10, "currency": "EUR"},
                            {"product_id": "yen", "price": 1000, "currency": "JPY"},
                        ],
                        "viewed_categories": {"x": "y", "Home / Rugs": {"count": 4}},
                        "favorite_category": 12,
                        "timezone": "Mars/Olympus_Mons",
                        "locale": "not a locale!!",
                        "last_order": {"currency": "eur"},
                    }
                )
            )
        context = _context(h, profile_id, variables={"product_id": "nope", "coupon": {"x": 1}})
    assert [line["product_id"] for line in context["cart"]] == [
        "sofa-1",
        "12",
        "ghost",
        "euro",
        "yen",
    ]
    sofa, twelve, ghost, euro, _ = context["cart"]
    assert (sofa["quantity"], sofa["price"], sofa["line_total"]) == (1, 4999.0, 4999.0)
    assert (twelve["quantity"], twelve["line_total"], twelve["currency"]) == (2, 25.0, None)
    assert (ghost["price"], ghost["currency"], ghost["line_total"], ghost["name"]) == (
        None,
        None,
        None,
        None,
    )
    assert euro["line_total"] == 10.0
    # NOK lines, a line without a currency (the shop's), EUR at 11.5; no rate for JPY.
    assert (context["cart_total"], context["cart_currency"]) == (4999 + 25 + 115.0, "NOK")
    assert (context["locale"], context["timezone"], context["currency"]) == (
        "en",
        "Europe/London",
        "EUR",
    )
    assert context["product"] is None
    assert context["coupon"] is None
    assert context["profile"]["first_name"] is None
    assert context["profile"]["name"] == "Ola"
    # The most viewed category (the favourite is unreadable): rugs.
    assert context["recommendations"][0]["product_id"] == "rug-1"
    assert context["free_shipping"]["remaining"] == 12000 - 5139.0


def test_merged_and_missing_profiles(db_url: str) -> None:
    with harness(db_url, **SETTINGS) as h:
        _catalog(h)
        h.batch(
            [
                _event({"anonymousId": "a-7"}, "Product Added", 1, product_id="rug-1"),
                {"type": "identify", "userId": "u7", "messageId": "u7-1",
                 "traits": {"email": "per@example.com", "firstName": "Per"}},
            ]
        )  # fmt: skip
        h.drain()
        with h.services.db.read() as conn:
            anonymous = resolve(conn, "anonymous_id", "a-7")
            known = resolve(conn, "user_id", "u7")
        assert anonymous is not None
        assert known is not None
        assert anonymous != known
        h.send("identify", {"userId": "u7", "anonymousId": "a-7", "messageId": "u7-2"})
        h.drain()
        with h.services.db.read() as conn:
            survivor = resolve(conn, "user_id", "u7")
        for profile_id in (anonymous, known):
            context = _context(h, profile_id)
            assert context["profile"]["id"] == survivor
            assert context["profile"]["first_name"] == "Per"
            assert [line["product_id"] for line in context["cart"]] == ["rug-1"]
        with pytest.raises(ProfileNotFound):
            _context(h, 987_654)


def test_recommend_without_interests_or_stats(db_url: str) -> None:
    with harness(db_url, **SETTINGS) as h:
        _catalog(h)
        with h.services.db.read() as conn:
            picks = recommend(conn, {}, 3, now_ms=NOW, exclude=["lamp-1"])
            assert recommend(conn, {}, 0, now_ms=NOW) == []
            by_category = recommend(conn, {"favorite_category": "home/LIVING ROOM"}, 9, now_ms=NOW)
    # No statistics: in-stock products by name.
    assert [p["product_id"] for p in picks] == ["sofa-4", "sofa-2", "sofa-1"]
    assert [p["product_id"] for p in by_category][:4] == ["sofa-4", "sofa-2", "sofa-1", "lamp-1"]
    assert {p["product_id"] for p in by_category} == set(PRODUCTS) - {"sofa-3", "sofa-5"}


# -- the template store --------------------------------------------------------------------


def test_template_store_round_trip(db: Database) -> None:
    email = {"subject": "Hi {{ profile.first_name }}", "html": "<p>{{ cart|length }}</p>"}
    with db.write() as conn:
        saved = template_store.save_template(conn, "cart-1", "email", "", email, NOW)
        template_store.save_template(conn, "cart-1", "email", "nb_no", {**email, "text": ""}, NOW)
        template_store.save_template(conn, "cart-1", "sms", "", {"body": "{{ link('/') }}"}, NOW)
        push = {"title": "a", "body": "b"}
        template_store.save_template(conn, "welcome", "web_push", "de", push, NOW)
    assert saved["locale"] == ""
    assert saved["parts"] == email
    with db.read() as conn:
        variants = template_store.get_variants(conn, "cart-1", "email")
        assert variants == {"": email, "nb-NO": email}  # tidied tag, empty part dropped
        assert template_store.get_variants(conn, "cart-1", "webhook") == {}
        assert template_store.get_variant(conn, "cart-1", "email", "NB-no") is not None
        listed = template_store.list_templates(conn)
    assert [(x["key"], x["channel"], x["locales"]) for x in listed] == [
        ("cart-1", "email", ["", "nb-NO"]),
        ("cart-1", "sms", [""]),
        ("welcome", "web_push", ["de"]),
    ]
    assert pick_variant(variants, "nb", "en")[0] == "nb-NO"

    with db.write() as conn:
        replaced = {"subject": "Hei", "text": "x"}
        template_store.save_template(conn, "cart-1", "email", "nb-NO", replaced, NOW + 5)
    with db.read() as conn:
        assert template_store.get_variants(conn, "cart-1", "email")["nb-NO"] == {
            "subject": "Hei",
            "text": "x",
        }
        row = conn.execute(
            sa.select(t.message_templates.c.updated_at).where(
                t.message_templates.c.locale == "nb-NO"
            )
        ).scalar()
        assert row == NOW + 5

    with db.write() as conn:
        assert template_store.delete_template(conn, "cart-1", "email", "nb_NO") == 1
        assert template_store.delete_template(conn, "cart-1", "email", "nb_NO") == 0
        assert template_store.delete_template(conn, "cart-1", "sms") == 1
    with db.read() as conn:
        assert [x["key"] for x in template_store.list_templates(conn)] == ["cart-1", "welcome"]


@pytest.mark.parametrize(
    ("key", "channel", "locale", "parts", "field", "words"),
    [
        ("Cart Reminder", "email", "", {"subject": "s", "text": "t"}, "key", "lowercase"),
        ("x" * 101, "email", "", {"subject": "s", "text": "t"}, "key", "1 to 100"),
        ("cart", "pigeon", "", {"body": "b"}, "channel", "unknown channel"),
        ("cart", "sms", "english please", {"body": "b"}, "locale", "not a locale"),
        ("cart", "sms", "x" * 41, {"body": "b"}, "locale", "not a locale"),
        ("cart", "sms", "", ["body"], "parts", "object"),
        ("cart", "sms", "", {"body": 5}, "parts.body", "text"),
        ("cart", "sms", "", {"Body": "b"}, "parts", "part name"),
        ("cart", "sms", "", {f"p{i}": "x" for i in range(21)}, "parts", "at most 20"),
        ("cart", "sms", "", {"body": "x" * 300_000}, "parts.body", "characters long"),
        ("cart", "email", "", {"text": "t"}, "parts.subject", "needs subject"),
        ("cart", "email", "", {"subject": "s", "html": "  "}, "parts.text", "text or html"),
        ("cart", "sms", "", {"text": "t"}, "parts.body", "needs body"),
        ("cart", "whatsapp", "", {}, "parts.body", "needs body"),
        ("cart", "mobile_push", "", {"title": "t"}, "parts.body", "needs body"),
        ("cart", "web_push", "", {"body": "b"}, "parts.title", "needs title"),
        ("cart", "in_app", "", {"url": "u"}, "parts.title", "title or body"),
        ("cart", "webhook", "", {"body": "{}"}, "parts.payload", "needs payload"),
        ("cart", "email", "", {"subject": "s", "html": "<p>\n{{ x }\n"}, "parts.html",
         "html, line 2"),
        ("cart", "onsite", "", {"body": "{% include 'x' %}"}, "parts.body", "include"),
    ],
)  # fmt: skip
def test_template_store_refuses_invalid_templates(
    db: Database, key: str, channel: str, locale: str, parts: Any, field: str, words: str
) -> None:
    with db.write() as conn, pytest.raises(TemplateInvalid) as caught:
        template_store.save_template(conn, key, channel, locale, parts, NOW)
    assert caught.value.field == field
    assert words in caught.value.message
    with db.read() as conn:
        assert template_store.list_templates(conn) == []


def test_template_store_accepts_every_channel(db: Database) -> None:
    minimal = {
        "email": {"subject": "s", "html": "<p>h</p>"},
        "sms": {"body": "b"},
        "whatsapp": {"body": "b"},
        "web_push": {"title": "t", "body": "b", "url": "{{ link('/') }}"},
        "mobile_push": {"title": "t", "body": "b"},
        "in_app": {"body": "b"},
        "onsite": {"title": "t"},
        "webhook": {"payload": '{"email": {{ profile.email|tojson }}}'},
    }
    with db.write() as conn:
        for channel, parts in minimal.items():
            template_store.save_template(conn, "all", channel, "en-US", parts, NOW)
    with db.read() as conn:
        for channel, parts in minimal.items():
            assert template_store.get_variants(conn, "all", channel) == {"en-US": parts}
