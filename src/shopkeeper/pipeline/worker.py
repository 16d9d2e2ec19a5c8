"""Running the processor: in a thread of `shopkeeper serve`, or as `shopkeeper worker`."""

from __future__ import annotations

import logging
import threading

from shopkeeper.pipeline.processor import Processor

log = logging.getLogger(__name__)


class PipelineRunner:
    """Applies batches while there is work; sleeps until woken (a commit in this process)
    or until `idle_seconds` pass (events written by other processes)."""

    def __init__(self, processor: Processor, idle_seconds: float) -> None:
        self.processor = processor
        self.idle_seconds = idle_seconds
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def wake(self, _count: int = 0) -> None:
        self._wake.set()

    def run(self) -> None:
        """Loop until stop(); a batch in progress is always finished (or rolled back)."""
        failures = 0
        while not self._stop.is_set():
            self._wake.clear()
            try:
                done = self.processor.run_once()
                failures = 0
            except Exception:
                failures += 1
                log.exception("pipeline batch failed")
                self._stop.wait(min(30.0, 0.5 * 2 ** min(failures, 6)))
                continue
            if done == 0:
                self._wake.wait(self.idle_seconds)

    def start(self) -> None:
        if self._thread is None:
            self._stop.clear()
            self._thread = threading.Thread(target=self.run, name="pipeline", daemon=True)
            self._thread.start()

    def stop_soon(self) -> None:
        """Ask run() to return after the current batch (safe from a signal handler)."""
        self._stop.set()
        self._wake.set()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
