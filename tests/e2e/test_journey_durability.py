"""Journeys survive crashes and concurrency: nothing skipped, nothing sent twice.

Two workers racing over the same due timers and messages (PostgreSQL, where several
workers may run) advance each enrollment once and send each message once. A real worker
process killed (SIGKILL) mid-journey and started again finishes every journey, and
every person receives exactly one email per send step.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from shopkeeper.clock import FixedClock, SystemClock
from shopkeeper.journeys import service
from shopkeeper.journeys.engine import ACTIVE
from shopkeeper.journeys.runtime import JourneyRuntime
from shopkeeper.messaging import internal_events, template_store
from shopkeeper.messaging.channels.registry import build_channels
from shopkeeper.messaging.delivery import Deliverer
from shopkeeper.storage import tables as t
from shopkeeper.storage.db import Database
from tests.harness import NOW, Harness, harness
from tests.integration.channel_servers import SmtpServer, smtp_server
from tests.live import free_port

pytestmark = pytest.mark.slow

HOUR = 3_600_000
NO_CAPS = {
    "cap_per_channel_day": 0,
    "cap_per_channel_week": 0,
    "cap_all_day": 0,
    "cap_all_week": 0,
}


def save_templates(db: Database, keys: list[str], now_ms: int) -> None:
    with db.write() as conn:
        for key in keys:
            parts = {"subject": key, "text": f"{key} for {{{{ profile.email }}}}"}
            template_store.save_template(conn, key, "email", "", parts, now_ms)


def save_journey(db: Database, key: str, steps: list[dict[str, Any]], now_ms: int) -> None:
    definition = {"name": key, "entry": {"event": "Signed Up"}, "steps": steps}
    service.create(db, now_ms, actor="test", key=key, definition=definition, status="active")


def send_step(step: str) -> dict[str, Any]:
    return {"id": step, "type": "send", "channel": "email", "template": step}


def sign_up(h: Harness, n: int) -> None:
    h.batch([
        {"type": "identify", "userId": f"u-{n}",
         "traits": {"email": f"p{n}@example.com", "consent": {"email": True}}},
        {"type": "track", "userId": f"u-{n}", "event": "Signed Up"},
    ])  # fmt: skip


def mail_ids(smtp: SmtpServer) -> dict[str, list[tuple[str, str]]]:
    """recipient -> [(subject, Message-ID)] in arrival order."""
    out: dict[str, list[tuple[str, str]]] = defaultdict(list)
    for mail in list(smtp.recorder.received):
        message = mail.message
        for rcpt in mail.rcpt_tos:
            out[rcpt].append((str(message["Subject"]), str(message["Message-ID"])))
    return out


def journey_rows(db: Database) -> tuple[list[Any], list[Any], list[Any]]:
    with db.read() as conn:
        enrollments = conn.execute(sa.select(t.enrollments)).all()
        steps = conn.execute(sa.select(t.enrollment_steps)).all()
        sent = conn.execute(sa.select(t.messages)).all()
    return enrollments, steps, sent


# -- two workers at once ----------------------------------------------------------------------


def test_two_workers_advance_every_enrollment_once(db_url: str) -> None:
    if db_url.startswith("sqlite"):
        pytest.skip("one worker per SQLite database; several run against PostgreSQL")
    people = 50
    clock = FixedClock(NOW)
    with smtp_server() as smtp, harness(
        db_url, clock=clock, channel_email="smtp", smtp_host=smtp.host, smtp_port=smtp.port,
        quiet_hours_start=0, quiet_hours_end=0, message_batch_size=7, **NO_CAPS,
    ) as h:  # fmt: skip
        db = h.services.db
        save_templates(db, ["first", "second"], NOW)
        wait = {"type": "wait", "duration": "1h"}
        drip = [
            {"id": "w1", **wait},
            send_step("first"),
            {"id": "w2", **wait},
            send_step("second"),
        ]
        save_journey(db, "drip", drip, NOW)
        for n in range(people):
            sign_up(h, n)
        h.drain()

        settings = h.services.settings
        errors: list[BaseException] = []
        work: Counter[str] = Counter()

        def worker(name: str, barrier: threading.Barrier) -> None:
            own = Database(db_url)
            deliverer = Deliverer(own, settings, build_channels(settings), clock)
            runtime = JourneyRuntime(own, settings)
            try:
                barrier.wait()
                while True:
                    now = clock.now_ms()
                    done = runtime.fire_due(now, limit=10) + deliverer.run_once(now)
                    work[name] += done
                    if done == 0:
                        return
            except BaseException as exc:  # surfaced by the test thread below
                errors.append(exc)
            finally:
                for channel in deliverer.channels.values():
                    channel.close()
                own.dispose()

        for _hour in range(2):
            clock.advance(HOUR)
            barrier = threading.Barrier(2)
            threads = [threading.Thread(target=worker, args=(f"w{i}", barrier)) for i in range(2)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(timeout=120)
                assert not thread.is_alive()
            assert errors == []
            h.drain()

        # Both really worked (otherwise this tested one worker).
        assert work["w0"] > 0
        assert work["w1"] > 0
        received = mail_ids(smtp)
        assert len(received) == people
        for rcpt, mails in received.items():
            assert sorted(subject for subject, _ in mails) == ["first", "second"], rcpt
        enrollments, steps, sent = journey_rows(db)
        assert len(enrollments) == people
        assert {e.status for e in enrollments} == {"completed"}
        per_enrollment = Counter(s.enrollment_id for s in steps)
        assert set(per_enrollment.values()) == {4}
        assert len(sent) == 2 * people
        assert [(m.id, m.status, m.reason) for m in sent if m.status != "sent"] == []
        assert {m.attempts for m in sent} == {1}
        assert Counter((m.enrollment_id, m.step) for m in sent).most_common(1)[0][1] == 1


def test_the_first_internal_event_written_by_two_workers_at_once(db_url: str) -> None:
    """Two transactions create the internal source at once, the second one blocked on
    the first's uncommitted row: the second must find the first's source."""
    if db_url.startswith("sqlite"):
        pytest.skip("SQLite writers queue on the database lock: they cannot interleave")
    db = Database(db_url)
    inserted, blocked = threading.Event(), threading.Event()
    ids: dict[str, int] = {}
    errors: list[BaseException] = []

    def first() -> None:
        with db.write() as conn:
            ids["first"] = internal_events.source_id(conn, db, NOW)
            inserted.set()
            blocked.wait(10)

    def second() -> None:
        inserted.wait(10)
        try:
            with db.write() as conn:
                ids["second"] = internal_events.source_id(conn, db, NOW)
        except Exception as exc:  # the assertion below shows it
            errors.append(exc)

    threads = [threading.Thread(target=first), threading.Thread(target=second)]
    try:
        for thread in threads:
            thread.start()
        inserted.wait(10)
        waiting = sa.text(
            "SELECT count(*) FROM pg_stat_activity "
            "WHERE datname = current_database() AND wait_event_type = 'Lock'"
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with db.read() as conn:
                if conn.execute(waiting).scalar_one():
                    break
            time.sleep(0.02)
        blocked.set()
        for thread in threads:
            thread.join(timeout=30)
    finally:
        db.dispose()
    assert [str(e).splitlines()[0] for e in errors] == []
    assert ids["first"] == ids["second"]


# -- a worker killed mid-journey --------------------------------------------------------------


@dataclass
class WorkerProcess:
    """`shopkeeper <command>` on the test's database, killed and started by the test."""

    command: list[str]
    env: dict[str, str]
    log_path: Path
    process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "shopkeeper", *self.command],
                env={**os.environ, **self.env},
                stdout=log,
                stderr=subprocess.STDOUT,
            )

    def kill(self) -> None:
        if self.process is not None:
            self.process.kill()
            self.process.wait()
            self.process = None

    def check_alive(self) -> None:
        assert self.process is not None
        if self.process.poll() is not None:
            raise AssertionError(f"the worker exited: {self.log_path.read_text()[-3000:]}")


