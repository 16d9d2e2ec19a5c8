"""Running the processor: in a thread of `shopkeeper serve`, or as `shopkeeper worker`."""

from __future__ import annotations

from collections.abc import Callable

from shopkeeper.pipeline.processor import Processor
from shopkeeper.workloop import WorkLoop


class PipelineRunner(WorkLoop):
    """Applies batches while there is work; sleeps until woken (a commit in this process)
    or until `idle_seconds` pass (events written by other processes)."""

    def __init__(
        self,
        processor: Processor,
        idle_seconds: float,
        after_batch: Callable[[int], None] | None = None,
    ) -> None:
        """`after_batch` runs after each committed batch (to wake what its hooks fed)."""
        super().__init__("pipeline", processor.run_once, idle_seconds, after_batch)
        self.processor = processor
