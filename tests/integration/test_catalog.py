"""The catalog end to end, on SQLite and PostgreSQL: the admin API, bulk upserts, the
catalog events of stock and price changes, and per-product numbers kept by the pipeline
from events sent through /v1 (including events about products the catalog learns of
later)."""

from __future__ import annotations

import threading
import time
from typing import Any

import sqlalchemy as sa

from shopkeeper.catalog import service
from shopkeeper.catalog.products import parse_product
from shopkeeper.storage import tables as t
from shopkeeper.timeutil import ms_to_iso
from tests.harness import NOW, Harness, harness

DAY = 86_400_000


def put(h: Harness, product_id: str, body: Any) -> Any:
    return h.client.put(f"/api/products/{product_id}", json=body, headers=h.admin)


def put_ok(h: Harness, product_id: str, body: dict[str, Any]) -> dict[str, Any]:
    response = put(h, product_id, body)
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


def get(h: Harness, path: str) -> Any:
    response = h.client.get(path, headers=h.admin)
    assert response.status_code == 200, response.text
    return response.json()


def error(code: str, message: str, field: str | None) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, "field": field}}


def audit_rows(h: Harness) -> list[tuple[str, str, str | None, dict[str, Any]]]:
    with h.services.db.read() as conn:
        rows = conn.execute(
            sa.select(
                t.audit_log.c.actor,
                t.audit_log.c.action,
                t.audit_log.c.target,
                t.audit_log.c.details,
            )
            .where(t.audit_log.c.action.like("products.%"))
            .order_by(t.audit_log.c.id)
        ).all()
    return [tuple(row) for row in rows]


def admin_actor(h: Harness) -> str:
    with h.services.db.read() as conn:
        row = conn.execute(sa.select(t.admin_keys.c.id, t.admin_keys.c.name)).one()
    return f"admin key {row.id} ({row.name})"


LAMP: dict[str, Any] = {
    "name": "Brass desk lamp",
    "sku": "LAMP-BR",
    "category": "Home/Office/Lamps",
    "brand": "Lux",
    "price": "89,90",
    "currency": "eur",
    "stock_quantity": 8,
    "url": "https://shop.example/p/lamp-1",
    "attributes": {"color": "brass"},
    "locales": {"nb_NO": {"name": "Messinglampe"}},
}


