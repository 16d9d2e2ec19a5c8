"""Prometheus metrics. One registry per application, so tests and several apps in one
process do not collide."""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.events_received = Counter(
            "shopkeeper_events_received",
            "Messages accepted into the event log (duplicates excluded).",
            ["source"],
            registry=self.registry,
        )
        self.events_duplicate = Counter(
            "shopkeeper_events_duplicate",
            "Messages acknowledged but not stored again: their messageId was already known.",
            registry=self.registry,
        )
        self.events_rejected = Counter(
            "shopkeeper_events_rejected",
            "Messages or requests rejected at ingest, by reason.",
            ["reason"],
            registry=self.registry,
        )
        self.events_processed = Counter(
            "shopkeeper_events_processed",
            "Events applied to profiles by this process's pipeline.",
            registry=self.registry,
        )
        self.events_parked = Counter(
            "shopkeeper_events_parked",
            "Events this process's pipeline could not apply and parked.",
            registry=self.registry,
        )
        self.events_suppressed = Counter(
            "shopkeeper_events_suppressed",
            "Events this process's pipeline deleted: they carried an erased person's identifier.",
            registry=self.registry,
        )
        self.merges = Counter(
            "shopkeeper_profile_merges",
            "Profile merges done or refused by this process's pipeline.",
            ["status"],
            registry=self.registry,
        )
        self.batch_seconds = Gauge(
            "shopkeeper_pipeline_last_batch_seconds",
            "Wall time of the pipeline's last batch in this process.",
            registry=self.registry,
        )
        self.segment_changes = Counter(
            "shopkeeper_segment_changes",
            "Real-time segment entries and exits written by this process's pipeline.",
            ["change"],
            registry=self.registry,
        )
        self.segment_seconds = Counter(
            "shopkeeper_segment_membership_seconds",
            "Time this process's pipeline spent deciding real-time segment membership.",
            registry=self.registry,
        )
        self.scheduled_runs = Counter(
            "shopkeeper_scheduled_task_runs",
            "Periodic tasks run by this process, by task and outcome (ok, failed).",
            ["task", "outcome"],
            registry=self.registry,
        )
        self.messages = Counter(
            "shopkeeper_messages",
            "Messages this process finished handling, by channel and status (sent, "
            "delivered, skipped, failed, queued again for a retry or after quiet hours).",
            ["channel", "status"],
            registry=self.registry,
        )
        self.journey_timers = Counter(
            "shopkeeper_journey_timers_fired",
            "Journey enrollments this process woke because their timer was due.",
            registry=self.registry,
        )

    def add_pipeline_collector(self, status: Callable[[], dict[str, float]]) -> None:
        """Pending events and lag are read from the database at scrape time: they are
        facts of the whole installation, not of this process."""
        self.registry.register(_PipelineCollector(status))

    def render(self) -> bytes:
        return generate_latest(self.registry)


class _PipelineCollector(Collector):
    def __init__(self, status: Callable[[], dict[str, float]]) -> None:
        self.status = status

    def collect(self):  # type: ignore[no-untyped-def]
        values = self.status()
        pending = GaugeMetricFamily(
            "shopkeeper_pipeline_pending", "Events in the log waiting to be applied."
        )
        pending.add_metric([], values.get("pending", 0))
        yield pending
        parked = GaugeMetricFamily("shopkeeper_pipeline_parked", "Events parked with an error.")
        parked.add_metric([], values.get("parked", 0))
        yield parked
        lag = GaugeMetricFamily(
            "shopkeeper_pipeline_lag_seconds",
            "Age of the oldest event waiting to be applied (0 when none).",
        )
        lag.add_metric([], values.get("lag_seconds", 0.0))
        yield lag
