"""`shopkeeper import` as operators run it: a subprocess on a real database. The summary
and the rejected lines (FILE:LINE: reason) are its interface; a file or option it cannot
use is one line on stderr with exit code 1; never a traceback."""

from __future__ import annotations

from pathlib import Path

import pytest

from shopkeeper.profiles.view import customer_view, resolve
from shopkeeper.storage.db import Database
from tests.e2e.test_cli import shopkeeper

pytestmark = pytest.mark.slow

CUSTOMERS = (
    "customer_id,email,first_name,newsletter\n"
    "c1,ana@example.com,Ana,yes\n"
    "c2,bo@,Bo,no\n"
    "c3,cy@example.com,Cy\n"
    "c4,dee@example.com,Dee,no\n"
)
WAITING = (
    "the events wait in the pipeline: a running `shopkeeper serve` or `shopkeeper worker` "
    "applies them (or import with --apply)"
)


def test_import_customers_reports_rejected_lines_and_applies(db_url: str, tmp_path: Path) -> None:
    (tmp_path / "crm.csv").write_text(CUSTOMERS)
    first = shopkeeper(
        "import", "customers", "crm.csv", "--apply", database_url=db_url, cwd=tmp_path
    )
    assert first.returncode == 0, first.stderr
    assert first.stderr == ""
    assert first.stdout.splitlines() == [
        "crm.csv: 4 rows read; 2 imported, 0 duplicates, 2 rejected (import 1)",
        "crm.csv:3: email is not a valid email address",
        "crm.csv:4: the line has 3 fields; the header has 4",
        "applied 2 events to profiles",
    ]
    db = Database(db_url)
    with db.read() as conn:
        profile_id = resolve(conn, "user_id", "c1")
        assert profile_id is not None
        view = customer_view(conn, profile_id)
    db.dispose()
    assert view is not None
    assert view["traits"] == {
        "email": "ana@example.com",
        "firstName": "Ana",
        "name": "Ana",
        "email_opt_in": True,
    }

    again = shopkeeper("import", "customers", "crm.csv", database_url=db_url, cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    assert again.stdout.splitlines() == [
        "crm.csv: 4 rows read; 0 imported, 2 duplicates, 2 rejected (import 2)",
        "crm.csv:3: email is not a valid email address",
        "crm.csv:4: the line has 3 fields; the header has 4",
        WAITING,
    ]


def test_unusable_files_and_options_are_one_line_errors(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'shop.db'}"
    (tmp_path / "crm.csv").write_text(CUSTOMERS)
    (tmp_path / "legacy.csv").write_bytes("customer_id,name\n1,José\n".encode("cp1252"))
    cases = [
        (("customers", "missing.csv"), "error: missing.csv: no such file\n"),
        (
            ("customers", "crm.csv", "--map", "mail=email"),
            "error: mapping: 'mail' is not a field of customers; the fields are user_id, email, "
            "phone, first_name, last_name, name, birthday, gender, street, city, postal_code, "
            "state, country, created_at, updated_at, email_opt_in, sms_opt_in, locale (and "
            "ignore)\n",
        ),
        (
            ("customers", "legacy.csv"),
            "error: legacy.csv is not UTF-8 text (byte 23 of the file); give its encoding, for "
            "example --encoding cp1252\n",
        ),
        (
            ("orders", "crm.csv"),
            "error: the file has no column for order_id (looked for order_id, id, order_number, "
            "order_no, receipt_id, receipt_number, transaction_id); name it with a mapping, "
            "e.g. --map order_id=COLUMN\n",
        ),
    ]
    for args, message in cases:
        result = shopkeeper("import", *args, database_url=url, cwd=tmp_path)
        assert (result.returncode, result.stdout, result.stderr) == (1, "", message), args

    fixed = shopkeeper(
        "import", "products", "legacy.csv", "--encoding", "cp1252", "--map", "id=customer_id",
        database_url=url, cwd=tmp_path,
    )  # fmt: skip
    assert fixed.returncode == 0, fixed.stderr
    assert (
        fixed.stdout == "legacy.csv: 1 rows read; 1 imported, 0 duplicates, 0 rejected (import 3)\n"
    )
