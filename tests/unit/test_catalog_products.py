"""parse_product (what shops send -> what the catalog stores), changes (which stock and
price changes become catalog events) and tally (what a run of events adds to the
per-product counts). Pure functions, no database."""

from __future__ import annotations

from typing import Any

import pytest

from shopkeeper.catalog.products import (
    FIELDS,
    CatalogEvent,
    ProductError,
    changes,
    locale_key,
    normalize_category,
    parse_product,
)
from shopkeeper.catalog.stats import DayStats, tally
from shopkeeper.profiles.model import EventView, ReducerConfig
from shopkeeper.profiles.values import Settings


def error_of(raw: dict[str, Any]) -> tuple[str, str | None]:
    with pytest.raises(ProductError) as caught:
        parse_product(raw)
    return str(caught.value), caught.value.field


# -- parse: the nested form ------------------------------------------------------------------


def test_a_full_json_product_is_normalised() -> None:
    product = parse_product(
        {
            "id": " SOFA-1 ",
            "sku": "SKU-1",
            "name": "  Linen sofa ",
            "description": "Soft.\nDeep seats.",
            "category": "Home/ Living room >Sofas ",
            "brand": "Nordlys",
            "price": "1.299,00",
            "sale_price": 999,
            "currency": "nok",
            "stock_quantity": "7",
            "url": "https://shop.example/p/sofa-1",
            "image_url": "http://cdn.example/sofa-1.jpg",
            "attributes": {"color": "sand", "seats": 3},
            "locales": {"nb_no": {"name": "Linsofa", "url": "https://shop.example/no/sofa-1"}},
            "ignored_column": "whatever",
        }
    )
    assert product == {
        "id": "SOFA-1",
        "sku": "SKU-1",
        "name": "Linen sofa",
        "description": "Soft.\nDeep seats.",
        "category": "Home > Living room > Sofas",
        "brand": "Nordlys",
        "price": 1299.0,
        "sale_price": 999.0,
        "currency": "NOK",
        "stock_quantity": 7,
        "url": "https://shop.example/p/sofa-1",
        "image_url": "http://cdn.example/sofa-1.jpg",
        "attributes": {"color": "sand", "seats": 3},
        "locales": {"nb-NO": {"name": "Linsofa", "url": "https://shop.example/no/sofa-1"}},
    }
    assert tuple(product) == FIELDS


def test_a_minimal_product_has_every_key_with_empty_values() -> None:
    assert parse_product({"id": 42, "name": "Mug"}) == {
        "id": "42",
        "sku": None,
        "name": "Mug",
        "description": None,
        "category": None,
        "brand": None,
        "price": None,
        "sale_price": None,
        "currency": None,
        "stock_quantity": None,
        "url": None,
        "image_url": None,
        "attributes": {},
        "locales": {},
    }


# -- parse: flat CSV rows ---------------------------------------------------------------------


def test_a_csv_row_of_strings_with_prefixed_columns() -> None:
    row = {
        "product_id": "p-7",
        "name": "Wool throw",
        "category": "Home > Living room > Throws",
        "price": "12,50",
        "sale_price": "",
        "currency": "",
        "stock": "",
        "url": "",
        "attr.color": " grey ",
        "attr.material": "wool",
        "attr.empty": "",
        "name.nb-NO": "Ullpledd",
        "url.nb-NO": "https://shop.example/no/p-7",
        "name.th": "ผ้าห่มขนสัตว์",
        "url.ro-RO": "",
        "description": "",
    }
    product = parse_product(row)
    assert product["id"] == "p-7"
    assert product["price"] == 12.5
    assert (product["sale_price"], product["currency"], product["stock_quantity"]) == (
        None,
        None,
        None,
    )
    assert product["url"] is None
    assert product["description"] is None
    assert product["attributes"] == {"color": "grey", "material": "wool"}
    assert product["locales"] == {
        "nb-NO": {"name": "Ullpledd", "url": "https://shop.example/no/p-7"},
        "th": {"name": "ผ้าห่มขนสัตว์"},
    }


def test_attributes_and_locales_as_json_cells_merge_with_prefixed_columns() -> None:
    product = parse_product(
        {
            "id": "p",
            "name": "N",
            "attributes": '{"color": "red", "size": "M"}',
            "attr.color": "blue",
            "locales": '{"en-us": {"name": "Sweater"}}',
            "url.EN_us": "https://shop.example/us/p",
        }
    )
    assert product["attributes"] == {"color": "blue", "size": "M"}
    assert product["locales"] == {"en-US": {"name": "Sweater", "url": "https://shop.example/us/p"}}


