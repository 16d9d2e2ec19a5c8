"""Running the processor: in a thread of `shopkeeper serve`, or as `shopkeeper worker`."""

from __future__ import annotations

from shopkeeper.pipeline.processor import Processor
from shopkeeper.workloop import WorkLoop


class PipelineRunner(WorkLoop):
    """Applies batches while there is work; sleeps until woken (a commit in this process)
    or until `idle_seconds` pass (events written by other processes)."""

    def __init__(self, processor: Processor, idle_seconds: float) -> None:
        super().__init__("pipeline", processor.run_once, idle_seconds)
        self.processor = processor
