"""Column mapping and rows -> messages (customers -> identify, orders -> Order Completed),
as pure functions."""

from __future__ import annotations

from typing import Any

import pytest

from shopkeeper.identity.identifiers import IdentifierExtractor, JunkFilter
from shopkeeper.imports import messages
from shopkeeper.imports.customers import customer_message
from shopkeeper.imports.mapping import (
    MappedRow,
    RowMapper,
    build_map,
    canonical,
    check_required,
    parse_map_options,
    resolve,
)
from shopkeeper.imports.model import ImportFailure, RowError
from shopkeeper.imports.orders import MAX_LINES, OrderAssembler, order_message
from shopkeeper.imports.values import derived_anonymous_id
from shopkeeper.profiles.consents import extract_consents
from shopkeeper.profiles.model import ConsentChange, EventView

DEE_ANON = derived_anonymous_id("email", "dee@example.com")


def mapper(kind: str, columns: list[str] | None, mapping: dict[str, Any] | None = None) -> Any:
    return RowMapper(build_map(kind, mapping), columns)


def test_loose_column_names() -> None:
    assert canonical("  E-Mail  Address ") == "e_mail_address"
    assert canonical("FIRST_NAME") == canonical("first name") == "first_name"


def test_default_customer_mapping_takes_the_first_alias_and_keeps_the_rest_as_traits() -> None:
    columns = ["ID", "Customer ID", "E-mail", "First Name", "Loyalty Tier", "vipSince"]
    resolved = mapper("customers", columns).fixed
    # customer_id is tried before id; "id" is then an ordinary column.
    assert resolved.fields == {
        "user_id": "Customer ID",
        "email": "E-mail",
        "first_name": "First Name",
    }
    assert resolved.extras == (
        ("ID", "ID"),
        ("Loyalty Tier", "loyalty_tier"),
        ("vipSince", "vipSince"),
    )


def test_overrides_turn_off_and_ignore() -> None:
    columns = ["id", "Kundenummer", "Mail", "Password Hash", "note"]
    mapping = parse_map_options(
        ["user_id=Kundenummer", "email=mail", "ignore=Password Hash", "ignore=id"]
    )
    assert mapping == {"user_id": "Kundenummer", "email": "mail", "ignore": ["Password Hash", "id"]}
    resolved = mapper("customers", columns, mapping).fixed
    assert resolved.fields == {"user_id": "Kundenummer", "email": "Mail"}
    assert resolved.extras == (("note", "note"),)

    off = mapper("customers", ["id", "email"], {"user_id": ""}).fixed
    assert off.fields == {"email": "email"}
    assert off.extras == (("id", "id"),)


@pytest.mark.parametrize(
    ("kind", "mapping", "message"),
    [
        ("customers", {"mail": "x"}, "mapping: 'mail' is not a field of customers"),
        ("customers", {"email": 3}, "mapping: the column for email must be a name"),
        ("customers", {"ignore": {"a": 1}}, "mapping: ignore takes a column name or a list"),
        ("people", {}, "kind must be one of customers, orders, products, not 'people'"),
    ],
)
def test_bad_mappings_are_refused(kind: str, mapping: dict[str, Any], message: str) -> None:
    with pytest.raises(ImportFailure) as refused:
        build_map(kind, mapping)
    assert str(refused.value).startswith(message)


def test_mapping_a_missing_column_and_missing_required_fields() -> None:
    with pytest.raises(ImportFailure) as refused:
        mapper("customers", ["id", "email"], {"email": "E-mail address"})
    assert (
        str(refused.value) == "mapping: there is no column 'e_mail_address' for email in the file"
    )
    with pytest.raises(ImportFailure) as missing:
        check_required(
            "orders", resolve(build_map("orders", {}), ["order_id", "email"], strict=True)
        )
    assert str(missing.value) == (
        "the file has no column for date (looked for created_at, order_date, date, ordered_at, "
        "completed_at, purchase_date, timestamp); name it with a mapping, e.g. --map date=COLUMN"
    )
    with pytest.raises(ImportFailure, match="no column for user_id or email or phone"):
        check_required("customers", resolve(build_map("customers", {}), ["name"], strict=True))


