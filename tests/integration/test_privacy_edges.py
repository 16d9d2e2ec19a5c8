"""Privacy at the edges: a long export streamed in chunks, the CLI, CRM imports (and
their error lists), and an erase racing pipeline workers."""

from __future__ import annotations

import json
import time
from typing import Any

import sqlalchemy as sa
from typer.testing import CliRunner

from shopkeeper.bootstrap import make_processor
from shopkeeper.cli import app as cli_app
from shopkeeper.imports.model import ImportOptions
from shopkeeper.imports.service import run_import
from shopkeeper.pipeline.worker import PipelineRunner
from shopkeeper.privacy.erase import erase_profile
from shopkeeper.privacy.export import export_profile, open_export_stream
from shopkeeper.privacy.suppression import dropped_count
from shopkeeper.storage import tables as t
from tests.harness import NOW, harness
from tests.privacy_people import (
    ANA_EMAIL,
    ANA_NEEDLES,
    ANA_USER,
    found,
    page,
    setup_people,
    track,
    viewed,
)


def test_a_long_history_is_streamed_in_chunks(db_url: str) -> None:
    with harness(db_url) as h:
        padding = "x" * 400
        for start in range(0, 240, 120):
            h.batch(
                [
                    track(
                        f"e{i}", "Product Viewed", -1000 + i, userId="u1", properties={"p": padding}
                    )
                    for i in range(start, start + 120)
                ]
            )
        assert h.drain() == 240
        profile_id = h.profile("user_id:u1")["profile_id"]
        chunks = list(open_export_stream(h.services.db, profile_id, now_ms=NOW))
        assert len(chunks) >= 2
        assert all(len(chunk) <= 64 * 1024 + 2048 for chunk in chunks)
        doc = json.loads(b"".join(chunks))
        assert [e["message_id"] for e in doc["events"]] == [f"e{i}" for i in range(240)]
        with h.services.db.read() as conn:
            assert export_profile(conn, profile_id, now_ms=NOW) == doc


def test_cli_exports_and_erases(db_url: str, tmp_path: Any) -> None:
    runner = CliRunner()
    with harness(db_url) as h:
        ids = setup_people(h)
        out = tmp_path / "ana.json"
        exported = runner.invoke(
            cli_app,
            ["profiles", "export", f"email:{ANA_EMAIL}", "-o", str(out), "--database-url", db_url],
        )
        assert exported.exit_code == 0, exported.output
        doc = json.loads(out.read_text())
        assert doc["profile_id"] == ids["ana"]
        assert [e["message_id"] for e in doc["events"]] == ["m1", "m2", "m3", "m4"]

        to_stdout = runner.invoke(
            cli_app, ["profiles", "export", "email:bob@example.org", "--database-url", db_url]
        )
        assert to_stdout.exit_code == 0, to_stdout.output
        assert json.loads(to_stdout.stdout)["profile_id"] == ids["bob"]

        declined = runner.invoke(
            cli_app,
            ["profiles", "erase", f"profile:{ids['ana_absorbed']}", "--database-url", db_url],
            input="n\n",
        )
        assert declined.exit_code == 1
        assert h.profile(f"email:{ANA_EMAIL}")["profile_id"] == ids["ana"]

        erased = runner.invoke(
            cli_app,
            [
                "profiles",
                "erase",
                f"profile:{ids['ana_absorbed']}",
                "--yes",
                "--database-url",
                db_url,
            ],
        )
        assert erased.exit_code == 0, erased.output
        assert f"profile {ids['ana']} erased" in erased.stdout
        assert found(h.services.db, ANA_NEEDLES) == set()

        gone = runner.invoke(
            cli_app, ["profiles", "erase", f"email:{ANA_EMAIL}", "--yes", "--database-url", db_url]
        )
        assert gone.exit_code == 1
        assert "error: no profile holds email:ana.lindqvist@example.com" in gone.output
        bad = runner.invoke(cli_app, ["profiles", "export", "nocolon", "--database-url", db_url])
        assert bad.exit_code == 1
        assert "error: A profile is named as type:value" in bad.output

        with h.services.db.read() as conn:
            entries = conn.execute(
                sa.select(t.audit_log.c.actor, t.audit_log.c.action, t.audit_log.c.target)
                .where(t.audit_log.c.action.like("profile.%"))
                .order_by(t.audit_log.c.id)
            ).all()
        assert [tuple(e) for e in entries] == [
            ("cli", "profile.export", f"profile {ids['ana']}"),
            ("cli", "profile.export", f"profile {ids['bob']}"),
            ("cli", "profile.erase", f"profile {ids['ana']}"),
        ]


