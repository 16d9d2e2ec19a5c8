"""The scheduler: periodic work (segment refreshes, RFM, lead-score decay, audience
syncs) run by whichever process claims it, at most one at a time.

Each task has a row in scheduled_tasks. A process claims a due task in one UPDATE that
only succeeds when the task is due and nobody holds an unexpired lease; it runs the task
and then sets the next run time. Several processes (serve, workers) may run schedulers
against one database: each due run happens once. A process that dies mid-task leaves a
lease that expires, after which another process runs the task again.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import traceback
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from shopkeeper.clock import Clock
from shopkeeper.config import Settings
from shopkeeper.observability.metrics import Metrics
from shopkeeper.storage import tables as t
from shopkeeper.storage.db import Database

log = logging.getLogger(__name__)

MINUTE_MS = 60_000
tasks_t = t.scheduled_tasks


@dataclass(frozen=True)
class Task:
    name: str
    interval_ms: int
    run: Callable[[Database, Settings, int], Any]
    # Longer than the task can take: past it, another process may run the task again.
    lease_ms: int = 30 * MINUTE_MS


@dataclass(frozen=True)
class TaskStatus:
    name: str
    next_run_at: int
    lease_owner: str | None
    last_started_at: int | None
    last_finished_at: int | None
    last_error: str | None


def _owner() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"[:100]


class Scheduler:
    def __init__(
        self,
        db: Database,
        settings: Settings,
        clock: Clock,
        tasks: Sequence[Task],
        *,
        tick_seconds: float | None = None,
        metrics: Metrics | None = None,
    ) -> None:
        self.metrics = metrics
        self.db = db
        self.settings = settings
        self.clock = clock
        self.tasks = {task.name: task for task in tasks}
        self.tick_seconds = tick_seconds or settings.scheduler_tick_seconds
        self.owner = _owner()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._registered = False

    def _register(self) -> None:
        if self._registered:
            return
        with self.db.write() as conn:
            conn.execute(
                self.db.insert_ignore(tasks_t),
                [{"name": name, "next_run_at": 0} for name in self.tasks],
            )
        self._registered = True

    def _claim(self, task: Task, now_ms: int) -> bool:
        with self.db.write() as conn:
            result = conn.execute(
                tasks_t.update()
                .where(tasks_t.c.name == task.name, tasks_t.c.next_run_at <= now_ms)
                .where(sa.or_(tasks_t.c.lease_until.is_(None), tasks_t.c.lease_until < now_ms))
                .values(
                    lease_owner=self.owner,
                    lease_until=now_ms + task.lease_ms,
                    last_started_at=now_ms,
                )
            )
            return bool(result.rowcount)

    def _finish(self, task: Task, error: str | None) -> None:
        done = self.clock.now_ms()
        with self.db.write() as conn:
            conn.execute(
                tasks_t.update()
                .where(tasks_t.c.name == task.name, tasks_t.c.lease_owner == self.owner)
                .values(
                    next_run_at=done + task.interval_ms,
                    lease_owner=None,
                    lease_until=None,
                    last_finished_at=done,
                    last_error=error,
                )
            )

    def run_task(self, name: str) -> bool:
        """Run one task now if nobody else holds it (whether due or not). Returns whether
        it ran."""
        self._register()
        task = self.tasks[name]
        with self.db.write() as conn:
            now_ms = self.clock.now_ms()
            result = conn.execute(
                tasks_t.update()
                .where(tasks_t.c.name == name)
                .where(sa.or_(tasks_t.c.lease_until.is_(None), tasks_t.c.lease_until < now_ms))
                .values(
                    lease_owner=self.owner,
                    lease_until=now_ms + task.lease_ms,
                    last_started_at=now_ms,
                )
            )
            if not result.rowcount:
                return False
        self._execute(task, now_ms)
        return True

    def _execute(self, task: Task, now_ms: int) -> None:
        error = None
        try:
            task.run(self.db, self.settings, now_ms)
        except Exception as exc:
            log.exception("scheduled task %s failed", task.name)
            error = "".join(traceback.format_exception_only(exc)).strip()[:2000]
        if self.metrics is not None:
            self.metrics.scheduled_runs.labels(task.name, "failed" if error else "ok").inc()
        self._finish(task, error)

    def run_due(self) -> list[str]:
        """Run every due task this process can claim; returns their names."""
        self._register()
        ran = []
        for task in self.tasks.values():
            if self._stop.is_set():
                break
            now_ms = self.clock.now_ms()
            if self._claim(task, now_ms):
                self._execute(task, now_ms)
                ran.append(task.name)
        return ran

    def status(self) -> list[TaskStatus]:
        self._register()
        with self.db.read() as conn:
            rows = conn.execute(sa.select(tasks_t).order_by(tasks_t.c.name)).all()
        return [
            TaskStatus(
                r.name,
                int(r.next_run_at),
                r.lease_owner,
                r.last_started_at,
                r.last_finished_at,
                r.last_error,
            )
            for r in rows
            if r.name in self.tasks
        ]

    # -- the thread ----------------------------------------------------------------------

    def loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.run_due()
            except Exception:
                log.exception("scheduler tick failed")
            self._stop.wait(self.tick_seconds)

    def start(self) -> None:
        if self._thread is None:
            self._stop.clear()
            self._thread = threading.Thread(target=self.loop, name="scheduler", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        """Stop after the task in progress (if any) finishes."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