def test_columns_that_differ_only_in_spelling_are_refused() -> None:
    with pytest.raises(ImportFailure) as refused:
        mapper("customers", ["First Name", "email", "first_name"])
    assert str(refused.value) == (
        "columns 'First Name' and 'first_name' name the same thing; rename or ignore one of them"
    )


def test_json_lines_rows_resolve_per_key_set_and_empty_values_are_absent() -> None:
    m = mapper("customers", None)
    first = m.map(1, {"userId": 7, "email": " ", "tier": "gold", "address": {"city": "Oslo"}})
    assert (first.values, first.extras) == (
        {"user_id": 7, "street": {"city": "Oslo"}},
        {"tier": "gold"},
    )
    second = m.map(2, {"customer_id": "c2", "nickname": None})
    assert (second.values, second.extras) == ({"user_id": "c2"}, {})


def customer(values: dict[str, Any], columns: list[str] | None = None) -> dict[str, Any]:
    m = mapper("customers", columns or list(values))
    return customer_message(m.map(2, values))


def test_a_customer_row_becomes_an_identify_with_traits_address_and_consents() -> None:
    message = customer(
        {
            "customer_id": "c-1",
            "Email": "  Ana@Example.COM ",
            "first name": "Ana",
            "Last_Name": "Silva",
            "phone": "+47 912 34 567",
            "Birthday": "1990-05-17",
            "city": "Oslo",
            "Country": "NO",
            "zip": "0150",
            "signup_date": "2023-01-05",
            "accepts_marketing": "yes",
            "SMS opt-in": "no",
            "locale": "nb-NO",
            "Loyalty Tier": "gold",
            "updated_at": "2026-11-01T08:00:00+01:00",
        }
    )
    assert message == {
        "type": "identify",
        "userId": "c-1",
        "traits": {
            "loyalty_tier": "gold",
            "email": "ana@example.com",
            "phone": "+47 912 34 567",
            "firstName": "Ana",
            "lastName": "Silva",
            "birthday": "1990-05-17",
            "address": {"city": "Oslo", "postalCode": "0150", "country": "NO"},
            "createdAt": "2023-01-05T00:00:00.000Z",
            "email_opt_in": True,
            "sms_opt_in": False,
        },
        "context": {"locale": "nb-NO"},
        "timestamp": "2026-11-01T07:00:00.000Z",
    }
    # The profile reducers read these traits as consents.
    view = EventView("identify", None, 0, "", "m", traits=message["traits"])
    assert extract_consents(view) == [
        ConsentChange("email", "marketing", True, 0, "trait:email_opt_in"),
        ConsentChange("sms", "marketing", False, 0, "trait:sms_opt_in"),
    ]


def test_a_customer_known_only_by_email_gets_a_derived_anonymous_id() -> None:
    message = customer({"email": "Dee@Example.com", "name": "Dee"})
    assert message == {
        "type": "identify",
        "anonymousId": DEE_ANON,
        "traits": {"email": "dee@example.com", "name": "Dee"},
    }
    assert DEE_ANON.startswith("imp-email-")
    assert "dee" not in DEE_ANON