def test_erase_reaches_imported_customers_and_import_error_lists(
    db_url: str, tmp_path: Any
) -> None:
    with harness(db_url) as h:
        ids = setup_people(h)
        path = tmp_path / "crm.csv"
        path.write_text(
            "customer_id,email,first_name,last_name,phone,email_opt_in\n"
            f"{ANA_USER},{ANA_EMAIL},Ana,Lindqvist,+47 912 34 567,yes\n"
            f"{ANA_USER},Lindqvist at example,Ana,Lindqvist,,no\n"
            "user-bob-4410,bob@example.org,Bob,Berg,,yes\n"
        )
        summary = run_import(
            h.services, "customers", path, "crm.csv", ImportOptions(), "admin key 1 (tests)"
        )
        assert (summary.imported, summary.rejected) == (2, 1)
        assert [error["line"] for error in summary.errors] == [3]
        assert h.drain() == 6  # 2 imported; 3 of Ana's and 1 of Bob's pending (m8 is parked)
        assert h.profile(f"user_id:{ANA_USER}")["traits"]["lastName"] == "Lindqvist"

        response = h.client.delete(f"/api/profiles/email:{ANA_EMAIL}", headers=h.admin)
        assert response.status_code == 200
        assert response.json()["profile_id"] == ids["ana"]
        assert found(h.services.db, ANA_NEEDLES) == set()
        assert h.profile("user_id:user-bob-4410")["traits"]["lastName"] == "Berg"


def test_erase_while_workers_apply_the_persons_events_leaves_nothing(db_url: str) -> None:
    """Workers apply (and merge) Ana's events while she is erased: every event ends up
    either deleted by the erase or dropped by the pipeline, never applied after it."""
    with harness(db_url) as h:
        # Seven anonymous visits first; her events below link (merge) them one by one.
        h.batch([page(f"v{i}", -600 + i, anonymousId=f"anon-ana-{i}") for i in range(7)])
        assert h.drain() == 7
        db = h.services.db
        workers = [PipelineRunner(h.processor, 0.01)]
        if not db.is_sqlite:
            config = h.services.settings
            workers.append(PipelineRunner(make_processor(db, config, h.clock, None), 0.01))
        for worker in workers:
            worker.start()
        sent = 7
        summary = None
        try:
            for batch in range(15):
                h.batch(
                    [
                        viewed(
                            f"w{batch}-{i}",
                            -500 + batch,
                            userId=ANA_USER,
                            anonymousId=f"anon-ana-{i % 7}",
                        )
                        for i in range(20)
                    ]
                )
                sent += 20
                if batch == 5:
                    deadline = time.monotonic() + 30
                    while time.monotonic() < deadline:
                        with db.read() as conn:
                            owner = conn.execute(
                                sa.select(t.identities.c.profile_id).where(
                                    t.identities.c.value == ANA_USER
                                )
                            ).scalar()
                        if owner is not None:
                            break
                    assert owner is not None, "the workers applied none of her events"
                    summary = erase_profile(db, int(owner), NOW, "tests")
        finally:
            for worker in workers:
                worker.stop()
        h.drain()
        assert summary is not None
        assert found(db, (ANA_USER, "anon-ana-")) == set()
        with db.read() as conn:
            assert conn.execute(sa.select(sa.func.count()).select_from(t.profiles)).scalar() == 0
            assert conn.execute(sa.select(sa.func.count()).select_from(t.events)).scalar() == 0
            dropped = dropped_count(conn)
        assert summary.events_deleted + dropped == sent
