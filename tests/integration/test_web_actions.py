"""What people do in the admin UI, on SQLite and PostgreSQL: sources and keys, retrying
parked events, uploading an import and watching it, browsing the catalog. Every action
leaves an audit entry naming the user."""

from __future__ import annotations

import re
import time

import sqlalchemy as sa

from shopkeeper.catalog.products import parse_product
from shopkeeper.catalog.service import upsert_products
from shopkeeper.ingest import log as event_log
from shopkeeper.storage import tables as t
from tests.harness import NOW, Harness, harness
from tests.webui import logged_in, text

ACTOR = "user marta@shop.example"


def _audit(h: Harness) -> list[tuple[str, str, str | None]]:
    with h.services.db.read() as conn:
        rows = conn.execute(
            sa.select(t.audit_log.c.actor, t.audit_log.c.action, t.audit_log.c.target).order_by(
                t.audit_log.c.id
            )
        ).all()
    return [(r.actor, r.action, r.target) for r in rows if r.actor == ACTOR]


def test_sources_write_keys_and_admin_keys(db_url: str) -> None:
    with harness(db_url, write_key_cache_seconds=0) as h:
        token = logged_in(h)
        c = h.client
        created = c.post(
            "/sources", data={"name": "Web shop NO", "kind": "web", "csrf_token": token}
        )
        assert created.status_code == 200
        source = re.search(r"/sources\?source=(\d+)&notice=created$", str(created.url))
        assert source
        page = text(created.text)
        assert "Source created." in page
        key = re.search(rf'<code id="wk-{source.group(1)}">(wk_[\w-]+)</code>', created.text)
        assert key
        write_key = key.group(1)
        # The snippets name this source's key and this server's /v1.
        assert "Connect your shop: Web shop NO" in page
        assert f'analytics.load("{write_key}", ' in page
        assert '"apiHost": "testserver/v1", "protocol": "http"' in page
        assert f"-u '{write_key}:'" in page
        assert 'analytics.host = "http://testserver"' in page
        sent = c.post("/v1/track", json={"userId": "u", "event": "E"}, auth=(write_key, ""))
        assert sent.status_code == 200

        duplicate = c.post(
            "/sources", data={"name": "Web shop NO", "kind": "web", "csrf_token": token}
        )
        assert duplicate.status_code == 400
        assert "A source named 'Web shop NO' already exists." in text(duplicate.text)

        revoked = c.post("/sources/revoke", data={"name": "Web shop NO", "csrf_token": token})
        assert "Write key revoked." in text(revoked.text)
        refused = c.post("/v1/track", json={"userId": "u", "event": "E"}, auth=(write_key, ""))
        assert refused.status_code == 401

        made = c.post("/sources/keys", data={"name": "nightly export", "csrf_token": token})
        assert made.status_code == 200
        shown = re.search(r'<code id="new-key">(sk_[\w-]+)</code>', made.text)
        assert shown
        admin_key = shown.group(1)
        assert "it is shown only this once" in text(made.text)
        auth = {"Authorization": f"Bearer {admin_key}"}
        assert c.get("/api/sources", headers=auth).status_code == 200
        again = c.get("/sources")
        assert admin_key not in again.text
        assert admin_key[:10] + "…" in again.text
        key_id = re.findall(r'action="/sources/keys/(\d+)/revoke"', again.text)[-1]
        c.post(f"/sources/keys/{key_id}/revoke", data={"csrf_token": token})
        assert c.get("/api/sources", headers=auth).status_code == 401
        assert "Admin key revoked." in text(c.get("/sources?notice=key_revoked").text)

        assert [(action, target) for _, action, target in _audit(h)] == [
            ("user.login", "user 1"),
            ("source.create", "source 2"),
            ("source.revoke", None),
            ("admin_key.create", f"admin key {key_id}"),
            ("admin_key.revoke", f"admin key {key_id}"),
        ]


def test_parked_events_are_shown_and_retried(db_url: str) -> None:
    with harness(db_url) as h:
        token = logged_in(h)
        h.batch(
            [
                {"type": "track", "userId": "u1", "event": "Boom", "messageId": "m1"},
                {"type": "track", "userId": "u2", "event": "Fine", "messageId": "m2"},
            ]
        )
        with h.services.db.write() as conn:
            seq = conn.execute(
                sa.select(t.events.c.seq).where(t.events.c.message_id == "m1")
            ).scalar_one()
            event_log.mark_parked(conn, seq, "ValueError: <b>price</b> is not a number", NOW)
        assert h.drain() == 1
        page = h.client.get("/")
        body = text(page.text)
        assert "Boom u1" in body
        assert "ValueError: <b>price</b> is not a number" in body  # shown, not interpreted
        assert "<b>price</b>" not in page.text
        assert "1 held" in body

        retried = h.client.post(
            f"/dashboard/parked/{seq}/retry",
            headers={"HX-Request": "true", "X-CSRF-Token": token},
        )
        assert retried.status_code == 200
        assert text(retried.text) == (
            "Queued for another try; it leaves this list once it is processed."
        )
        again = h.client.post(
            f"/dashboard/parked/{seq}/retry",
            headers={"HX-Request": "true", "X-CSRF-Token": token},
        )
        assert text(again.text) == "This event is no longer held."
        assert h.drain() == 1
        assert "Nothing is stuck" in text(h.client.get("/").text)
        assert ("pipeline.retry", f"event {seq}") in [(a, tg) for _, a, tg in _audit(h)]


