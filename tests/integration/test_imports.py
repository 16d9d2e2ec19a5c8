"""Imports end to end, on SQLite and PostgreSQL: CRM customers and POS orders go through the
event log and the pipeline into profiles; re-importing changes nothing; bad rows are
reported while the good ones go in; uploads through the admin API; products into the
catalog."""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from shopkeeper.catalog.service import get_product
from shopkeeper.imports.model import ImportOptions
from shopkeeper.imports.service import (
    allow_background_imports,
    get_import,
    run_import,
    start_import,
    stop_background_imports,
)
from shopkeeper.imports.values import derived_anonymous_id
from shopkeeper.storage import tables as t
from shopkeeper.timeutil import ms_to_iso
from tests.harness import NOW, Harness, harness

CUSTOMERS = (
    "Customer ID,E-mail,First Name,Last Name,Phone,City,Country,Signup Date,"
    "Accepts Marketing,Loyalty Tier\n"
    "c1,Ana@Example.com,Ana,Silva,+4791234567,Oslo,NO,2023-01-05,yes,gold\n"
    'c2,bo@example.com,Bo,"Berg, Jr.",,Bergen,NO,2024-06-30,no,\n'
    ",dee@example.com,Dee,,,,,,,silver\n"
)

ORDERS = (
    "order_id,customer_id,email,order_date,total,currency,product_id,name,category,price,"
    "quantity\n"
    "o1,c1,,2025-01-10T10:00:00Z,150,USD,p1,Sofa,Home > Sofas,100,1\n"
    "o1,c1,,2025-01-10T10:00:00Z,150,USD,p2,Lamp,Home > Lamps,25,2\n"
    "o2,c2,,2025-03-01T09:30:00Z,80.5,USD,p3,Rug,Home > Rugs,80.5,1\n"
    # Known only by email: Dee's order, and one by Ana without her customer id.
    "o3,,dee@example.com,2025-02-01,40,USD,p4,Mug,Kitchen,20,2\n"
    "o4,,ANA@example.com,2025-04-02,60,USD,p5,Vase,Home > Decor,60,1\n"
)


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def load(h: Harness, kind: str, path: Path, **options: Any) -> Any:
    return run_import(h.services, kind, path, path.name, ImportOptions(**options), "cli")


def log_rows(h: Harness) -> list[tuple[str, str, str | None, str | None, str]]:
    with h.services.db.read() as conn:
        rows = conn.execute(
            sa.select(t.sources.c.name, t.events.c.type, t.events.c.event, t.events.c.user_id,
                      t.events.c.timestamp)
            .join(t.sources, t.sources.c.id == t.events.c.source_id)
            .order_by(t.events.c.seq)
        ).all()  # fmt: skip
    return [(r[0], r[1], r[2], r[3], ms_to_iso(r[4])) for r in rows]


def profiles_snapshot(h: Harness) -> list[tuple[Any, ...]]:
    with h.services.db.read() as conn:
        profiles = conn.execute(
            sa.select(t.profiles.c.id, t.profiles.c.merged_into, t.profiles.c.traits,
                      t.profiles.c.computed).order_by(t.profiles.c.id)
        ).all()  # fmt: skip
        identities = conn.execute(
            sa.select(
                t.identities.c.type, t.identities.c.value, t.identities.c.profile_id
            ).order_by(t.identities.c.type, t.identities.c.value)
        ).all()
        consents = conn.execute(sa.select(t.consents).order_by(t.consents.c.profile_id)).all()
    return [tuple(map(tuple, group)) for group in (profiles, identities, consents)]