@pytest.mark.parametrize(
    ("values", "reason"),
    [
        ({"name": "Nobody"}, "the row has no customer id, email or phone; a customer needs one"),
        ({"id": "c-77", "E-mail": "ana@"}, "email (column 'E-mail') is not a valid email address"),
        ({"id": "c-77", "dob": "17/05/1990x"}, None),  # birthdays are kept as written
        ({"id": "c-77", "created_at": "05/01/2023"},
         "created_at is not a date (write it as 2024-03-05 or 2024-03-05T14:30:00Z)"),
        ({"id": "c-77", "newsletter": "perhaps"},
         "email_opt_in (column 'newsletter') is not a yes/no value (true, false, yes, no, 1, 0)"),
        ({"id": "x" * 501}, "user_id (column 'id') is longer than 500 characters"),
    ],
)  # fmt: skip
def test_customer_rows_that_cannot_be_imported(values: dict[str, Any], reason: str | None) -> None:
    if reason is None:
        assert customer(values)["traits"]["birthday"] == "17/05/1990x"
        return
    with pytest.raises(RowError) as rejected:
        customer(values)
    assert rejected.value.reason == reason
    # Reasons never quote the values (personal data).
    for value in values.values():
        assert value not in rejected.value.reason


O1 = ["o1", "c1", "", "2025-01-10T10:00:00Z", "150", "usd"]
E7 = [""] * 7
ORDER_COLUMNS = ["order_id", "customer_id", "email", "order_date", "total", "currency",
                 "product_id", "name", "category", "price", "quantity", "payment"]  # fmt: skip


def rows(*lines: list[Any], columns: list[str] = ORDER_COLUMNS) -> list[MappedRow]:
    m = mapper("orders", columns)
    return [m.map(number, dict(zip(columns, line, strict=True))) for number, line in lines]  # type: ignore[misc]


def line(number: int, *values: Any) -> list[Any]:
    return [number, list(values)]


def grouped(mapped: list[MappedRow]) -> list[list[MappedRow]]:
    assembler = OrderAssembler()
    groups = [g for row in mapped if (g := assembler.add(row)) is not None]
    last = assembler.finish()
    return [*groups, *([last] if last else [])]


def test_consecutive_line_item_rows_make_one_order_completed() -> None:
    mapped = rows(
        (2, [*O1, "p1", "Sofa", "Home > Sofas", "100", "1", "card"]),
        (3, [*O1, "p2", "Lamp", "Home > Lamps", "25", "2", "card"]),
        (4, ["o2", "", "Dee@example.com", "2025-02-01", "40.5", "", "p3", "Mug", "", "20.25", "2",
             ""]),
    )  # fmt: skip
    first, second = grouped(mapped)
    assert [r.line for r in first] == [2, 3]
    assert order_message(first) == {
        "type": "track",
        "event": "Order Completed",
        "userId": "c1",
        "timestamp": "2025-01-10T10:00:00.000Z",
        "properties": {
            "payment": "card",
            "order_id": "o1",
            "total": 150,
            "currency": "USD",
            "products": [
                {"product_id": "p1", "name": "Sofa", "category": "Home > Sofas", "price": 100,
                 "quantity": 1},
                {"product_id": "p2", "name": "Lamp", "category": "Home > Lamps", "price": 25,
                 "quantity": 2},
            ],
        },
    }  # fmt: skip
    message = order_message(second)
    assert message == {
        "type": "track",
        "event": "Order Completed",
        "anonymousId": DEE_ANON,
        "context": {"traits": {"email": "dee@example.com"}},
        "timestamp": "2025-02-01T00:00:00.000Z",
        "properties": {
            "order_id": "o2",
            "total": 40.5,
            "products": [{"product_id": "p3", "name": "Mug", "price": 20.25, "quantity": 2}],
        },
    }
    # Identity resolution reads the email of an order that names no user id.
    extractor = IdentifierExtractor(JunkFilter())
    assert [str(i) for i in extractor.extract(message)] == [
        "email:dee@example.com",
        f"anonymous_id:{DEE_ANON}",
    ]


