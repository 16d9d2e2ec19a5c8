"""Audience syncs in several requests: a full load in pages that resumes where a failure
stopped it and stays exact while members change between pages, deltas split at the row
limit, and (PostgreSQL) a history row committed late below the cursor is not skipped."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from shopkeeper.config import Settings
from shopkeeper.segments.audiences import store
from shopkeeper.segments.audiences.sync import run_due_syncs
from shopkeeper.storage import tables as t
from tests.audience_fixtures import (
    HookServer,
    create_segment,
    enter,
    history_top,
    hook_server,
    leave,
    person,
)
from tests.harness import NOW, Harness, harness

MINUTE = 60_000


@pytest.fixture
def server() -> Iterator[HookServer]:
    with hook_server() as running:
        yield running


def audience(h: Harness, url: str, **body: Any) -> dict[str, Any]:
    payload = {"segment": "vip", "name": "VIP", "url": url, "fields": ["email"], **body}
    response = h.client.post("/api/audiences", json=payload, headers=h.admin)
    assert response.status_code == 201, response.text
    return response.json()  # type: ignore[no-any-return]


def run(h: Harness, settings: Settings | None = None) -> list[str]:
    with httpx.Client(timeout=5) as client:
        outcomes = run_due_syncs(
            h.services.db, settings or h.services.settings, h.clock.now_ms(), client
        )
    return [outcome.status for outcome in outcomes]


def ids(records: list[dict[str, Any]]) -> list[int]:
    return [record["profile_id"] for record in records]


def test_full_load_in_pages_resumes_and_is_exact_as_of_its_mark(
    db_url: str, server: HookServer
) -> None:
    with harness(db_url, webhook_allow_private=True, audience_sync_batch_size=2) as h:
        db = h.services.db
        a, b, c, d, e = (person(h, f"u-{n}", email=f"{n}@example.com") for n in "abcde")
        vip = create_segment(db, "vip")
        enter(db, vip, a, b, c, d)
        sync = audience(h, server.url)
        mark = history_top(db)
        server.fail_requests = {2}  # page 1 (a, b) is acknowledged; page 2 fails
        assert run(h) == ["failed"]
        state = h.client.get(f"/api/audiences/{sync['id']}", headers=h.admin).json()
        assert state["full_load_pending"]
        assert state["cursor"] == mark

        # Between pages: c leaves, e enters. The full load still sends the members as of
        # its mark (c in, e out); the deltas after it say what changed since.
        leave(db, vip, c)
        enter(db, vip, e)
        h.clock.advance(MINUTE)
        assert run(h) == ["ok"]
        bodies = server.bodies()
        assert [(b["full_load"], ids(b["added"]), ids(b["removed"])) for b in bodies] == [
            (True, [a, b], []),
            (True, [c, d], []),  # the failed try
            (True, [c, d], []),  # resumed at page 2, not from the start
            (False, [e], [c]),
        ]
        assert [body["cursor"] for body in bodies[:3]] == [mark, mark, mark]
        assert bodies[3]["cursor"] == history_top(db)


def test_deltas_split_at_the_row_limit(db_url: str, server: HookServer) -> None:
    with harness(db_url, webhook_allow_private=True, audience_sync_batch_size=2) as h:
        db = h.services.db
        people = [person(h, f"u-{n}", email=f"{n}@example.com") for n in range(7)]
        vip = create_segment(db, "vip")
        enter(db, vip, *people[:2])
        sync = audience(h, server.url, interval_minutes=5)
        assert run(h) == ["ok"]
        enter(db, vip, *people[2:7])  # five history rows: three requests of two rows
        leave(db, vip, people[0])
        h.clock.advance(5 * MINUTE)
        assert run(h) == ["ok"]
        deltas = server.bodies()[1:]
        assert [ids(b["added"]) for b in deltas] == [people[2:4], people[4:6], [people[6]]]
        assert [ids(b["removed"]) for b in deltas] == [[], [], [people[0]]]
        cursors = [b["cursor"] for b in deltas]
        assert cursors == sorted(cursors)
        assert cursors[-1] == history_top(db)
        history = h.client.get(f"/api/audiences/{sync['id']}/runs", headers=h.admin).json()
        assert [(r["from_cursor"] < r["to_cursor"], r["full_load"]) for r in history[:3]] == [
            (True, False)
        ] * 3


def test_a_late_commit_below_the_cursor_is_not_skipped(db_url: str, server: HookServer) -> None:
    """PostgreSQL draws ids at insert, not at commit: a slow transaction can commit id n
    after id n+1 is visible. The sync must wait for it rather than move past it."""
    if db_url.startswith("sqlite"):
        pytest.skip("SQLite has one writer at a time: a later id cannot commit first")
    with harness(db_url, webhook_allow_private=True) as h:
        db = h.services.db
        ana, bob, carl = (
            person(h, f"u-{n}", email=f"{n}@example.com") for n in ("ana", "bob", "carl")
        )
        vip = create_segment(db, "vip")
        enter(db, vip, ana)
        audience(h, server.url, interval_minutes=1)
        assert run(h) == ["ok"]

        slow = db.engine.connect()
        slow_tx = slow.begin()
        slow.execute(
            t.segment_members.insert().values(segment_id=vip, profile_id=bob, entered_at=NOW)
        )
        slow.execute(
            t.segment_history.insert().values(segment_id=vip, profile_id=bob, at=NOW, entered=True)
        )
        enter(db, vip, carl)  # a higher id, committed first
        with db.read() as conn:
            visible = conn.execute(sa.select(t.segment_history.c.profile_id)).scalars().all()
        assert carl in visible
        assert bob not in visible

        h.clock.advance(MINUTE)
        result: list[list[str]] = []
        syncing = threading.Thread(target=lambda: result.append(run(h)))
        syncing.start()
        time.sleep(0.5)
        assert syncing.is_alive()  # waiting for the open transaction, not skipping it
        slow_tx.commit()
        slow.close()
        syncing.join(timeout=30)
        assert result == [["ok"]]
        last = server.received[-1].body
        assert ids(last["added"]) == [bob, carl]
        assert last["cursor"] == history_top(db)


def test_a_run_that_lost_its_lease_records_nothing(db_url: str, server: HookServer) -> None:
    with harness(db_url, webhook_allow_private=True, audience_sync_batch_size=1) as h:
        db = h.services.db
        vip = create_segment(db, "vip")
        enter(db, vip, *(person(h, f"u-{n}", email=f"{n}@example.com") for n in "ab"))
        sync = audience(h, server.url)

        def take_over(number: int) -> None:
            # While our first request is out, another process finds the lease expired.
            if number == 1:
                with db.write() as conn:
                    later = NOW + 16 * MINUTE
                    assert store.claim(conn, sync["id"], later, 15 * MINUTE, due_only=False)

        server.on_request = take_over
        assert run(h) == ["busy"]
        assert len(server.received) == 1
        state = h.client.get(f"/api/audiences/{sync['id']}", headers=h.admin).json()
        assert state["full_load_pending"]
        assert state["cursor"] == 0
        assert h.client.get(f"/api/audiences/{sync['id']}/runs", headers=h.admin).json() == []


def test_a_long_run_dates_its_requests_and_renews_its_lease(
    db_url: str, server: HookServer
) -> None:
    with harness(db_url, webhook_allow_private=True, audience_sync_batch_size=1) as h:
        db = h.services.db
        vip = create_segment(db, "vip")
        enter(db, vip, *(person(h, f"u-{n}", email=f"{n}@example.com") for n in "abc"))
        sync = audience(h, server.url, interval_minutes=10)
        ticks = iter(range(NOW, NOW + 10**9, 7 * MINUTE))  # each reading: 7 minutes later
        with httpx.Client(timeout=5) as client:
            [outcome] = run_due_syncs(
                db, h.services.settings, NOW, client, clock=lambda: next(ticks)
            )
        # 3 pages, 21+ minutes in all: longer than one lease, renewed before each request.
        assert outcome.status == "ok"
        assert len(server.received) == 3
        history = h.client.get(f"/api/audiences/{sync['id']}/runs", headers=h.admin).json()
        starts = [r["started_at"] for r in reversed(history)]
        assert starts == sorted(starts)
        assert len(set(starts)) == 3
        assert all(r["finished_at"] > r["started_at"] for r in history)
        state = h.client.get(f"/api/audiences/{sync['id']}", headers=h.admin).json()
        assert not state["running"]
        assert state["next_run_at"] > history[0]["finished_at"]