def test_customers_and_orders_become_profiles_and_reimport_changes_nothing(
    db_url: str, tmp_path: Path
) -> None:
    customers = write(tmp_path / "customers.csv", CUSTOMERS)
    orders = write(tmp_path / "orders.csv", ORDERS)
    with harness(db_url) as h:
        first = load(h, "customers", customers)
        assert (first.status, first.rows_read, first.imported, first.duplicates) == (
            "done",
            3,
            3,
            0,
        )
        assert (first.rejected, first.errors) == (0, [])
        placed = load(h, "orders", orders)
        # Five rows, four orders.
        assert (placed.rows_read, placed.imported, placed.duplicates, placed.rejected) == (
            5,
            4,
            0,
            0,
        )

        now = ms_to_iso(NOW)
        assert log_rows(h) == [
            ("crm", "identify", None, "c1", now),
            ("crm", "identify", None, "c2", now),
            ("crm", "identify", None, None, now),
            ("pos", "track", "Order Completed", "c1", "2025-01-10T10:00:00.000Z"),
            ("pos", "track", "Order Completed", "c2", "2025-03-01T09:30:00.000Z"),
            ("pos", "track", "Order Completed", None, "2025-02-01T00:00:00.000Z"),
            ("pos", "track", "Order Completed", None, "2025-04-02T00:00:00.000Z"),
        ]
        assert h.drain() == 7

        ana = h.profile("user_id:c1")
        assert ana["traits"] == {
            "email": "ana@example.com",
            "phone": "+4791234567",
            "firstName": "Ana",
            "lastName": "Silva",
            "name": "Ana Silva",
            "address": {"city": "Oslo", "country": "NO"},
            "createdAt": "2023-01-05T00:00:00.000Z",
            "email_opt_in": True,
            "loyalty_tier": "gold",
        }
        computed = ana["computed"]
        # o1 by customer id, o4 by email alone: both are Ana's.
        assert (computed["orders_count"], computed["total_revenue"]) == (2, 210.0)
        assert computed["first_order_at"] == "2025-01-10T10:00:00.000Z"
        assert computed["last_order"]["order_id"] == "o4"
        assert computed["source_kinds"] == ["crm", "pos"]
        assert sorted(i["type"] for i in ana["identities"]) == [
            "anonymous_id",
            "email",
            "phone",
            "user_id",
        ]
        assert [(c["channel"], c["granted"], c["source"], c["via"]) for c in ana["consents"]] == [
            ("email", True, "crm", "trait:email_opt_in")
        ]

        bo = h.profile("user_id:c2")
        assert bo["traits"]["lastName"] == "Berg, Jr."
        assert (bo["computed"]["orders_count"], bo["computed"]["total_revenue"]) == (1, 80.5)
        assert [(c["channel"], c["granted"]) for c in bo["consents"]] == [("email", False)]

        # Dee has no customer id: her CRM record and her POS order meet on her email.
        dee = h.profile("email:dee@example.com")
        assert dee == h.profile(f"anonymous_id:{derived_anonymous_id('email', 'dee@example.com')}")
        assert (dee["computed"]["orders_count"], dee["computed"]["total_revenue"]) == (1, 40.0)
        assert dee["traits"] == {"email": "dee@example.com", "firstName": "Dee", "name": "Dee",
                                 "loyalty_tier": "silver"}  # fmt: skip

        before = profiles_snapshot(h)
        again = load(h, "customers", customers)
        assert (again.imported, again.duplicates, again.rejected) == (0, 3, 0)
        again = load(h, "orders", orders)
        assert (again.imported, again.duplicates, again.rejected) == (0, 4, 0)
        assert h.drain() == 0
        assert profiles_snapshot(h) == before
        assert len(log_rows(h)) == 7

        with h.services.db.read() as conn:
            audit = conn.execute(
                sa.select(t.audit_log.c.actor, t.audit_log.c.action, t.audit_log.c.target)
                .where(t.audit_log.c.action.like("import.%"))
                .order_by(t.audit_log.c.id)
            ).all()
        assert [tuple(a) for a in audit] == [
            ("cli", "import.customers", "import 1"),
            ("cli", "import.orders", "import 2"),
            ("cli", "import.customers", "import 3"),
            ("cli", "import.orders", "import 4"),
        ]


