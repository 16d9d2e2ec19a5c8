"""A background loop that does work while there is some, then sleeps until woken (work
was made in this process) or `idle_seconds` pass (work made by other processes). The
pipeline and message delivery both run on it."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

log = logging.getLogger(__name__)


class WorkLoop:
    def __init__(
        self,
        name: str,
        step: Callable[[], int],
        idle_seconds: float,
        after_step: Callable[[int], None] | None = None,
    ) -> None:
        """`step` does one unit of work (one transaction) and returns how much it did
        (0: nothing to do); `after_step` runs after each successful one."""
        self.name = name
        self.step = step
        self.after_step = after_step
        self.idle_seconds = idle_seconds
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def wake(self, _count: int = 0) -> None:
        self._wake.set()

    def run(self) -> None:
        """Loop until stop(); a step in progress is always finished. Failures back off
        (0.5 s doubling to 30 s) so a broken database is not hammered."""
        failures = 0
        while not self._stop.is_set():
            self._wake.clear()
            try:
                done = self.step()
                failures = 0
                if self.after_step is not None:
                    self.after_step(done)
            except Exception:
                failures += 1
                log.exception("%s failed", self.name)
                self._stop.wait(min(30.0, 0.5 * 2 ** min(failures, 6)))
                continue
            if done == 0:
                self._wake.wait(self.idle_seconds)

    def start(self) -> None:
        if self._thread is None:
            self._stop.clear()
            self._thread = threading.Thread(target=self.run, name=self.name, daemon=True)
            self._thread.start()

    def stop_soon(self) -> None:
        """Ask run() to return after the current step (safe from a signal handler)."""
        self._stop.set()
        self._wake.set()

    def stop(self) -> None:
        self.stop_soon()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