def test_put_creates_replaces_and_records_each_catalog_event_once(db_url: str) -> None:
    with harness(db_url) as h:
        created = put_ok(h, "lamp-1", LAMP)
        assert created == {
            "status": "created",
            "product": {
                "id": "lamp-1",
                "sku": "LAMP-BR",
                "name": "Brass desk lamp",
                "description": None,
                "category": "Home > Office > Lamps",
                "brand": "Lux",
                "price": 89.9,
                "sale_price": None,
                "currency": "EUR",
                "stock_quantity": 8,
                "url": "https://shop.example/p/lamp-1",
                "image_url": None,
                "attributes": {"color": "brass"},
                "locales": {"nb-NO": {"name": "Messinglampe", "url": None}},
                "created_at": ms_to_iso(NOW),
                "updated_at": ms_to_iso(NOW),
                "deleted_at": None,
            },
            "catalog_events": [],
        }
        # The same product again (the id may be repeated in the body): nothing changes.
        h.clock.advance(1000)  # type: ignore[attr-defined]
        again = put_ok(h, "lamp-1", {**LAMP, "id": "lamp-1"})
        assert (again["status"], again["catalog_events"]) == ("unchanged", [])
        assert again["product"]["updated_at"] == ms_to_iso(NOW)

        steps = [
            ({"stock_quantity": 4}, "Product Low Stock"),
            ({"stock_quantity": 3}, None),  # already low
            ({"stock_quantity": 0}, "Product Out Of Stock"),
            ({"stock_quantity": 0}, None),
            ({"stock_quantity": 20}, "Product Back In Stock"),
            ({"stock_quantity": 20, "sale_price": "69.90"}, "Product Price Dropped"),
            ({"stock_quantity": 20, "sale_price": "69.90"}, None),
            ({"stock_quantity": 20}, None),  # the sale ends: a rise
        ]
        times = []
        for change, expected in steps:
            h.clock.advance(60_000)  # type: ignore[attr-defined]
            answer = put_ok(h, "lamp-1", {**LAMP, **change})
            assert [e["type"] for e in answer["catalog_events"]] == ([expected] if expected else [])
            if expected:
                times.append(h.clock.now_ms())
        assert answer["product"]["updated_at"] == ms_to_iso(h.clock.now_ms())
        assert answer["product"]["created_at"] == ms_to_iso(NOW)

        events = get(h, "/api/catalog/events")
        assert events["next_after"] is None
        base = {"product_id": "lamp-1", "name": "Brass desk lamp"}
        assert [{k: e[k] for k in ("type", "at", "details")} for e in events["events"]] == [
            {
                "type": "Product Low Stock",
                "at": ms_to_iso(times[0]),
                "details": {**base, "old_stock": 8, "new_stock": 4, "threshold": 5},
            },
            {
                "type": "Product Out Of Stock",
                "at": ms_to_iso(times[1]),
                "details": {**base, "old_stock": 3, "new_stock": 0},
            },
            {
                "type": "Product Back In Stock",
                "at": ms_to_iso(times[2]),
                "details": {**base, "old_stock": 0, "new_stock": 20},
            },
            {
                "type": "Product Price Dropped",
                "at": ms_to_iso(times[3]),
                "details": {
                    **base,
                    "old_price": 89.9,
                    "new_price": 69.9,
                    "currency": "EUR",
                    "drop_percent": 22.25,
                },
            },
        ]
        ids = [e["id"] for e in events["events"]]
        assert ids == sorted(ids)

        # Filters and the cursor.
        page = get(h, "/api/catalog/events?limit=3")
        assert [e["id"] for e in page["events"]] == ids[:3]
        assert page["next_after"] == ids[2]
        rest = get(h, f"/api/catalog/events?limit=3&after={ids[2]}")
        assert ([e["id"] for e in rest["events"]], rest["next_after"]) == ([ids[3]], None)
        since = get(h, f"/api/catalog/events?since={ms_to_iso(times[2])}")
        assert [e["type"] for e in since["events"]] == [
            "Product Back In Stock",
            "Product Price Dropped",
        ]
        typed = get(h, "/api/catalog/events?type=Product%20Out%20Of%20Stock&product_id=lamp-1")
        assert [e["id"] for e in typed["events"]] == [ids[1]]
        assert get(h, "/api/catalog/events?product_id=other")["events"] == []

        actor = admin_actor(h)
        audits = audit_rows(h)
        assert len(audits) == 2 + len(steps)
        assert audits[0] == (
            actor,
            "products.upsert",
            "product lamp-1",
            {"products": 1, "created": 1, "updated": 0, "unchanged": 0, "catalog_events": 0},
        )
        assert audits[4][3] == {
            "products": 1,
            "created": 0,
            "updated": 1,
            "unchanged": 0,
            "catalog_events": 1,
        }


def test_bulk_upserts_in_one_call(db_url: str) -> None:
    with harness(db_url, low_stock_threshold=10) as h:
        db = h.services.db
        products = [
            parse_product(
                {
                    "id": f"p{i:04d}",
                    "name": f"Product {i}",
                    "price": "10.00",
                    "stock": str(i % 30),
                    "category": "Home > Kitchen" if i % 2 else "Home > Garden",
                }
            )
            for i in range(1000)
        ]
        started = time.perf_counter()
        summary = service.upsert_products(db, products, NOW, low_stock_threshold=10)
        first_seconds = time.perf_counter() - started
        assert summary == service.UpsertSummary(
            created=1000, updated=0, unchanged=0, catalog_events=0
        )
        # Generous: one read and one executemany, even on a loaded shared machine.
        assert first_seconds < 20

        changed = [dict(p) for p in products]
        changed[0]["stock_quantity"] = 5  # p0000: 0 -> 5, back in stock
        changed[11]["stock_quantity"] = 0  # 11 -> 0, out of stock
        changed[29]["stock_quantity"] = 9  # 29 -> 9, low stock (threshold 10)
        changed[12]["price"] = 8.0  # price drop
        changed[13]["name"] = "Renamed"  # an update without an event
        # The same id twice: the second row is compared with the first.
        twice = dict(changed[14], stock_quantity=0)
        summary = service.upsert_products(
            db, [*changed, twice], NOW + 1000, low_stock_threshold=10, actor="cli"
        )
        assert summary == service.UpsertSummary(
            created=0, updated=6, unchanged=995, catalog_events=5
        )
        with db.read() as conn:
            events = service.catalog_events(conn)
            assert [(e["product_id"], e["type"]) for e in events] == [
                ("p0000", "Product Back In Stock"),
                ("p0011", "Product Out Of Stock"),
                ("p0012", "Product Price Dropped"),
                ("p0029", "Product Low Stock"),
                ("p0014", "Product Out Of Stock"),
            ]
            found = service.products_by_ids(conn, ["p0013", "p0014", "nope"])
            assert sorted(found) == ["p0013", "p0014"]
            assert found["p0013"]["name"] == "Renamed"
            assert found["p0014"]["stock_quantity"] == 0
            assert found["p0013"]["updated_at"] == ms_to_iso(NOW + 1000)
            assert found["p0013"]["created_at"] == ms_to_iso(NOW)
            unchanged = service.get_product(conn, "p0500")
            assert unchanged is not None
            assert unchanged["updated_at"] == ms_to_iso(NOW)
            assert service.list_products(conn, category="home > kitchen", limit=1)[1] == 500
        assert audit_rows(h) == [
            (
                "cli",
                "products.upsert",
                None,
                {
                    "products": 1001,
                    "created": 0,
                    "updated": 6,
                    "unchanged": 995,
                    "catalog_events": 5,
                },
            )
        ]
        assert service.upsert_products(db, [], NOW, low_stock_threshold=10) == (
            service.UpsertSummary()
        )