def test_the_canonical_column_wins_over_its_alias_in_either_order() -> None:
    assert parse_product({"product_id": "a", "id": "b", "name": "N"})["id"] == "b"
    assert parse_product({"id": "b", "product_id": "a", "name": "N"})["id"] == "b"
    # An empty canonical column does not hide a filled alias.
    assert parse_product({"id": "", "product_id": "a", "name": "N"})["id"] == "a"
    assert (
        parse_product({"stock": "3", "stock_quantity": "", "id": "x", "name": "N"})[
            "stock_quantity"
        ]
        == 3
    )


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("12.50", 12.5),
        ("12,50", 12.5),
        ("1.234,50", 1234.5),
        ("1,234.50", 1234.5),
        ("1 234,50", 1234.5),
        ("1,234,567", 1234567.0),
        (" 0 ", 0.0),
        ("19.99", 19.99),
    ],
)
def test_prices_written_the_way_people_write_them(text: str, expected: float) -> None:
    assert parse_product({"id": "p", "name": "N", "price": text})["price"] == expected


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("Home > Living room > Sofas", "Home > Living room > Sofas"),
        ("Home/Living room/Sofas", "Home > Living room > Sofas"),
        (" Home >> Kitchen / ", "Home > Kitchen"),
        (["Home", " Garden "], "Home > Garden"),
        (" > / ", None),
        ("", None),
    ],
)
def test_category_paths(raw: Any, expected: str | None) -> None:
    assert normalize_category(raw) == expected


@pytest.mark.parametrize(
    ("raw", "expected"),
    [("nb-NO", "nb-NO"), ("nb_no", "nb-NO"), ("EN", "en"), ("zh-hant-tw", "zh-Hant-TW")],
)
def test_locale_tags_are_tidied(raw: str, expected: str) -> None:
    assert locale_key(raw) == expected


# -- parse: errors --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "message", "field"),
    [
        ({"name": "N"}, "id is required: the shop's product id, as events carry it", "id"),
        (
            {"id": "  ", "name": "N"},
            "id is required: the shop's product id, as events carry it",
            "id",
        ),
        ({"id": "x" * 201, "name": "N"}, "id is 201 characters long; at most 200", "id"),
        ({"id": True, "name": "N"}, "id must be text, not True", "id"),
        ({"id": "a\tb", "name": "N"}, "id holds control characters (line breaks, tabs...)", "id"),
        ({"id": "p"}, "name is required", "name"),
        ({"id": "p", "name": ["a"]}, "name must be text, not list", "name"),
        (
            {"id": "p", "name": "N", "price": "12.50 EUR"},
            "price must be a number such as 12.50 or 12,50, not '12.50 EUR'",
            "price",
        ),
        (
            {"id": "p", "name": "N", "price": "1_000"},
            "price must be a number such as 12.50 or 12,50, not '1_000'",
            "price",
        ),
        ({"id": "p", "name": "N", "price": -1}, "price must not be negative (-1)", "price"),
        ({"id": "p", "name": "N", "price": "nan"}, "price must be a finite number", "price"),
        ({"id": "p", "name": "N", "price": True}, "price must be a number, not True", "price"),
        (
            {"id": "p", "name": "N", "price": 1e13},
            "price is implausibly large (10000000000000.0)",
            "price",
        ),
        (
            {"id": "p", "name": "N", "price": 10, "sale_price": "12"},
            "sale_price (12) is higher than price (10); a sale price is the reduced price",
            "sale_price",
        ),
        (
            {"id": "p", "name": "N", "currency": "euro"},
            "currency must be a three-letter ISO 4217 code such as EUR, not 'euro'",
            "currency",
        ),
        (
            {"id": "p", "name": "N", "stock_quantity": "2.5"},
            "stock_quantity must be a whole number of units, not '2.5'",
            "stock_quantity",
        ),
        (
            {"id": "p", "name": "N", "stock": "many"},
            "stock_quantity must be a whole number of units (or empty when stock is not "
            "tracked), not 'many'",
            "stock_quantity",
        ),
        (
            {"id": "p", "name": "N", "stock_quantity": -3},
            "stock_quantity must not be negative (-3)",
            "stock_quantity",
        ),
        (
            {"id": "p", "name": "N", "url": "javascript:alert(1)"},
            "url must be an http:// or https:// address, not 'javascript:alert(1)'",
            "url",
        ),
        (
            {"id": "p", "name": "N", "image_url": "ftp://cdn.example/a.jpg"},
            "image_url must be an http:// or https:// address, not 'ftp://cdn.example/a.jpg'",
            "image_url",
        ),
        (
            {"id": "p", "name": "N", "url": "https://"},
            "url must be an http:// or https:// address, not 'https://'",
            "url",
        ),
        (
            {"id": "p", "name": "N", "attributes": "[1, 2]"},
            "attributes must be a JSON object, not list",
            "attributes",
        ),
        (
            {"id": "p", "name": "N", "attributes": "{oops"},
            "attributes must be a JSON object such as {'a': 1}",
            "attributes",
        ),
        (
            {"id": "p", "name": "N", "locales": {"not a locale": {"name": "x"}}},
            "locales: 'not a locale' is not a locale; use tags such as en, nb-NO or zh-Hant-TW",
            "locales",
        ),
        (
            {"id": "p", "name": "N", "locales": {"nb-NO": {"title": "x"}}},
            "locales.nb-NO: unknown field 'title'; a locale has a name and a url",
            "locales.nb-NO.title",
        ),
        (
            {"id": "p", "name": "N", "locales": {"nb-NO": {"url": "shop.example/no"}}},
            "locales.nb-NO.url must be an http:// or https:// address, not 'shop.example/no'",
            "locales.nb-NO.url",
        ),
        (
            {"id": "p", "name": "N", "url.x1": "https://a.example"},
            "url.x1: 'x1' is not a locale; use tags such as en, nb-NO or zh-Hant-TW",
            "url.x1",
        ),
    ],
)
def test_bad_products_are_refused_with_a_reason_and_the_field(
    raw: dict[str, Any], message: str, field: str
) -> None:
    assert error_of(raw) == (message, field)