CUSTOMERS_CSV = (
    "Email,First Name,Last Name,Customer ID\n"
    "ana@example.com,Ana,Lima,c-1\n"
    "bo@example.com,Bo,Berg,c-2\n"
    "not-an-email,Cy,Dahl,\n"
    ",Di,,\n"
)


def _wait_done(h: Harness, path: str) -> str:
    deadline = time.monotonic() + 30
    while True:
        fragment = h.client.get(path, headers={"HX-Request": "true"}).text
        if 'data-status="running"' not in fragment:
            return fragment
        assert time.monotonic() < deadline, fragment
        time.sleep(0.05)


def test_upload_an_import_and_watch_it(db_url: str) -> None:
    with harness(db_url) as h:
        token = logged_in(h)
        c = h.client
        missing = c.post("/imports", data={"kind": "customers", "csrf_token": token})
        assert missing.status_code == 400
        assert "Choose a file to upload." in text(missing.text)
        uploaded = c.post(
            "/imports",
            data={"kind": "customers", "csrf_token": token},
            files={"file": ("crm export.csv", CUSTOMERS_CSV.encode(), "text/csv")},
        )
        assert uploaded.status_code == 200
        found = re.search(r"/imports/(\d+)$", str(uploaded.url))
        assert found
        import_id = found.group(1)
        assert "crm export.csv" in text(uploaded.text)
        done = text(_wait_done(h, f"/imports/{import_id}/progress"))
        assert "Done, with rejected rows" in done
        assert "Rows read 4 Imported 2 Already there 0 Rejected 2" in done
        assert re.search(r"Line Problem 4 .*is not a valid email address", done)
        assert "5 the row has no customer id, email or phone" in done
        assert "ana@example.com" not in done  # reasons never echo personal data
        listed = text(c.get("/imports").text)
        assert "crm export.csv Customers" in listed
        h.drain()
        assert "Ana Lima" in text(c.get("/customers?q=ana@").text)
        assert ("import.customers", f"import {import_id}") in [(a, tg) for _, a, tg in _audit(h)]


def test_catalog_list_filters_and_product_page(db_url: str) -> None:
    with harness(db_url) as h:
        logged_in(h)
        products = [
            {"id": "sofa-1", "name": "Oslo sofa", "price": 1250, "sale_price": 999,
             "currency": "USD", "stock_quantity": 3, "category": "Home > Living > Sofas",
             "brand": "Nordhus"},
            {"id": "lamp-2", "name": "Bergen lamp", "price": 89, "currency": "USD",
             "stock_quantity": 0, "category": "Home > Lighting", "brand": "Lys"},
            {"id": "mug-3", "name": "Fjord mug", "price": 20, "currency": "USD",
             "stock_quantity": 40, "category": "Kitchen > Mugs", "brand": "Lys"},
        ]  # fmt: skip
        upsert_products(
            h.services.db, [parse_product(p) for p in products], NOW, low_stock_threshold=5
        )
        c = h.client
        everything = text(c.get("/catalog").text)
        assert (
            "Bergen lamp lamp-2 Home > Lighting Lys $89.00 Out of stock "
            "Fjord mug mug-3 Kitchen > Mugs Lys $20.00 40 in stock "
            "Oslo sofa sofa-1 Home > Living > Sofas Nordhus $999.00 $1,250.00 Low: 3 left"
        ) in everything
        assert "3 products" in everything
        lys = text(c.get("/catalog?brand=lys&stock=in").text)
        assert "Fjord mug" in lys
        assert "Bergen lamp" not in lys
        assert "1 product" in lys
        home = text(c.get("/catalog?category=Home").text)
        assert "Oslo sofa" in home
        assert "Fjord mug" not in home

        h.batch(
            [
                {"type": "track", "userId": "u1", "event": "Product Viewed",
                 "properties": {"product_id": "sofa-1"}, "messageId": "v1",
                 "timestamp": "2026-11-22T10:00:00Z"},
                {"type": "identify", "userId": "u1", "traits": {"name": "Eva Moe"},
                 "messageId": "i1", "timestamp": "2026-11-22T10:00:00Z"},
            ]
        )  # fmt: skip
        h.drain()
        page = c.get("/catalog/sofa-1")
        body = text(page.text)
        assert "Oslo sofa" in body
        assert "Views, last 30 days 1" in body
        assert "Recent viewers Eva Moe" in body
        assert '<svg class="bars"' in page.text