def ids_of(answer: dict[str, Any]) -> list[str]:
    return [p["id"] for p in answer["products"]]


def test_list_filters_and_paging(db_url: str) -> None:
    with harness(db_url) as h:
        rows = [
            {"id": "a1", "name": "Oak table", "sku": "TBL-OAK", "brand": "Nordlys",
             "category": "Home > Dining > Tables", "stock": "4"},
            {"id": "a2", "name": "Oak chair", "brand": "nordlys",
             "category": "Home > Dining > Chairs", "stock": "0"},
            {"id": "a3", "name": "Linen sofa", "brand": "Sova",
             "category": "Home > Living room > Sofas"},
            {"id": "a4", "name": "Living lamp", "brand": "Lux",
             "category": "Home > Living > Lamps", "stock": "12"},
            {"id": "a5", "name": "Oak vase 100%", "category": "Home > Living"},
        ]  # fmt: skip
        service.upsert_products(
            h.services.db, [parse_product(r) for r in rows], NOW, low_stock_threshold=5
        )
        assert h.client.delete("/api/products/a5", headers=h.admin).status_code == 200

        everything = get(h, "/api/products")
        assert (ids_of(everything), everything["total"]) == (["a3", "a4", "a2", "a1"], 4)
        assert get(h, "/api/products?q=oak")["products"][0]["name"] == "Oak chair"
        assert ids_of(get(h, "/api/products?q=OAK")) == ["a2", "a1"]
        assert ids_of(get(h, "/api/products?q=tbl-")) == ["a1"]
        assert ids_of(get(h, "/api/products?q=A3")) == ["a3"]
        # LIKE wildcards are literal characters in q (and the deleted a5 is hidden).
        assert get(h, "/api/products?q=%25") == {"products": [], "total": 0}
        assert get(h, "/api/products?q=_")["total"] == 0
        assert ids_of(get(h, "/api/products?category=Home%20%3E%20Living")) == ["a4"]
        assert ids_of(get(h, "/api/products?category=home/dining")) == ["a2", "a1"]
        assert ids_of(get(h, "/api/products?category=Home")) == ["a3", "a4", "a2", "a1"]
        assert ids_of(get(h, "/api/products?category=Hom")) == []
        assert ids_of(get(h, "/api/products?brand=NORDLYS")) == ["a2", "a1"]
        assert ids_of(get(h, "/api/products?in_stock=true")) == ["a3", "a4", "a1"]
        assert ids_of(get(h, "/api/products?in_stock=false")) == ["a2"]
        assert ids_of(get(h, "/api/products?in_stock=true&brand=nordlys&q=oak")) == ["a1"]

        first = get(h, "/api/products?limit=2")
        assert (ids_of(first), first["total"]) == (["a3", "a4"], 4)
        second = get(h, "/api/products?limit=2&offset=2")
        assert (ids_of(second), second["total"]) == (["a2", "a1"], 4)
        assert get(h, "/api/products?limit=2&offset=4") == {"products": [], "total": 4}


