"""The background delivery loop, on SQLite and PostgreSQL: a step drains (batch after
batch, the next claimed while the last is sent) for a bounded time or until asked to
stop; the loop sleeps until woken, and stop() ends it after the batch in hand, with
every message it claimed sent and recorded."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from shopkeeper.messaging.delivery import DeliveryRunner
from tests.harness import Harness, harness
from tests.integration.test_delivery_batches import (
    NO_RULES,
    fates,
    person,
    queue,
    save_template,
    smtp_harness,
)


def queued_people(h: Harness, count: int, prefix: str) -> list[int]:
    save_template(h, "hello", {"subject": "Hello", "text": "Hi"})
    people = [person(h, f"{prefix}{n}") for n in range(count)]
    return [queue(h, f"{prefix}:{n}", pid) for n, pid in enumerate(people)]


def wait_for(condition: Callable[[], bool], seconds: float = 30.0) -> None:
    """Polls until `condition()` holds (a generous bound: this asserts no speed)."""
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def test_a_drain_stops_claiming_when_its_time_is_up(db_url: str) -> None:
    with harness(db_url, message_batch_size=1, **NO_RULES) as h:
        ids = queued_people(h, 3, "t")
        deliverer = h.services.deliverer
        assert deliverer is not None
        # No time at all: the first batch is claimed, sent and recorded, then it stops.
        assert deliverer.drain(max_seconds=0) == 1
        assert [status for status, _ in fates(h, ids)] == ["sent", "queued", "queued"]
        assert deliverer.drain(max_seconds=60) == 2
        assert [status for status, _ in fates(h, ids)] == ["sent"] * 3


def test_a_drain_asked_to_stop_finishes_the_batch_in_hand(db_url: str) -> None:
    with harness(db_url, message_batch_size=2, **NO_RULES) as h:
        ids = queued_people(h, 5, "s")
        deliverer = h.services.deliverer
        assert deliverer is not None
        stop = threading.Event()
        stop.set()
        assert deliverer.drain(stop=stop) == 2
        assert [status for status, _ in fates(h, ids)].count("sent") == 2
        assert deliverer.drain(stop=threading.Event()) == 3
        assert [status for status, _ in fates(h, ids)] == ["sent"] * 5


def test_one_step_of_the_loop_delivers_batch_after_batch(db_url: str) -> None:
    with harness(db_url, message_batch_size=2, **NO_RULES) as h:
        ids = queued_people(h, 5, "b")
        deliverer = h.services.deliverer
        assert deliverer is not None
        runner = DeliveryRunner(deliverer, idle_seconds=60.0, run_seconds=60.0)
        # One step (what the loop runs between its looks at stop and wake): every batch.
        assert runner.step() == 5
        assert runner.step() == 0
        assert [status for status, _ in fates(h, ids)] == ["sent"] * 5


def test_the_loop_delivers_when_woken_and_stops_when_asked(db_url: str) -> None:
    with smtp_harness(db_url, message_batch_size=2) as (smtp, h):
        deliverer = h.services.deliverer
        assert deliverer is not None
        # Sleeps a minute between looks unless woken: the wake is what delivers here.
        runner = DeliveryRunner(deliverer, idle_seconds=60.0, run_seconds=0.0)
        runner.start()
        try:
            ids = queued_people(h, 5, "w")
            runner.wake()
            wait_for(lambda: [status for status, _ in fates(h, ids)] == ["sent"] * 5)
        finally:
            runner.stop()
        assert sorted(m.rcpt_tos[0] for m in smtp.recorder.received) == [
            f"w{n}@example.com" for n in range(5)
        ]


def test_stop_ends_a_step_after_the_batch_in_hand(db_url: str) -> None:
    with harness(db_url, message_batch_size=1, **NO_RULES) as h:
        ids = queued_people(h, 4, "x")
        deliverer = h.services.deliverer
        assert deliverer is not None
        runner = DeliveryRunner(deliverer, idle_seconds=60.0, run_seconds=60.0)
        runner.stop_soon()  # asked to stop before the step: it claims one batch at most
        assert runner.step() == 1
        assert [status for status, _ in fates(h, ids)] == ["sent"] + ["queued"] * 3