BAD_CUSTOMERS = (
    "customer_id,email,first_name,signup_date,newsletter\n"
    "c1,ana@example.com,Ana,2023-01-05,yes\n"
    "c2,bo@,Bo,,\n"  # line 3: bad email
    "c3,cy@example.com,Cy\n"  # line 4: too few fields
    '"c4","dee@example.com","Dee\nDoe",2023-02-30,no\n'  # line 5-6: impossible date
    ",,Nobody,,\n"  # line 7: nobody to identify
    "c5,eve@example.com,Eve,2024-01-01,maybe\n"  # line 8: not a yes/no
    "c6,fay@example.com,Fay,,1\n"
)


def test_bad_rows_are_reported_with_line_and_reason_and_the_good_ones_go_in(
    db_url: str, tmp_path: Path
) -> None:
    path = write(tmp_path / "crm.csv", BAD_CUSTOMERS)
    with harness(db_url) as h:
        summary = load(h, "customers", path)
        assert (summary.status, summary.rows_read, summary.imported, summary.rejected) == (
            "done",
            7,
            2,
            5,
        )
        expected = [
            {"line": 3, "reason": "email is not a valid email address"},
            {"line": 4, "reason": "the line has 3 fields; the header has 5"},
            {
                "line": 5,
                "reason": "created_at (column 'signup_date') is not a date (write it as "
                "2024-03-05 or 2024-03-05T14:30:00Z)",
            },
            {
                "line": 7,
                "reason": "the row has no customer id, email or phone; a customer needs one",
            },
            {
                "line": 8,
                "reason": "email_opt_in (column 'newsletter') is not a yes/no value (true, false, "
                "yes, no, 1, 0)",
            },
        ]
        assert summary.errors == expected
        with h.services.db.read() as conn:
            stored = get_import(conn, summary.import_id)
        assert stored is not None
        assert stored == {
            "id": summary.import_id,
            "kind": "customers",
            "filename": "crm.csv",
            "status": "done",
            "actor": "cli",
            "created_at": ms_to_iso(NOW),
            "finished_at": ms_to_iso(NOW),
            "bytes_total": len(BAD_CUSTOMERS.encode()),
            "bytes_read": len(BAD_CUSTOMERS.encode()),
            "progress": 1.0,
            "rows_read": 7,
            "imported": 2,
            "duplicates": 0,
            "rejected": 5,
            "errors": expected,
            "options": {},
            "message": None,
        }
        # No reason quotes a value from the file (they may be personal data).
        text = json.dumps(expected)
        for value in ("bo@", "Dee", "2023-02-30", "maybe", "Nobody"):
            assert value not in text
        h.drain()
        assert h.profile("user_id:c1")["traits"]["firstName"] == "Ana"
        assert h.profile("user_id:c6")["consents"][0]["granted"] is True
        missing = h.client.get("/api/profiles/user_id:c2", headers=h.admin)
        assert missing.status_code == 404


def test_a_file_that_cannot_be_read_fails_the_import_with_its_reason(
    db_url: str, tmp_path: Path
) -> None:
    path = tmp_path / "legacy.csv"
    path.write_bytes("kundenr,navn\n1,José\n".encode("cp1252"))
    with harness(db_url) as h:
        failed = load(h, "customers", path)
        assert (failed.status, failed.imported, failed.rows_read) == ("failed", 0, 0)
        assert failed.message == (
            "legacy.csv is not UTF-8 text (byte 19 of the file); give its encoding, for "
            "example --encoding cp1252"
        )
        no_id = load(h, "customers", path, encoding="cp1252")
        assert no_id.status == "failed"
        assert no_id.message is not None
        assert no_id.message.startswith("the file has no column for user_id or email or phone")
        mapped = load(h, "customers", path, encoding="cp1252", mapping={"user_id": "Kundenr"})
        assert (mapped.status, mapped.imported) == ("done", 1)
        with h.services.db.read() as conn:
            rows = conn.execute(
                sa.select(t.imports.c.id, t.imports.c.status).order_by(t.imports.c.id)
            ).all()
        assert [tuple(r) for r in rows] == [(1, "failed"), (2, "failed"), (3, "done")]