def view(anon: str, at: str, message_id: str, **props: Any) -> dict[str, Any]:
    return {
        "type": "track",
        "event": "Product Viewed",
        "anonymousId": anon,
        "messageId": message_id,
        "timestamp": at,
        "properties": props,
    }


def track(anon: str, event: str, at: str, message_id: str, **props: Any) -> dict[str, Any]:
    return {**view(anon, at, message_id, **props), "event": event}


def test_stats_from_events_before_and_after_the_product_arrives(db_url: str) -> None:
    # NOW is 2026-11-23T12:00:00Z; the last 30 days start on 2026-10-25.
    with harness(db_url, exchange_rates={"EUR": 1.5}) as h:
        h.batch(
            [
                view("a1", "2026-10-01T00:00:00Z", "m0", product_id="lamp-1"),  # too old
                view("a1", "2026-11-22T10:00:00Z", "m1", product_id="lamp-1"),
                view("a1", "2026-11-23T09:00:00Z", "m2", product_id="lamp-1"),
                view("a2", "2026-11-23T10:00:00Z", "m3", product_id="lamp-1"),
                track("a2", "Product Added", "2026-11-23T10:05:00Z", "m4",
                      product_id="lamp-1", quantity=2, price=20),
                track("a2", "Order Completed", "2026-11-23T10:10:00Z", "m5",
                      order_id="o1", currency="EUR",
                      products=[{"product_id": "lamp-1", "price": 20, "quantity": 2},
                                {"product_id": "lamp-1", "price": "5"},
                                {"product_id": "vase-9", "price": 10},
                                {"name": "a line without an id", "price": 99}]),
                # No rate for SEK: the order and units count, the revenue cannot.
                track("a3", "Order Completed", "2026-11-23T11:00:00Z", "m6",
                      order_id="o2", currency="SEK",
                      products=[{"product_id": "lamp-1", "price": 100, "quantity": 1}]),
                view("a4", "2026-11-21T08:00:00Z", "m7", sku="lamp-1"),
                view("a5", "2026-11-23T11:30:00Z", "m8", product_id="vase-9"),
                track("a5", "Product Removed", "2026-11-23T11:31:00Z", "m9", product_id="lamp-1"),
            ]
        )  # fmt: skip
        assert h.drain() == 10
        profile = {
            a: h.profile(f"anonymous_id:{a}")["profile_id"] for a in ("a1", "a2", "a3", "a4")
        }

        zero = {"views": 0, "cart_adds": 0, "orders": 0, "units": 0.0, "revenue": 0.0}
        expected = {
            "product_id": "lamp-1",
            "product": None,
            "stats": {
                "since": "2026-10-25",
                "days": 30,
                "views": 4,
                "cart_adds": 1,
                "orders": 2,
                "units": 4.0,
                "revenue": 67.5,  # (2 x 20 + 5) EUR at 1.5
                "currency": "USD",
            },
            "daily": [
                {**zero, "date": "2026-11-21", "views": 1},
                {**zero, "date": "2026-11-22", "views": 1},
                {
                    "date": "2026-11-23",
                    "views": 2,
                    "cart_adds": 1,
                    "orders": 2,
                    "units": 4.0,
                    "revenue": 67.5,
                },
            ],
            "recent_viewers": [profile["a2"], profile["a1"], profile["a4"]],
            "recent_buyers": [profile["a3"], profile["a2"]],
        }
        # Only events know the product so far.
        assert get(h, "/api/products/lamp-1") == expected
        vase = get(h, "/api/products/vase-9")
        assert vase["stats"] == {
            "since": "2026-10-25",
            "days": 30,
            "views": 1,
            "cart_adds": 0,
            "orders": 1,
            "units": 1.0,
            "revenue": 15.0,
            "currency": "USD",
        }
        with h.services.db.read() as conn:
            stored = conn.execute(
                sa.select(t.product_stats.c.day, t.product_stats.c.views).where(
                    t.product_stats.c.product_id == "lamp-1"
                )
            ).all()
        assert sorted(tuple(r) for r in stored)[0] == (
            (NOW - 53 * DAY) // DAY,
            1,
        )

        # The catalog learns of the product: it is joined to the numbers already kept.
        put_ok(h, "lamp-1", LAMP)
        detail = get(h, "/api/products/lamp-1")
        assert detail["product"]["name"] == "Brass desk lamp"
        assert {k: v for k, v in detail.items() if k != "product"} == {
            k: v for k, v in expected.items() if k != "product"
        }

        # A second batch adds to the same rows; a resent message counts nothing.
        h.batch(
            [
                view("a3", "2026-11-23T11:45:00Z", "m10", product_id="lamp-1"),
                view("a2", "2026-11-23T10:00:00Z", "m3", product_id="lamp-1"),  # duplicate
            ]
        )
        assert h.drain() == 1
        detail = get(h, "/api/products/lamp-1")
        assert (detail["stats"]["views"], detail["daily"][-1]["views"]) == (5, 3)
        assert detail["recent_viewers"] == [
            profile["a3"],
            profile["a2"],
            profile["a1"],
            profile["a4"],
        ]

        # Known only from a view more than 30 days old: still found, with zero numbers.
        h.batch([view("a1", "2026-09-01T00:00:00Z", "m11", product_id="old-1")])
        assert h.drain() == 1
        old = get(h, "/api/products/old-1")
        assert (old["product"], old["stats"]["views"], old["daily"]) == (None, 0, [])
        assert old["recent_viewers"] == []

        missing = h.client.get("/api/products/never-seen", headers=h.admin)
        assert missing.status_code == 404
        assert missing.json() == error(
            "not_found", "No product with id 'never-seen'.", "product_id"
        )