@contextmanager
def worker_process(
    command: list[str], env: dict[str, str], tmp_path: Path
) -> Iterator[WorkerProcess]:
    worker = WorkerProcess(command, env, tmp_path / "worker.log")
    worker.start()
    try:
        yield worker
    finally:
        worker.kill()


@dataclass
class Signups:
    """A thread signing people up, one every `interval` seconds."""

    h: Harness
    people: int
    interval: float
    sent: int = 0
    errors: list[BaseException] = field(default_factory=list)

    def run(self) -> None:
        try:
            for n in range(self.people):
                sign_up(self.h, n)
                self.sent += 1
                time.sleep(self.interval)
        except BaseException as exc:  # surfaced by the test thread
            self.errors.append(exc)


def wait_until(check: Any, timeout: float, what: str, worker: WorkerProcess) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        worker.check_alive()
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def pending(db: Database) -> int:
    with db.read() as conn:
        return int(
            conn.execute(
                sa.select(sa.func.count()).where(t.events.c.status == t.PENDING)
            ).scalar_one()
        )


def all_done(db: Database, people: int) -> bool:
    enrollments, _steps, sent = journey_rows(db)
    return (
        len(enrollments) == 2 * people
        and all(e.status != ACTIVE for e in enrollments)
        and len(sent) == 2 * people
        and all(m.status == "sent" for m in sent)
    )