def test_an_order_with_a_products_json_column_and_order_level_amounts() -> None:
    columns = ["id", "user_id", "date", "revenue", "tax", "shipping", "discount", "coupon",
               "store", "status", "products"]  # fmt: skip
    products = '[{"product_id": "p1", "price": 10, "quantity": 3}]'
    (order,) = rows(
        (2, ["r-9", "42", "1735689600", "30", "2.5", "0", "-5", "WELCOME", "Oslo City", "paid",
             products]),
        columns=columns,
    )  # fmt: skip
    assert order_message([order]) == {
        "type": "track",
        "event": "Order Completed",
        "userId": "42",
        "timestamp": "2025-01-01T00:00:00.000Z",
        "properties": {
            "order_id": "r-9",
            "revenue": 30,
            "tax": 2.5,
            "shipping": 0,
            "discount": 5,
            "coupon": "WELCOME",
            "affiliation": "Oslo City",
            "status": "paid",
            "products": [{"product_id": "p1", "price": 10, "quantity": 3}],
        },
    }
    (voided,) = rows(
        (3, ["r-10", "42", "2025-01-02", "", "", "", "", "", "", "Cancelled", ""]), columns=columns
    )
    assert order_message([voided])["event"] == "Order Cancelled"


@pytest.mark.parametrize(
    ("values", "reason", "line"),
    [
        (["", "c1", "", "2025-01-01", "1", *E7], "the row has no order id", None),
        (["o1", "c1", "", "", "1", "", "", "", "", "", "", ""], "the order has no date", None),
        (["o1", "", "", "2025-01-01", "1", "", "", "", "", "", "", ""],
         "the order has no customer id, email or phone to link it to a customer", None),
        (["o1", "c1", "", "2025-01-01", "1,5", "", "", "", "", "", "", ""],
         "total is not a number (write it as 1234.50)", None),
        (["o1", "c1", "", "2025-01-01", "-1", *E7], "total is negative", None),
        (["o1", "c1", "", "2025-01-01", "1", "dollars", "", "", "", "", "", ""],
         "currency is not a three-letter currency code", None),
        (["o1", "c1", "", "2025-01-01", "1", "", "p", "", "", "cheap", "", ""],
         "price is not a number (write it as 1234.50)", 2),
    ],
)  # fmt: skip
def test_order_rows_that_cannot_be_imported(
    values: list[Any], reason: str, line: int | None
) -> None:
    with pytest.raises(RowError) as rejected:
        order_message(rows((2, values)))
    assert (rejected.value.reason, rejected.value.line) == (reason, line)


def test_an_order_with_too_many_rows_is_rejected_and_the_next_order_survives() -> None:
    assembler = OrderAssembler()
    m = mapper("orders", ["order_id", "sku"])
    assert all(
        assembler.add(m.map(n, {"order_id": "big", "sku": str(n)})) is None
        for n in range(2, MAX_LINES + 10)
    )
    with pytest.raises(RowError) as rejected:
        assembler.add(m.map(5000, {"order_id": "next", "sku": "x"}))
    assert (rejected.value.reason, rejected.value.line) == (
        f"the order has more than {MAX_LINES} rows",
        2,
    )
    last = assembler.finish()
    assert last is not None
    assert [r.line for r in last] == [5000]


def test_message_ids_depend_on_content_only() -> None:
    a = {"type": "identify", "userId": "1", "traits": {"a": 1, "b": 2}}
    b = {"traits": {"b": 2, "a": 1}, "userId": "1", "type": "identify"}
    c = {"type": "identify", "userId": "1", "traits": {"a": 1, "b": 3}}
    messages.stamp("customers", a)
    messages.stamp("customers", b)
    messages.stamp("customers", c)
    assert a["messageId"] == b["messageId"] != c["messageId"]
    assert a["messageId"].startswith("crm-customer-")
    assert len(a["messageId"]) == len("crm-customer-") + 32
    order = {"type": "track", "event": "Order Completed", "userId": "1"}
    assert messages.stamp("orders", order) == (
        len(b'{"event":"Order Completed","type":"track","userId":"1"}') + 60,
        False,
    )
    assert order["messageId"].startswith("pos-order-")