def test_soft_delete_hides_keeps_and_revives(db_url: str) -> None:
    with harness(db_url) as h:
        put_ok(h, "lamp-1", {**LAMP, "stock_quantity": 0})
        h.clock.advance(5000)  # type: ignore[attr-defined]
        deleted = h.client.delete("/api/products/lamp-1", headers=h.admin)
        assert deleted.status_code == 200
        assert deleted.json()["deleted_at"] == ms_to_iso(NOW + 5000)
        assert get(h, "/api/products") == {"products": [], "total": 0}
        # Still there for the events that name it, marked deleted.
        detail = get(h, "/api/products/lamp-1")
        assert detail["product"]["deleted_at"] == ms_to_iso(NOW + 5000)
        # Deleting again changes nothing.
        h.clock.advance(5000)  # type: ignore[attr-defined]
        again = h.client.delete("/api/products/lamp-1", headers=h.admin)
        assert (again.status_code, again.json()["deleted_at"]) == (200, ms_to_iso(NOW + 5000))

        missing = h.client.delete("/api/products/nope", headers=h.admin)
        assert missing.status_code == 404
        assert missing.json() == error("not_found", "No product with id 'nope'.", "product_id")

        # Upserting brings it back; its old stock is history, not a "back in stock".
        revived = put_ok(h, "lamp-1", {**LAMP, "stock_quantity": 5})
        assert (revived["status"], revived["catalog_events"]) == ("updated", [])
        assert revived["product"]["deleted_at"] is None
        assert revived["product"]["created_at"] == ms_to_iso(NOW)
        assert ids_of(get(h, "/api/products")) == ["lamp-1"]
        assert get(h, "/api/catalog/events")["events"] == []
        assert [(a[1], a[2]) for a in audit_rows(h)] == [
            ("products.upsert", "product lamp-1"),
            ("products.delete", "product lamp-1"),
            ("products.upsert", "product lamp-1"),
        ]


def test_product_ids_with_slashes_are_addressable(db_url: str) -> None:
    # Shops use ids such as "sofas/oslo-3" (a handle path); written plainly or escaped.
    with harness(db_url) as h:
        created = put_ok(h, "sofas/oslo-3", {**LAMP, "stock_quantity": 2})
        assert created["product"]["id"] == "sofas/oslo-3"
        assert get(h, "/api/products/sofas/oslo-3")["product"]["id"] == "sofas/oslo-3"
        assert get(h, "/api/products/sofas%2Foslo-3")["product"]["id"] == "sofas/oslo-3"
        assert h.client.get("/api/products/sofas", headers=h.admin).status_code == 404
        deleted = h.client.delete("/api/products/sofas/oslo-3", headers=h.admin)
        assert deleted.status_code == 200
        assert deleted.json()["id"] == "sofas/oslo-3"