def test_errors_never_echo_long_values() -> None:
    message, field = error_of({"id": "p", "name": "N", "price": "9" * 30 + " dollars" * 100})
    assert field == "price"
    assert message == (
        "price must be a number such as 12.50 or 12,50, not "
        "'999999999999999999999999999999 dollar...'"
    )
    long_description = "x" * 20_001
    assert error_of({"id": "p", "name": "N", "description": long_description}) == (
        "description is 20001 characters long; at most 20000",
        "description",
    )


def test_attribute_limits() -> None:
    too_many = {f"attr.a{i}": "1" for i in range(201)}
    assert error_of({"id": "p", "name": "N", **too_many}) == (
        "a product has at most 200 attributes",
        "attributes",
    )
    big = {"blob": "x" * 40_000}
    message, field = error_of({"id": "p", "name": "N", "attributes": big})
    assert (message, field) == ("attributes take 40012 bytes as JSON; at most 32768", "attributes")


def test_a_non_mapping_is_refused() -> None:
    with pytest.raises(ProductError, match="a product must be a JSON object"):
        parse_product(["id", "name"])  # type: ignore[arg-type]


# -- changes --------------------------------------------------------------------------------


def product(stock: int | None = None, price: float | None = 100.0, **more: Any) -> dict[str, Any]:
    return {
        "id": "p1",
        "name": "Lamp",
        "price": price,
        "sale_price": None,
        "currency": "EUR",
        "stock_quantity": stock,
        **more,
    }


def types(old: dict[str, Any] | None, new: dict[str, Any], threshold: int = 5) -> list[str]:
    return [event.type for event in changes(old, new, threshold)]


def test_back_in_stock_goes_from_zero_to_some() -> None:
    assert changes(product(0), product(3), 5) == [
        CatalogEvent(
            "p1",
            "Product Back In Stock",
            {"product_id": "p1", "name": "Lamp", "old_stock": 0, "new_stock": 3},
        )
    ]
    assert types(product(0), product(50)) == ["Product Back In Stock"]


def test_no_stock_event_for_new_or_untracked_products() -> None:
    assert types(None, product(0)) == []
    assert types(None, product(3)) == []
    assert types(product(None), product(3)) == []
    assert types(product(None), product(0)) == []
    assert types(product(4), product(None)) == []
    assert types(product(0), product(0)) == []
    assert types(product(9), product(8)) == []


def test_out_of_stock_from_some_to_zero() -> None:
    assert changes(product(2), product(0), 5) == [
        CatalogEvent(
            "p1",
            "Product Out Of Stock",
            {"product_id": "p1", "name": "Lamp", "old_stock": 2, "new_stock": 0},
        )
    ]
    # From above the threshold straight to zero: out of stock, not low stock.
    assert types(product(40), product(0)) == ["Product Out Of Stock"]


