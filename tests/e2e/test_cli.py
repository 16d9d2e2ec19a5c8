"""The `shopkeeper` command as operators run it: a subprocess on a real database.

What it prints is part of its interface (scripts read the key on the last line), errors
are one clear line with exit code 1, and no input ever shows a Python traceback.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from shopkeeper.bootstrap import build_services, create_app
from shopkeeper.config import Settings
from shopkeeper.ingest.sources import get_source_by_name
from shopkeeper.storage import migrate
from shopkeeper.storage import tables as t
from shopkeeper.storage.db import Database
from tests.conftest import PG_URL
from tests.live import free_port, live_server

pytestmark = pytest.mark.slow

HEAD = migrate.head_revision()
NEWER = (
    "error: The database schema (ffff0000) is newer than this version of Shopkeeper knows: "
    "run the newer version, or restore a backup made for this one.\n"
)
OUT_OF_DATE = (
    "error: The database schema is not the one this version needs: run `shopkeeper db upgrade`.\n"
)


def shopkeeper(
    *args: str, database_url: str | None, cwd: Path, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        # Plain, unwrapped output, as in a script or a CI log.
        "NO_COLOR": "1",
        "COLUMNS": "200",
        "TERM": "dumb",
    }
    env.pop("FORCE_COLOR", None)
    env.pop("SHOPKEEPER_DATABASE_URL", None)
    if database_url is not None:
        env["SHOPKEEPER_DATABASE_URL"] = database_url
    result = subprocess.run(
        [sys.executable, "-m", "shopkeeper", *args],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert "Traceback" not in result.stderr, result.stderr
    assert "Traceback" not in result.stdout, result.stdout
    return result


@contextmanager
def in_process(db_url: str) -> Iterator[TestClient]:
    """The application in this process, without a pipeline, on the same database."""
    services = build_services(Settings(database_url=db_url), run_worker=False)
    try:
        with TestClient(create_app(services)) as client:
            yield client
    finally:
        services.db.dispose()


def test_sources_create_prints_a_working_write_key_last(db_url: str, tmp_path: Path) -> None:
    created = shopkeeper("sources", "create", "web store", database_url=db_url, cwd=tmp_path)
    assert created.returncode == 0, created.stderr
    lines = created.stdout.splitlines()
    key = lines[-1]
    assert re.fullmatch(r"wk_[A-Za-z0-9_-]{32}", key)
    assert lines == ["source web store (web) created; its write key:", key]

    db = Database(db_url)
    source = get_source_by_name(db, "web store")
    assert source is not None
    assert (source.kind, source.write_key) == ("web", key)
    with in_process(db_url) as client:
        response = client.post(
            "/v1/track",
            json={"anonymousId": "a-1", "event": "Product Viewed", "messageId": "cli-1"},
            auth=(key, ""),
        )
        assert response.status_code == 200, response.text
        assert response.json() == {"success": True}
    with db.read() as conn:
        rows = conn.execute(sa.select(t.events.c.source_id, t.events.c.message_id)).all()
    db.dispose()
    assert [tuple(row) for row in rows] == [(source.id, "cli-1")]

    again = shopkeeper("sources", "create", "web store", database_url=db_url, cwd=tmp_path)
    assert again.returncode == 1
    assert again.stdout == ""
    assert again.stderr == "error: A source named 'web store' already exists.\n"


def test_keys_create_opens_the_admin_api_and_revoke_closes_it(db_url: str, tmp_path: Path) -> None:
    created = shopkeeper("keys", "create", "--name", "ops", database_url=db_url, cwd=tmp_path)
    assert created.returncode == 0, created.stderr
    first, key = created.stdout.splitlines()
    match = re.fullmatch(
        r"admin key (\d+) \(ops\) created; it is shown only now, keep it safe:", first
    )
    assert match is not None, first
    key_id = match[1]
    assert re.fullmatch(r"sk_[A-Za-z0-9_-]{43}", key)

    bearer = {"Authorization": f"Bearer {key}"}
    with in_process(db_url) as client:
        opened = client.get("/api/pipeline/status", headers=bearer)
        assert opened.status_code == 200, opened.text
        assert opened.json() == {
            "pending": 0,
            "parked": 0,
            "lag_seconds": 0.0,
            "in_process_worker": False,
            "suppressed": 0,
        }

        revoked = shopkeeper("keys", "revoke", key_id, database_url=db_url, cwd=tmp_path)
        assert revoked.returncode == 0, revoked.stderr
        assert revoked.stdout == f"admin key {key_id} revoked\n"

        closed = client.get("/api/pipeline/status", headers=bearer)
        assert closed.status_code == 401
        assert closed.json() == {
            "error": {
                "code": "unauthorized",
                "message": "Unknown or revoked admin key.",
                "field": None,
            }
        }

    twice = shopkeeper("keys", "revoke", key_id, database_url=db_url, cwd=tmp_path)
    assert twice.returncode == 1
    assert twice.stderr == f"error: No active admin key with id {key_id}.\n"


@pytest.fixture(params=["sqlite", "postgresql"])
def empty_db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A database with no tables at all."""
    if request.param == "sqlite":
        path = tmp_path / "empty.db"
        path.touch()  # an empty file, as `touch shop.db` leaves it
        yield f"sqlite:///{path}"
        return
    admin = sa.create_engine(PG_URL, isolation_level="AUTOCOMMIT")
    name = f"sk_cli_{uuid.uuid4().hex[:10]}"
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    try:
        yield sa.engine.make_url(PG_URL).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def test_db_upgrade_creates_the_schema_once(empty_db_url: str, tmp_path: Path) -> None:
    upgraded = shopkeeper("db", "upgrade", database_url=empty_db_url, cwd=tmp_path)
    assert upgraded.returncode == 0, upgraded.stderr
    assert upgraded.stdout == f"schema upgraded from empty to {HEAD}\n"
    db = Database(empty_db_url)
    with db.read() as conn:
        tables = set(sa.inspect(conn).get_table_names())
    db.dispose()
    assert tables == {table.name for table in t.metadata.sorted_tables} | {"alembic_version"}

    again = shopkeeper("db", "upgrade", database_url=empty_db_url, cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    assert again.stdout == f"schema already at {HEAD}\n"

    current = shopkeeper("db", "current", database_url=empty_db_url, cwd=tmp_path)
    assert current.stdout == f"database: {HEAD}\ncode:     {HEAD}\n"

    # The working directory's default database was never touched.
    assert not (tmp_path / "shopkeeper.db").exists()


def stamp(db_url: str, revision: str | None) -> None:
    db = Database(db_url)
    with db.write() as conn:
        conn.execute(sa.text("DELETE FROM alembic_version"))
        if revision is not None:
            conn.execute(
                sa.text("INSERT INTO alembic_version (version_num) VALUES (:r)"), {"r": revision}
            )
    db.dispose()


def test_serve_refuses_a_schema_it_does_not_know(db_url: str, tmp_path: Path) -> None:
    port = str(free_port())
    try:
        # A revision from a newer Shopkeeper (or a broken upgrade).
        stamp(db_url, "ffff0000")
        serve = shopkeeper("serve", "--port", port, database_url=db_url, cwd=tmp_path, timeout=30)
        assert serve.returncode == 1
        assert serve.stdout == ""
        assert serve.stderr == NEWER
        upgrade = shopkeeper("db", "upgrade", database_url=db_url, cwd=tmp_path)
        assert upgrade.returncode == 1
        assert upgrade.stderr == NEWER

        # Tables without a recorded revision: an older, unversioned schema.
        stamp(db_url, None)
        serve = shopkeeper("serve", "--port", port, database_url=db_url, cwd=tmp_path, timeout=30)
        assert serve.returncode == 1
        assert serve.stderr == OUT_OF_DATE
    finally:
        stamp(db_url, HEAD)  # the PostgreSQL test database is shared by later tests


def test_bad_input_without_a_database_is_one_line_errors(tmp_path: Path) -> None:
    for args in (("db", "upgrade"), ("db", "current")):
        result = shopkeeper(*args, database_url="mysql://shop@localhost/shop", cwd=tmp_path)
        assert result.returncode == 1, args
        assert result.stderr == (
            "error: unsupported database 'mysql': use a sqlite:/// or postgresql:// URL\n"
        )
    # Nothing listens on port 1: the message says so instead of a driver traceback.
    unreachable = shopkeeper(
        "sources", "list", database_url="postgresql://nobody@127.0.0.1:1/shop", cwd=tmp_path
    )
    assert unreachable.returncode == 1
    assert unreachable.stderr.startswith("error: cannot use the database: ")
    assert "127.0.0.1" in unreachable.stderr

    sqlite_url = f"sqlite:///{tmp_path / 'shop.db'}"
    bad_kind = shopkeeper(
        "sources", "create", "till", "--kind", "fax", database_url=sqlite_url, cwd=tmp_path
    )
    assert bad_kind.returncode == 1
    assert bad_kind.stderr == (
        "error: kind must be one of web, app, server, email, pos, crm, catalog, import, "
        "other; got 'fax'.\n"
    )
    not_a_number = shopkeeper("keys", "revoke", "ops", database_url=sqlite_url, cwd=tmp_path)
    assert not_a_number.returncode == 2  # a usage error, explained by the argument parser
    assert "Invalid value for 'key_id'" in not_a_number.stderr

    # The worker never creates a schema: that is `serve`'s or `db upgrade`'s job.
    empty_url = f"sqlite:///{tmp_path / 'nothing.db'}"
    worker = shopkeeper("worker", "--once", database_url=empty_url, cwd=tmp_path)
    assert worker.returncode == 1
    assert worker.stderr.endswith(OUT_OF_DATE)


def test_worker_once_applies_what_a_no_worker_server_logged(db_url: str, tmp_path: Path) -> None:
    """The separate-worker deployment: `serve --no-worker` only logs, `worker` applies."""
    with live_server(db_url, tmp_path, worker=False) as server:
        auth = (server.write_key, "")
        batch = [
            {"type": "page", "anonymousId": "w-anon", "name": "Home", "messageId": "w1"},
            {
                "type": "identify",
                "anonymousId": "w-anon",
                "userId": "w-user",
                "traits": {"email": "w@example.com", "firstName": "Wanda"},
                "messageId": "w2",
            },
            {
                "type": "track",
                "userId": "w-user",
                "event": "Order Completed",
                "properties": {"order_id": "w-o1", "revenue": 42.5, "currency": "USD"},
                "messageId": "w3",
            },
        ]
        sent = httpx.post(f"{server.url}/v1/batch", json={"batch": batch}, auth=auth)
        assert sent.status_code == 200, sent.text
        status = httpx.get(f"{server.url}/api/pipeline/status", headers=server.admin).json()
        assert (status["pending"], status["parked"], status["in_process_worker"]) == (3, 0, False)
        missing = httpx.get(f"{server.url}/api/profiles/user_id:w-user", headers=server.admin)
        assert missing.status_code == 404

        worker = shopkeeper("worker", "--once", database_url=db_url, cwd=tmp_path)
        assert worker.returncode == 0, worker.stderr
        assert worker.stdout.splitlines()[-1] == "applied 3 events; handled 0 messages"

        status = server.wait_drained(timeout=5)
        assert (status["pending"], status["parked"]) == (0, 0)
        view = server.profile("user_id:w-user")
        assert server.profile("anonymous_id:w-anon") == view
        assert view["traits"] == {"email": "w@example.com", "firstName": "Wanda", "name": "Wanda"}
        computed = view["computed"]
        assert computed["events_count"] == 3
        assert computed["page_views_count"] == 1
        assert computed["orders_count"] == 1
        assert computed["total_revenue"] == 42.5