def wait_done(h: Harness, import_id: int) -> dict[str, Any]:
    deadline = time.monotonic() + 30
    while True:
        response = h.client.get(f"/api/imports/{import_id}", headers=h.admin)
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        if body["status"] != "running":
            return body
        assert time.monotonic() < deadline, body
        time.sleep(0.02)


def test_upload_through_the_admin_api(
    db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    uploads = tmp_path / "uploads"
    uploads.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(uploads))
    jsonl = "\n".join(
        json.dumps(line)
        for line in [
            {"Kundenummer": 7, "mail": "ana@example.com", "Fornavn": "Ana", "tier": "gold"},
            {"Kundenummer": 8, "mail": "not an email"},
            {"Kundenummer": 9, "mail": "cy@example.com", "Fornavn": "Cy"},
        ]
    )
    with harness(db_url, max_upload_bytes=2048) as h:
        mapping = {"user_id": "Kundenummer", "email": "mail", "first_name": "Fornavn"}
        response = h.client.post(
            "/api/imports/customers",
            headers=h.admin,
            data={"mapping": json.dumps(mapping), "format": "jsonl"},
            files={"file": ("C:\\exports\\kunder.txt", jsonl.encode(), "text/plain")},
        )
        assert response.status_code == 202, response.text
        started = response.json()
        assert (started["kind"], started["filename"], started["actor"]) == (
            "customers",
            "kunder.txt",
            "admin key 1 (tests)",
        )
        assert started["options"] == {"format": "jsonl", "mapping": mapping}
        done = wait_done(h, started["id"])
        assert {k: done[k] for k in ("status", "rows_read", "imported", "rejected", "errors")} == {
            "status": "done",
            "rows_read": 3,
            "imported": 2,
            "rejected": 1,
            "errors": [{"line": 2, "reason": "email (column 'mail') is not a valid email address"}],
        }
        assert (done["bytes_read"], done["bytes_total"], done["progress"]) == (
            len(jsonl),
            len(jsonl),
            1.0,
        )
        listed = h.client.get("/api/imports", headers=h.admin).json()
        assert listed == {"imports": [done]}
        h.drain()
        assert h.profile("user_id:7")["traits"] == {
            "email": "ana@example.com",
            "firstName": "Ana",
            "name": "Ana",
            "tier": "gold",
        }
        # The temporary file is gone once the import is done.
        assert not list(uploads.iterdir())

        too_big = h.client.post(
            "/api/imports/customers",
            headers=h.admin,
            files={"file": ("big.csv", b"customer_id\n" + b"c1\n" * 1000, "text/csv")},
        )
        assert too_big.status_code == 413
        assert too_big.json() == {
            "error": {
                "code": "too_large",
                "message": "The file is over the 2 KB upload limit (setting "
                "max_upload_bytes); import larger files with the `shopkeeper import` command.",
                "field": "file",
            }
        }
        assert not list(uploads.iterdir())
        # A declared size far over the limit is refused before the body is read.
        declared = h.client.post(
            "/api/imports/customers",
            headers=h.admin,
            files={"file": ("big.csv", b"customer_id\n" + b"c1\n" * 400_000, "text/csv")},
        )
        assert declared.status_code == 413
        assert declared.json() == too_big.json()
        assert not list(uploads.iterdir())
        unauthorised = h.client.post(
            "/api/imports/customers", files={"file": ("a.csv", b"customer_id\nc1\n")}
        )
        assert unauthorised.status_code == 401
        not_multipart = h.client.post(
            "/api/imports/orders", headers=h.admin, data={"format": "csv"}
        )
        assert not_multipart.status_code == 415
        assert not_multipart.json()["error"]["message"] == (
            "Send the file as multipart/form-data, in a part named 'file'."
        )
        no_file = h.client.post(
            "/api/imports/orders", headers=h.admin, files={"format": (None, "csv")}
        )
        assert no_file.status_code == 422
        assert no_file.json()["error"] == {
            "code": "missing_field",
            "message": "The form needs a part named 'file'.",
            "field": "file",
        }
        bad_field = h.client.post(
            "/api/imports/orders",
            headers=h.admin,
            data={"delimeter": ";"},
            files={"file": ("a.csv", b"order_id\n")},
        )
        assert bad_field.status_code == 422
        assert bad_field.json()["error"] == {
            "code": "invalid_field",
            "message": "Unknown form field 'delimeter'; the fields are file, format, encoding, "
            "delimiter, mapping.",
            "field": "delimeter",
        }
        missing = h.client.get("/api/imports/999", headers=h.admin)
        assert missing.status_code == 404
        assert h.client.get("/api/imports", headers=h.admin).json()["imports"][0]["id"] == 1