# `shopkeeper worker` is the documented way to run the pipeline without HTTP; `serve`
# runs the same pipeline with the HTTP server.
COMMANDS = {
    "serve": lambda: ["serve", "--port", str(free_port()), "--log-level", "warning"],
    "worker": lambda: ["worker"],
}


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_a_worker_killed_mid_journey_sends_every_email_exactly_once(
    db_url: str, tmp_path: Path, command: str
) -> None:
    people = 30
    with smtp_server() as smtp, harness(db_url, clock=SystemClock()) as h:
        now = SystemClock().now_ms()
        db = h.services.db
        save_templates(db, ["instant", "delayed"], now)
        save_journey(db, "instant", [send_step("instant")], now)
        pause = {"id": "pause", "type": "wait", "duration": "1s"}
        save_journey(db, "delayed", [pause, send_step("delayed")], now)
        env = {
            "SHOPKEEPER_DATABASE_URL": db_url,
            "SHOPKEEPER_CHANNEL_EMAIL": "smtp",
            "SHOPKEEPER_SMTP_HOST": smtp.host,
            "SHOPKEEPER_SMTP_PORT": str(smtp.port),
            "SHOPKEEPER_JOURNEY_TICK_SECONDS": "0.2",
            "SHOPKEEPER_SCHEDULER_TICK_SECONDS": "0.2",
            "SHOPKEEPER_PIPELINE_IDLE_SECONDS": "0.05",
            "SHOPKEEPER_QUIET_HOURS_START": "0",
            "SHOPKEEPER_QUIET_HOURS_END": "0",
            # A message whose sender was killed is retried after this lease.
            "SHOPKEEPER_MESSAGE_LEASE_SECONDS": "3",
            **{f"SHOPKEEPER_{name.upper()}": "0" for name in NO_CAPS},
        }
        expected = 2 * people
        with worker_process(COMMANDS[command](), env, tmp_path) as worker:
            # Running: it applied an event (`worker` has no health check to ask).
            h.send("page", {"userId": "warm-up", "name": "Home"})
            wait_until(lambda: pending(db) == 0, timeout=60, what="the worker", worker=worker)
            signups = Signups(h, people, interval=0.1)
            thread = threading.Thread(target=signups.run, daemon=True)
            thread.start()
            wait_until(
                lambda: len(smtp.recorder.received) >= expected // 4,
                timeout=30,
                what="the first emails",
                worker=worker,
            )
            worker.kill()
            at_kill = len(smtp.recorder.received)
            signed_up_at_kill = signups.sent
            thread.join(timeout=60)
            assert signups.errors == []
            assert 0 < at_kill < expected
            assert signed_up_at_kill < people  # events were still arriving
            worker.start()
            # A message leased by the killed process waits for its lease to run out.
            wait_until(
                lambda: all_done(db, people),
                timeout=60,
                what="every journey to finish",
                worker=worker,
            )

        received = mail_ids(smtp)
        assert sorted(received) == sorted(f"p{n}@example.com" for n in range(people))
        duplicates = 0
        for rcpt, mails in received.items():
            # A kill between the SMTP server's answer and the status update makes the retry
            # send again, with the same Message-ID: one distinct Message-ID per step.
            distinct: dict[str, set[str]] = defaultdict(set)
            for subject, message_id in mails:
                distinct[subject].add(message_id)
            assert sorted(distinct) == ["delayed", "instant"], rcpt
            assert all(len(ids) == 1 for ids in distinct.values()), (rcpt, mails)
            duplicates += len(mails) - 2
        enrollments, steps, sent = journey_rows(db)
        assert Counter(e.status for e in enrollments) == {"completed": expected}
        assert len(steps) == 3 * people  # instant: 1 step; delayed: 2
        assert Counter((m.enrollment_id, m.step) for m in sent).most_common(1)[0][1] == 1
        print(f"kill at {at_kill}/{expected} emails; {duplicates} resent with the same Message-ID")
