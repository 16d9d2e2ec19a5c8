"""The scheduler on SQLite and PostgreSQL: a due task runs once however many processes
try, a crashed run's lease expires and the task runs again, failures are recorded and do
not stop the others, and the product's own tasks (segment refresh, sizes, RFM, lead
decay, audience syncs) run through it."""

from __future__ import annotations

import threading
import time
from typing import Any

import sqlalchemy as sa

from shopkeeper.bootstrap import make_scheduler
from shopkeeper.clock import FixedClock
from shopkeeper.config import Settings
from shopkeeper.scheduler import Scheduler, Task
from shopkeeper.storage import tables as t
from shopkeeper.storage.db import Database
from shopkeeper.timeutil import ms_to_iso
from tests.harness import NOW, harness

MINUTE = 60_000


def _setup(db_url: str) -> tuple[Database, Settings]:
    settings = Settings(database_url=db_url)
    db = Database(db_url)
    return db, settings


def test_a_due_task_runs_once_across_schedulers(db_url: str) -> None:
    db, settings = _setup(db_url)
    clock = FixedClock(NOW)
    calls: list[int] = []
    task = Task("count", 10 * MINUTE, lambda _db, _s, now: calls.append(now))
    first = Scheduler(db, settings, clock, [task])
    second = Scheduler(db, settings, clock, [task])
    assert first.run_due() == ["count"]
    assert second.run_due() == []
    clock.advance(9 * MINUTE)
    assert first.run_due() == []
    assert second.run_due() == []
    clock.advance(MINUTE)
    assert second.run_due() == ["count"]
    assert first.run_due() == []
    assert calls == [NOW, NOW + 10 * MINUTE]
    db.dispose()


def test_concurrent_schedulers_never_run_a_task_twice(db_url: str) -> None:
    db, settings = _setup(db_url)
    clock = FixedClock(NOW)
    calls: list[str] = []
    lock = threading.Lock()

    def slow(_db: Database, _s: Settings, _now: int) -> None:
        with lock:
            calls.append("run")
        time.sleep(0.05)

    task = Task("slow", 10 * MINUTE, slow)
    schedulers = [Scheduler(db, settings, clock, [task]) for _ in range(4)]
    schedulers[0].run_due()  # registers; runs once
    clock.advance(10 * MINUTE)
    threads = [threading.Thread(target=s.run_due) for s in schedulers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert calls == ["run", "run"]
    db.dispose()


def test_a_crashed_run_is_retried_after_its_lease(db_url: str) -> None:
    db, settings = _setup(db_url)
    clock = FixedClock(NOW)
    calls: list[int] = []
    task = Task("job", 60 * MINUTE, lambda _db, _s, now: calls.append(now), lease_ms=5 * MINUTE)
    crashed = Scheduler(db, settings, clock, [task])
    crashed._register()
    assert crashed._claim(task, clock.now_ms())  # claimed, then the process died
    other = Scheduler(db, settings, clock, [task])
    assert other.run_due() == []
    clock.advance(5 * MINUTE + 1)
    assert other.run_due() == ["job"]
    assert calls == [NOW + 5 * MINUTE + 1]
    db.dispose()


def test_failures_are_recorded_and_the_other_tasks_go_on(db_url: str) -> None:
    db, settings = _setup(db_url)
    clock = FixedClock(NOW)
    ran: list[str] = []

    def broken(_db: Database, _s: Settings, _now: int) -> Any:
        raise RuntimeError("destination said no")

    scheduler = Scheduler(
        db,
        settings,
        clock,
        [Task("broken", MINUTE, broken), Task("fine", MINUTE, lambda *_: ran.append("fine"))],
    )
    assert scheduler.run_due() == ["broken", "fine"]
    status = {s.name: s for s in scheduler.status()}
    assert status["broken"].last_error == "RuntimeError: destination said no"
    assert status["broken"].next_run_at == NOW + MINUTE
    assert status["fine"].last_error is None
    assert ran == ["fine"]
    db.dispose()


def test_the_thread_runs_due_tasks_and_stops(db_url: str) -> None:
    db, settings = _setup(db_url)
    clock = FixedClock(NOW)
    seen = threading.Event()
    scheduler = Scheduler(
        db, settings, clock, [Task("t", MINUTE, lambda *_: seen.set())], tick_seconds=0.05
    )
    scheduler.start()
    try:
        assert seen.wait(10)
    finally:
        scheduler.stop()
    db.dispose()


def test_the_products_tasks_run_through_the_scheduler(db_url: str) -> None:
    with harness(db_url) as h:
        response = h.client.post(
            "/api/segments",
            json={"key": "recent", "name": "Recent", "condition": "last_seen_at within 1 hour"},
            headers=h.admin,
        )
        assert response.status_code == 201
        h.send(
            "track",
            {"event": "Order Completed", "userId": "ana", "timestamp": ms_to_iso(NOW),
             "properties": {"order_id": "o1", "revenue": 30}},
        )  # fmt: skip
        h.drain()
        clock = h.clock
        assert isinstance(clock, FixedClock)
        scheduler = make_scheduler(h.services.db, h.services.settings, clock)
        ran = scheduler.run_due()
        assert set(ran) == {
            "segments.refresh", "segments.sizes", "segments.indexes", "scores.rfm",
            "scores.lead_decay", "audiences.sync", "journeys.timers", "journeys.segments",
            "journeys.broadcasts", "journeys.dates", "journeys.catalog",
        }  # fmt: skip
        assert all(s.last_error is None for s in scheduler.status())
        with h.services.db.read() as conn:
            rfm = conn.execute(sa.select(t.profile_scores.c.rfm_segment)).scalars().all()
        assert len(rfm) == 1
        assert rfm[0] is not None
        clock.advance(2 * 60 * MINUTE)
        assert "segments.refresh" in scheduler.run_due()
        members = h.client.get("/api/segments/recent", headers=h.admin).json()["size"]
        assert members == 0