def test_a_server_shutdown_interrupts_a_background_import_and_records_it(
    db_url: str, tmp_path: Path
) -> None:
    rows = 60_000
    path = write(
        tmp_path / "many.csv",
        "customer_id,email\n" + "".join(f"c{i},p{i}@example.com\n" for i in range(rows)),
    )
    with harness(db_url) as h:
        import_id = start_import(
            h.services, "customers", path, path.name, ImportOptions(), "user ana@shop.example"
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            with h.services.db.read() as conn:
                if get_import(conn, import_id)["rows_read"] > 0:  # type: ignore[index]
                    break
            time.sleep(0.01)
        stop_background_imports()
        try:
            with h.services.db.read() as conn:
                stopped = get_import(conn, import_id)
            assert stopped is not None
            assert stopped["status"] == "failed"
            assert 0 < stopped["rows_read"] < rows
            assert stopped["finished_at"] is not None
            assert stopped["message"] == (
                f"the import was interrupted (the server stopped) after "
                f"{stopped['rows_read']:,} rows; import the file again: the rows already in "
                "are skipped as duplicates"
            )
            # What was written before the stop is kept; a second import skips it.
            again = load(h, "customers", path)
            assert again.status == "done"
            assert (again.duplicates, again.imported) == (
                stopped["imported"],
                rows - stopped["imported"],
            )
        finally:
            allow_background_imports()


PRODUCTS = (
    "product_id,title,category,brand,price,sale_price,currency,stock,attr.color,name.nb-NO\n"
    "p1,Sofa,Home > Living > Sofas,Nord,999,799,USD,3,grey,Sofa NB\n"
    "p2,Lamp,Home/Lighting,Lys,49.5,,USD,0,,\n"
    ",Nameless,Home,,1,,USD,,,\n"
    "p4,Rug,Home > Rugs,,abc,,USD,,,\n"
)


def test_products_go_to_the_catalog_and_reimport_leaves_them_alone(
    db_url: str, tmp_path: Path
) -> None:
    path = write(tmp_path / "catalog.csv", PRODUCTS)
    with harness(db_url) as h:
        summary = load(h, "products", path)
        assert (summary.status, summary.rows_read, summary.imported, summary.rejected) == (
            "done",
            4,
            2,
            2,
        )
        assert [e["line"] for e in summary.errors] == [4, 5]
        with h.services.db.read() as conn:
            sofa = get_product(conn, "p1")
            lamp = get_product(conn, "p2")
        assert sofa is not None
        assert lamp is not None
        assert (sofa["name"], sofa["category"], sofa["price"], sofa["sale_price"]) == (
            "Sofa",
            "Home > Living > Sofas",
            999.0,
            799.0,
        )
        assert (sofa["stock_quantity"], sofa["attributes"], sofa["locales"]) == (
            3,
            {"color": "grey"},
            {"nb-NO": {"name": "Sofa NB"}},
        )
        assert (lamp["category"], lamp["stock_quantity"]) == ("Home > Lighting", 0)

        again = load(h, "products", path)
        assert (again.imported, again.duplicates, again.rejected) == (0, 2, 2)
