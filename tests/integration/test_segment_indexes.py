"""Segment indexes on a real PostgreSQL: built for what saved segments compare, used by
PostgreSQL's planner for the population query, counting the same people as without
them, and dropped when no segment needs them any more. SQLite is left alone."""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from shopkeeper.config import Settings
from shopkeeper.segments import indexes, service
from shopkeeper.segments.membership import for_population, population
from shopkeeper.segments.store import conditions
from shopkeeper.storage import migrate
from shopkeeper.storage import tables as t
from shopkeeper.storage.db import Database
from tests.audience_fixtures import insert_profiles
from tests.conftest import PG_URL

NOW = 1_795_449_600_000
DAY = 86_400_000

SEGMENTS = {
    "nordic_gold": 'country in ("NO", "SE") and loyalty_tier = "gold" and total_revenue >= 500',
    "sofa_lookers": 'did "Product Viewed" at least 2 times within 7 days where category = "Sofas"',
    "recent": "last_order_at within 30 days",
}


@pytest.fixture
def pg() -> Iterator[Database]:
    """A database of its own: building indexes analyzes the tables, and statistics left
    in the session's shared database would change other tests' plans."""
    admin = sa.create_engine(PG_URL, isolation_level="AUTOCOMMIT")
    name = f"sk_test_idx_{uuid.uuid4().hex[:8]}"
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    url = sa.engine.make_url(PG_URL).set(database=name).render_as_string(hide_password=False)
    database = Database(url)
    try:
        migrate.upgrade(database)
        yield database
    finally:
        database.dispose()
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def _people(db: Database) -> None:
    rows = []
    for n in range(400):
        rows.append(
            {
                "traits": {"loyalty_tier": ["gold", "silver", 7, None][n % 4]},
                "computed": {
                    "country": ["NO", "SE", "DK", "US", 3][n % 5],
                    "total_revenue": [100, 600, "900", 1500][n % 4 if n % 3 else 1],
                    "last_order_at": f"2026-11-{1 + n % 28:02d}T10:00:00.000Z",
                },
            }
        )
    ids = insert_profiles(db, rows)
    with db.write() as conn:
        conn.execute(
            t.events.insert(),
            [
                {
                    "source_id": 1,
                    "message_id": f"m{pid}-{k}",
                    "type": "track",
                    "event": "Product Viewed",
                    "partition": 0,
                    "timestamp": NOW - (1 + k * (pid % 5)) * DAY,
                    "received_at": NOW,
                    "status": 1,
                    "profile_id": pid,
                    "payload": {"properties": {"category": ["Sofas", "Beds"][pid % 2]}},
                }
                for pid in ids
                for k in range(3)
            ],
        )


def _counts(db: Database) -> dict[str, int]:
    out = {}
    with db.read() as conn, conn.begin():
        saved = conditions(conn)
        for_population(conn)
        for key, node in saved.items():
            query = population("postgresql", node, saved, NOW).columns(sa.column("id")).subquery()
            out[key] = int(conn.execute(sa.select(sa.func.count()).select_from(query)).scalar_one())
    return out


def _plan(db: Database, key: str) -> str:
    with db.read() as conn, conn.begin():
        saved = conditions(conn)
        conn.execute(sa.text("SET LOCAL enable_seqscan = off"))
        query = population("postgresql", saved[key], saved, NOW)
        compiled = query.compile(conn, compile_kwargs={"literal_binds": True})
        rows = conn.execute(sa.text(f"EXPLAIN {compiled}"))
        return "\n".join(row[0] for row in rows)


def _built(db: Database) -> dict[str, bool]:
    with db.read() as conn:
        return {name: state.valid for name, state in indexes.existing(conn).items()}


def test_indexes_follow_the_saved_segments_and_the_planner_uses_them(pg: Database) -> None:
    _people(pg)
    for key, condition in SEGMENTS.items():
        service.create(pg, NOW, actor="test", key=key, name=key, condition=condition)
    before = _counts(pg)
    assert all(n > 0 for n in before.values()), before

    settings = Settings(database_url=pg.url)
    result = indexes.sync(pg, settings, NOW)
    with pg.read() as conn:
        want = {i.name: i for i in indexes.wanted(conditions(conn), NOW, 32)}
    # country, loyalty_tier, total_revenue, last_order_at, the events' category; a filter
    # for nordic_gold and one of sofa_lookers' events (recent has no constant test).
    assert len(want) == 7
    assert sum(i.use is None for i in want.values()) == 2
    assert sorted(result.created) == sorted(want)
    assert _built(pg) == dict.fromkeys(want, True)

    # The same people, and each segment's query reads an index built for it.
    assert _counts(pg) == before
    for key in SEGMENTS:
        assert "sk_seg_" in _plan(pg, key), key

    # Nothing to do the second time.
    again = indexes.sync(pg, settings, NOW)
    assert (again.created, again.dropped) == ([], [])
    assert sorted(again.kept) == sorted(want)

    # A segment deleted: the indexes only it used go.
    service.delete(pg, NOW, "recent", actor="test")
    gone = indexes.sync(pg, settings, NOW)
    assert len(gone.dropped) == 1
    dropped = want[gone.dropped[0]].use
    assert dropped is not None
    assert dropped.path == ("last_order_at",)
    assert len(_built(pg)) == 6

    # An index left invalid by an interrupted build is rebuilt.
    name = next(iter(_built(pg)))
    with pg.write() as conn:
        conn.execute(
            sa.text(
                "UPDATE pg_index SET indisvalid = false WHERE indexrelid = CAST(:n AS regclass)"
            ),
            {"n": name},
        )
    assert _built(pg)[name] is False
    rebuilt = indexes.sync(pg, settings, NOW)
    assert rebuilt.created == [name]
    assert rebuilt.dropped == [name]
    assert all(_built(pg).values())

    # Switched off: every segment index is dropped.
    off = indexes.sync(pg, Settings(database_url=pg.url, segment_indexes=False), NOW)
    assert len(off.dropped) == 6
    assert _built(pg) == {}