def test_bad_input_gets_clear_errors(db_url: str) -> None:
    with harness(db_url) as h:
        cases: list[tuple[Any, int, dict[str, Any]]] = [
            (
                {"name": "Lamp", "price": "abc"},
                422,
                error(
                    "invalid_product",
                    "price must be a number such as 12.50 or 12,50, not 'abc'",
                    "price",
                ),
            ),
            (
                {"id": "lamp-2", "name": "Lamp"},
                422,
                error(
                    "invalid_product",
                    "id in the body must be the id in the path (or be left out)",
                    "id",
                ),
            ),
            ({"price": 3}, 422, error("invalid_product", "name is required", "name")),
            (
                {"name": "Lamp", "prce": 3},
                422,
                error("invalid_request", "prce: Extra inputs are not permitted", "prce"),
            ),
            (
                {"name": "Lamp", "locales": {"nb-NO": {"url": "not a url"}}},
                422,
                error(
                    "invalid_product",
                    "locales.nb-NO.url must be an http:// or https:// address, not 'not a url'",
                    "locales.nb-NO.url",
                ),
            ),
            (
                {"name": "Lamp", "stock_quantity": -1},
                422,
                error(
                    "invalid_product", "stock_quantity must not be negative (-1)", "stock_quantity"
                ),
            ),
        ]
        for body, status, expected in cases:
            response = put(h, "lamp-1", body)
            assert (response.status_code, response.json()) == (status, expected), body

        not_an_object = put(h, "lamp-1", [1, 2])
        assert not_an_object.status_code == 422
        assert not_an_object.json()["error"]["code"] == "invalid_request"
        broken = h.client.put(
            "/api/products/lamp-1",
            content=b"{not json",
            headers={**h.admin, "Content-Type": "application/json"},
        )
        assert broken.status_code == 422
        long_id = put(h, "x" * 201, {"name": "Lamp"})
        assert long_id.json() == error(
            "invalid_product", "id is 201 characters long; at most 200", "id"
        )

        queries = [
            ("/api/products?limit=0", "limit"),
            ("/api/products?offset=-1", "offset"),
            ("/api/products?in_stock=maybe", "in_stock"),
            ("/api/catalog/events?limit=5000", "limit"),
        ]
        for path, field in queries:
            response = h.client.get(path, headers=h.admin)
            assert response.status_code == 422, path
            assert response.json()["error"]["field"] == field, path
        since = h.client.get("/api/catalog/events?since=yesterday", headers=h.admin)
        assert (since.status_code, since.json()) == (
            422,
            error(
                "invalid_request",
                "since must be an ISO-8601 time such as 2026-11-23T08:00:00Z",
                "since",
            ),
        )
        bad_type = h.client.get("/api/catalog/events?type=Product%20Sold", headers=h.admin)
        assert bad_type.json() == error(
            "invalid_request",
            "type must be one of: Product Back In Stock, Product Out Of Stock, "
            "Product Low Stock, Product Price Dropped",
            "type",
        )
        for method, path in [
            ("GET", "/api/products"),
            ("GET", "/api/products/lamp-1"),
            ("PUT", "/api/products/lamp-1"),
            ("DELETE", "/api/products/lamp-1"),
            ("GET", "/api/catalog/events"),
        ]:
            assert h.client.request(method, path, json={"name": "x"}).status_code == 401, path
        # Nothing was stored by any of it.
        assert get(h, "/api/products")["total"] == 0
        assert audit_rows(h) == []


def test_two_imports_of_the_same_new_products_at_once(db_url: str) -> None:
    """Whichever commits first creates the products and the other updates them: no
    error, and exactly one stock event per product whatever the interleaving."""
    with harness(db_url) as h:
        db = h.services.db
        batches = [
            [parse_product({"id": f"p{i}", "name": "N", "stock": stock}) for i in order]
            # In opposite orders: the two must still not deadlock.
            for stock, order in (("0", range(300)), ("5", range(299, -1, -1)))
        ]
        barrier = threading.Barrier(2)
        summaries: list[service.UpsertSummary] = []
        failures: list[BaseException] = []

        def run(products: list[dict[str, Any]]) -> None:
            barrier.wait()
            try:
                summaries.append(service.upsert_products(db, products, NOW, low_stock_threshold=5))
            except BaseException as exc:  # reported below
                failures.append(exc)

        threads = [threading.Thread(target=run, args=(batch,)) for batch in batches]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert failures == []
        assert sum(s.created for s in summaries) == 300
        assert sum(s.updated for s in summaries) == 300
        assert sum(s.catalog_events for s in summaries) == 300
        with db.read() as conn:
            events = service.catalog_events(conn, limit=1000)
        assert len({e["product_id"] for e in events}) == 300