def test_low_stock_when_crossing_the_threshold() -> None:
    assert changes(product(6), product(5), 5) == [
        CatalogEvent(
            "p1",
            "Product Low Stock",
            {"product_id": "p1", "name": "Lamp", "old_stock": 6, "new_stock": 5, "threshold": 5},
        )
    ]
    assert types(product(100), product(1)) == ["Product Low Stock"]
    # Already low: no second event; going up is no event.
    assert types(product(5), product(4)) == []
    assert types(product(3), product(9)) == []
    # Zero to low is back in stock, not low stock.
    assert types(product(0), product(2)) == ["Product Back In Stock"]
    # A threshold of 0 turns low-stock events off.
    assert types(product(6), product(1), threshold=0) == []


def test_price_dropped_on_the_effective_price() -> None:
    assert changes(product(price=100.0), product(price=79.5), 5) == [
        CatalogEvent(
            "p1",
            "Product Price Dropped",
            {
                "product_id": "p1",
                "name": "Lamp",
                "old_price": 100.0,
                "new_price": 79.5,
                "currency": "EUR",
                "drop_percent": 20.5,
            },
        )
    ]
    # A sale starting is a drop; the sale ending is not.
    on_sale = product(price=100.0, sale_price=60.0)
    assert [(e.type, e.details["new_price"]) for e in changes(product(), on_sale, 5)] == [
        ("Product Price Dropped", 60.0)
    ]
    assert types(on_sale, product()) == []
    # The list price drops while the sale price holds: what people pay did not change.
    assert types(on_sale, product(price=90.0, sale_price=60.0)) == []
    assert types(product(price=100.0), product(price=100.0)) == []
    assert types(product(price=100.0), product(price=120.0)) == []
    assert types(product(price=None), product(price=10.0)) == []
    assert types(product(price=10.0), product(price=None)) == []
    assert types(None, product(price=1.0)) == []


def test_a_currency_change_is_not_a_drop() -> None:
    assert types(product(price=100.0), product(price=10.0, currency="USD")) == []


def test_price_drop_and_stock_event_together() -> None:
    assert types(product(0, price=50.0), product(10, price=40.0)) == [
        "Product Back In Stock",
        "Product Price Dropped",
    ]
    (_, drop) = changes(product(0, price=3.0), product(10, price=1.0), 5)
    assert drop.details["drop_percent"] == 66.67


def test_float_dust_is_not_a_price_change() -> None:
    assert types(product(price=0.3), product(price=0.1 + 0.2)) == []


# -- tally (the pipeline's per-product counts) -------------------------------------------------


def test_tally_counts_per_product_and_utc_day() -> None:
    def ev(name: str | None, ms: int, type_: str = "track", **props: Any) -> EventView:
        return EventView(type_, name, ms, "", f"m{ms}", properties=props)

    day = 20_000 * 86_400_000  # 2024-10-04T00:00:00Z
    money = Settings(ReducerConfig(shop_currency="EUR", exchange_rates={"NOK": 0.1}))
    counts = tally(
        [
            ev("Product Viewed", day - 1, product_id="a"),  # the day before
            ev("Product Viewed", day, product_id=7),
            ev("Product Viewed", day + 5, sku="a"),
            ev("Product Viewed", day + 6),  # no product: nothing to count
            ev("Product Viewed", day + 7, "page", product_id="a"),  # a page, not the event
            ev("Wishlist Product Added to Cart", day + 8, product_id="a"),
            ev("Product Added", day + 9, product_id="a", quantity=3),
            ev(
                "Order Completed",
                day + 10,
                currency="NOK",
                products=[
                    {"product_id": "a", "price": "100", "quantity": 1.5},
                    {"product_id": "a", "price": 10},
                    {"product_id": "7", "quantity": 2},  # no price: units, no revenue
                    "junk",
                ],
            ),
            ev("Order Completed", day + 11, currency="SEK", products=[{"id": "a", "price": 50}]),
            ev("Order Refunded", day + 12, products=[{"product_id": "a", "price": 50}]),
        ],
        money,
    )
    assert counts == {
        ("a", 19_999): DayStats(views=1),
        ("7", 20_000): DayStats(views=1, orders=1, units=2),
        # 150 NOK + 10 NOK at 0.1 = 16 EUR; the SEK order has no rate.
        ("a", 20_000): DayStats(views=1, cart_adds=2, orders=2, units=3.5, revenue_cents=1600),
    }