def _bound_plan(db: Database, key: str) -> str:
    """The plan of a segment's population query as the product sends it: values bound
    as parameters, not written into the text (a filter is only used when PostgreSQL
    sees the values while planning)."""
    with db.read() as conn, conn.begin():
        saved = conditions(conn)
        for_population(conn)
        conn.execute(sa.text("SET LOCAL enable_seqscan = off"))  # a table of 400 rows
        query = population("postgresql", saved[key], saved, NOW).columns(sa.column("id"))
        counted = sa.select(sa.func.count()).select_from(query.subquery())
        compiled = counted.compile(conn)
        rows = conn.exec_driver_sql(f"EXPLAIN {compiled}", compiled.params)
        return "\n".join(row[0] for row in rows)


FILTERED = {
    # Each kind of constant test a filter holds, alone or together.
    "values": 'country in ("NO", "SE") and loyalty_tier = "gold"',
    "bounds": "total_revenue >= 600 and total_revenue < 1500.5",
    "flags": "traits.vip and email is set",
    "texts": 'name starts with "A" and known',
    # The constant part of a condition that also reads consents and events.
    "mixed": (
        'country = "NO" and consent.email '
        'and not did "Product Viewed" at least 3 times within 2 days'
    ),
    "named": 'in segment "values" and total_revenue >= 600',
    "events": 'did "Product Viewed" at least 2 times within 30 days where category = "Sofas"',
    "probed": 'loyalty_tier = "gold" and did "Product Viewed" within 2 days',
}


def test_filters_are_read_alone_for_saved_segments_and_count_the_same(pg: Database) -> None:
    _people(pg)
    with pg.write() as conn:
        conn.execute(
            sa.text(
                "UPDATE profiles SET traits = traits || jsonb_build_object("
                "'vip', id % 3 = 0, 'name', CASE WHEN id % 2 = 0 THEN 'Ada' ELSE 'Bo' END, "
                "'email', CASE WHEN id % 5 = 0 THEN NULL ELSE 'x' || id || '@example.com' END)"
            )
        )
        conn.execute(
            t.consents.insert(),
            [
                {
                    "profile_id": pid,
                    "channel": "email",
                    "purpose": "marketing",
                    "granted": pid % 2 == 0,
                    "updated_at": NOW,
                    "via": "test",
                }
                for (pid,) in conn.execute(sa.text("SELECT id FROM profiles")).all()
            ],
        )
    for key, condition in FILTERED.items():
        service.create(pg, NOW, actor="test", key=key, name=key, condition=condition)
    without = _counts(pg)
    assert all(n > 0 for n in without.values()), without

    indexes.sync(pg, Settings(database_url=pg.url), NOW)
    with pg.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(sa.text("VACUUM ANALYZE profiles"))
        conn.execute(sa.text("VACUUM ANALYZE events"))
        conn.execute(sa.text("VACUUM ANALYZE consents"))
    with pg.read() as conn:
        saved = conditions(conn)
    for key in FILTERED:
        node = saved[key]
        if key == "events":
            (wanted,) = indexes.event_filters(node, saved, NOW)
            assert wanted.filter.endswith("by time")
        else:
            found = indexes.profile_filter(node, saved, NOW)
            assert found is not None
            wanted = found
        plan = _bound_plan(pg, key)
        assert f"Index Only Scan using {wanted.name}" in plan, (key, plan)
    # Consent tests read their sets from their filters; an event test reads a filter of
    # its event (of this segment, or of another that PostgreSQL finds cheaper: with 400
    # profiles the by-time filter of "mixed" serves "probed" as well).
    event_filters = {i.name for n in saved.values() for i in indexes.event_filters(n, saved, NOW)}
    for key in FILTERED:
        plan = _bound_plan(pg, key)
        node = saved[key]
        for index in indexes.consent_filters(node, saved):
            assert f"Index Only Scan using {index.name}" in plan, (key, index.filter, plan)
        if indexes.event_filters(node, saved, NOW):
            assert any(f"Index Only Scan using {name}" in plan for name in event_filters), plan
    assert _counts(pg) == without


def test_sqlite_gets_no_indexes(tmp_path: Path, sqlite_template: Path) -> None:
    shutil.copy(sqlite_template, tmp_path / "shopkeeper.db")
    db = Database(f"sqlite:///{tmp_path / 'shopkeeper.db'}")
    service.create(db, NOW, actor="test", key="a", name="a", condition='country = "NO"')
    result = indexes.sync(db, Settings(database_url=db.url), NOW)
    assert (result.created, result.dropped, result.kept) == ([], [], [])
    with db.read() as conn:
        names = conn.execute(
            sa.text("SELECT name FROM sqlite_master WHERE name LIKE 'sk_seg_%'")
        ).all()
    assert names == []
    db.dispose()
