"""`shopkeeper demo`: the generated shop replayed through a real server process and the
pipeline ends as the generator's own ground truth says it must."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path

import pytest
import sqlalchemy as sa
from rich.console import Console

from shopkeeper.demo.run import UI_EMAIL, DemoOptions, DemoResult, run_demo
from shopkeeper.demo.server import DemoError
from shopkeeper.segments.builtins import BUILTINS
from shopkeeper.segments.lang.parser import parse
from shopkeeper.segments.membership import population
from shopkeeper.storage import tables as t
from shopkeeper.storage.db import Database
from tests.live import free_port

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> tuple[DemoResult, Path]:
    path = tmp_path_factory.mktemp("demo") / "demo.db"
    options = DemoOptions(customers=150, seed=3, serve=False, database=path)
    result = run_demo(options, Console(file=io.StringIO(), width=120))
    return result, path


def test_profiles_match_the_generators_ground_truth(demo: tuple[DemoResult, Path]) -> None:
    result, path = demo
    truth = result.truth
    assert result.pipeline["pending"] == 0
    assert result.pipeline["parked"] == 0
    assert result.replay.rejected_count == 0
    assert result.replay.accepted == sum(truth.messages.values())
    db = Database(f"sqlite:///{path}")
    try:
        with db.read() as conn:
            live = sa.select(t.profiles.c.is_known, t.profiles.c.computed).where(
                t.profiles.c.merged_into.is_(None)
            )
            profiles = conn.execute(live).all()
            # The shop's own events; the "shopkeeper" source adds what journeys did (the
            # welcome emails' Message Sent events) and is checked below.
            events = conn.execute(
                sa.select(sa.func.count())
                .select_from(t.events.join(t.sources, t.sources.c.id == t.events.c.source_id))
                .where(t.sources.c.name != "shopkeeper")
            ).scalar_one()
            merged = conn.execute(
                sa.select(sa.func.count())
                .select_from(t.merges)
                .where(t.merges.c.status == "merged")
            ).scalar_one()
            refused = conn.execute(
                sa.select(sa.func.count())
                .select_from(t.merges)
                .where(t.merges.c.status == "refused")
            ).scalar_one()
    finally:
        db.dispose()
    assert events == result.replay.accepted
    # One profile per person who identified, one per device that never got linked.
    assert sum(1 for known, _ in profiles if known) == truth.known_people
    assert len(profiles) == truth.expected_profiles
    assert refused == 0
    assert merged >= truth.signups_other_device > 0
    computed = [c for _, c in profiles]
    assert sum(c.get("orders_count", 0) for c in computed) == truth.orders_counted
    assert sum(c.get("cancelled_count", 0) for c in computed) == truth.orders_cancelled
    assert sum(c.get("refunds_count", 0) for c in computed) == truth.refunds
    buyers = [c for c in computed if c.get("orders_count", 0) > 0]
    assert len(buyers) == truth.buyers
    assert sum(1 for c in buyers if c["orders_count"] > 1) == truth.repeat_buyers
    countries = {c.get("country") for c in computed} - {None}
    assert countries == set(truth.countries)


def test_the_store_is_set_up_for_a_newcomer(demo: tuple[DemoResult, Path]) -> None:
    result, path = demo
    db = Database(f"sqlite:///{path}")
    try:
        with db.read() as conn:
            sources = dict(conn.execute(sa.select(t.sources.c.name, t.sources.c.kind)).all())
            products = conn.execute(sa.select(sa.func.count()).select_from(t.products)).scalar()
            users = conn.execute(sa.select(t.users.c.email)).scalars().all()
            keys = conn.execute(sa.select(t.admin_keys.c.key_prefix)).scalars().all()
            stats = conn.execute(sa.select(sa.func.sum(t.product_stats.c.views))).scalar()
            journeys = dict(conn.execute(sa.select(t.journeys.c.key, t.journeys.c.status)).all())
            welcomes = conn.execute(
                sa.select(sa.func.count()).where(
                    t.messages.c.template == "welcome", t.messages.c.channel == "email"
                )
            ).scalar_one()
            carts = conn.execute(
                sa.select(sa.func.count()).where(t.enrollments.c.step == "wait_1h")
            ).scalar_one()
            segments = dict(
                conn.execute(
                    sa.select(t.segments.c.key, sa.func.count(t.segment_members.c.profile_id))
                    .outerjoin(t.segment_members, t.segment_members.c.segment_id == t.segments.c.id)
                    .group_by(t.segments.c.key)
                ).all()
            )
            rfm = conn.execute(
                sa.select(sa.func.count()).where(t.profile_scores.c.rfm_segment.is_not(None))
            ).scalar()
            buyers = conn.execute(
                sa.select(sa.func.count()).select_from(
                    population("sqlite", parse("orders_count >= 1"), {}, 0)
                    .columns(sa.column("id"))
                    .subquery()
                )
            ).scalar()
    finally:
        db.dispose()
    # Every built-in segment is enabled, and the common ones have members.
    assert set(segments) == {b.key for b in BUILTINS}
    for key in ("repeat-customers", "email-reachable", "lapsed-customers", "rfm-champions"):
        assert segments[key] > 0, key
    # RFM scores were computed for every customer with an order.
    assert rfm == buyers
    assert buyers > 0
    assert sources == {
        "web shop": "web", "app": "app", "pos": "pos", "crm": "crm", "shopkeeper": "other"
    }  # fmt: skip
    assert products == 361
    # The welcome and abandoned-cart journeys ran during the replay; the other playbooks
    # wait as drafts.
    from shopkeeper.journeys.playbooks import PLAYBOOKS

    assert set(journeys) == {p.key for p in PLAYBOOKS}
    assert {k for k, status in journeys.items() if status == "active"} == {
        "welcome", "abandoned_cart"
    }  # fmt: skip
    assert welcomes == result.truth.events["Signed Up"]
    assert carts > 0
    assert users == [UI_EMAIL]
    assert keys == [result.admin_key[:10]]
    assert stats == result.truth.events["Product Viewed"]
    assert len(result.ui_password) >= 10


def shopkeeper(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "NO_COLOR": "1", "COLUMNS": "200", "TERM": "dumb"}
    return subprocess.run(
        [sys.executable, "-m", "shopkeeper", *args],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_the_command_builds_then_rebuilds_its_database(tmp_path: Path) -> None:
    port = str(free_port())
    first = shopkeeper("demo", "--no-serve", "--customers", "40", "--port", port, cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    assert "Traceback" not in first.stderr + first.stdout
    lines = first.stdout.splitlines()
    assert any(line.startswith("Ready in ") for line in lines)
    password = next(line.split()[-1] for line in lines if "UI password:" in line)
    key = next(line.split()[-1] for line in lines if "Admin key (/api/*):" in line)
    assert key.startswith("sk_")
    assert f"http://127.0.0.1:{port}/login" in first.stdout
    assert (tmp_path / "shopkeeper-demo.db").exists()
    # A second run starts over on the same file, with new secrets.
    second = shopkeeper("demo", "--no-serve", "--customers", "40", "--port", port, cwd=tmp_path)
    assert second.returncode == 0, second.stderr
    assert password not in second.stdout
    db = Database(f"sqlite:///{tmp_path / 'shopkeeper-demo.db'}")
    try:
        with db.read() as conn:
            assert conn.execute(sa.select(sa.func.count()).select_from(t.users)).scalar() == 1
    finally:
        db.dispose()


def test_it_never_deletes_a_database_it_did_not_make(tmp_path: Path) -> None:
    precious = tmp_path / "shopkeeper.db"
    precious.write_bytes(b"SQLite format 3\x00 not really, but not ours either")
    result = shopkeeper("demo", "--no-serve", "--database", str(precious), cwd=tmp_path)
    assert result.returncode == 1
    assert result.stderr.startswith(f"error: {precious} exists and is not a demo database")
    assert "Traceback" not in result.stderr
    assert precious.read_bytes().startswith(b"SQLite format 3")


def test_a_busy_port_is_a_clear_error(tmp_path: Path) -> None:
    import socket

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        with pytest.raises(DemoError, match=f"port {port} on 127.0.0.1 is in use"):
            run_demo(
                DemoOptions(customers=5, serve=False, database=tmp_path / "d.db", port=port),
                Console(file=io.StringIO()),
            )
    assert not (tmp_path / "d.db").exists()
