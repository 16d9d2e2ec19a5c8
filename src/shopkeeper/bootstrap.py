"""The composition root: the one place that builds the parts and wires them together."""

from __future__ import annotations

import gc
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse

from shopkeeper import __version__
from shopkeeper.admin import api as audit_api
from shopkeeper.catalog import api as catalog_api
from shopkeeper.catalog.stats import ProductStatsHook
from shopkeeper.clock import Clock, SystemClock
from shopkeeper.config import Settings
from shopkeeper.errors import install_error_handlers
from shopkeeper.identity.identifiers import JunkFilter
from shopkeeper.imports import api as imports_api
from shopkeeper.imports import service as imports_service
from shopkeeper.ingest import api as ingest_api
from shopkeeper.ingest import log as event_log
from shopkeeper.ingest import sources_api
from shopkeeper.ingest.sources import WriteKeyCache
from shopkeeper.ingest.spec import Limits, MessageValidator
from shopkeeper.ingest.writer import EventWriter
from shopkeeper.journeys import api as journeys_api
from shopkeeper.journeys.runtime import JourneyRuntime
from shopkeeper.messaging import api as messaging_api
from shopkeeper.messaging import coupons_api, rules_api, tracking_api
from shopkeeper.messaging.channels.registry import build_channels
from shopkeeper.messaging.coupon_redemption import CouponRedemptionHook
from shopkeeper.messaging.delivery import Deliverer, DeliveryRunner
from shopkeeper.observability.metrics import Metrics
from shopkeeper.pipeline import api as pipeline_api
from shopkeeper.pipeline.processor import BatchHook, Processor
from shopkeeper.pipeline.worker import PipelineRunner
from shopkeeper.privacy import api as privacy_api
from shopkeeper.profiles import api as profiles_api
from shopkeeper.scheduler import Scheduler, Task
from shopkeeper.segments import api as segments_api
from shopkeeper.segments import indexes as segment_indexes
from shopkeeper.segments.audiences import api as audiences_api
from shopkeeper.segments.audiences import export_api as audience_export_api
from shopkeeper.segments.membership import MembershipHook
from shopkeeper.segments.scores import api as scores_api
from shopkeeper.segments.scores.lead_job import LeadScoreHook
from shopkeeper.storage.db import Database
from shopkeeper.storage.migrate import SchemaOutOfDate, ensure_schema, open_database
from shopkeeper.web.app import install as install_ui

__all__ = ["SchemaOutOfDate", "Services", "build_services", "create_app", "ensure_schema"]

log = logging.getLogger(__name__)


@dataclass
class Services:
    settings: Settings
    db: Database
    clock: Clock
    metrics: Metrics
    writer: EventWriter
    write_keys: WriteKeyCache
    validator: MessageValidator
    runner: PipelineRunner | None
    scheduler: Scheduler | None = None
    journeys: JourneyRuntime | None = None
    deliverer: Deliverer | None = None
    delivery: DeliveryRunner | None = None


def make_processor(
    db: Database,
    settings: Settings,
    clock: Clock,
    metrics: Metrics | None,
    journeys: JourneyRuntime | None = None,
) -> Processor:
    hooks: list[BatchHook] = [
        ProductStatsHook.from_settings(settings),
        LeadScoreHook.from_settings(settings),
        # After the scores, so that real-time segments on lead_score see this batch's.
        MembershipHook(metrics=metrics),
        CouponRedemptionHook(),
        # Last: journeys see the profile, its scores and segments as of this batch.
        journeys or JourneyRuntime(db, settings),
    ]
    return Processor(db, settings, clock, metrics, hooks=hooks)


def scheduled_tasks(
    settings: Settings, clock: Clock, journeys: JourneyRuntime | None = None
) -> list[Task]:
    """The periodic work, run by whichever process (serve or worker) claims it."""
    import httpx

    from shopkeeper.journeys import entries as journey_entries
    from shopkeeper.segments.audiences.sync import run_due_syncs
    from shopkeeper.segments.jobs import record_sizes, refresh_due_segments
    from shopkeeper.segments.scores.lead_job import refresh_lead_scores_task
    from shopkeeper.segments.scores.rfm_job import recompute_rfm_task

    def audience_syncs(db: Database, settings: Settings, now_ms: int) -> object:
        with httpx.Client(timeout=settings.audience_sync_timeout_seconds) as client:
            return run_due_syncs(db, settings, now_ms, client, clock=clock.now_ms)

    def runtime(db: Database, settings: Settings) -> JourneyRuntime:
        # This process's runtime wakes its delivery thread when a timer queues a message.
        return journeys if journeys is not None else JourneyRuntime(db, settings)

    def journey_timers(db: Database, settings: Settings, now_ms: int) -> object:
        return runtime(db, settings).fire_due(now_ms)

    def journey_segments(db: Database, settings: Settings, now_ms: int) -> object:
        return runtime(db, settings).follow_segments(now_ms)

    # Entering people through this process's runtime wakes its delivery loop as each
    # chunk's messages are committed (a broadcast starts sending at once).
    def broadcasts(db: Database, settings: Settings, now_ms: int) -> object:
        return journey_entries.run_broadcasts(db, settings, now_ms, runtime(db, settings))

    def dates(db: Database, settings: Settings, now_ms: int) -> object:
        return journey_entries.run_dates(db, settings, now_ms, runtime(db, settings))

    def catalog_events(db: Database, settings: Settings, now_ms: int) -> object:
        return journey_entries.run_catalog(db, settings, now_ms, runtime=runtime(db, settings))

    minute = 60_000
    tick = max(1_000, int(settings.journey_tick_seconds * 1000))
    return [
        # Real-time segments: at most every segment_time_refresh_minutes (each segment
        # decides whether it is due); scheduled ones at their own interval.
        Task("segments.refresh", minute, refresh_due_segments),
        Task("segments.sizes", 10 * minute, record_sizes),
        # Building an index over a large population may take minutes.
        Task("segments.indexes", minute, segment_indexes.sync, lease_ms=120 * minute),
        Task("scores.rfm", settings.rfm_interval_minutes * minute, recompute_rfm_task),
        Task(
            "scores.lead_decay",
            settings.lead_score_refresh_minutes * minute,
            refresh_lead_scores_task,
        ),
        Task("audiences.sync", minute, audience_syncs),
        Task("journeys.timers", tick, journey_timers),
        Task("journeys.segments", tick, journey_segments),
        # A large broadcast may take longer than the default lease.
        Task("journeys.broadcasts", minute, broadcasts, lease_ms=120 * minute),
        Task("journeys.dates", 5 * minute, dates),
        Task("journeys.catalog", minute, catalog_events),
    ]


def make_scheduler(
    db: Database,
    settings: Settings,
    clock: Clock,
    metrics: Metrics | None = None,
    journeys: JourneyRuntime | None = None,
) -> Scheduler:
    tasks = scheduled_tasks(settings, clock, journeys)
    return Scheduler(db, settings, clock, tasks, metrics=metrics)


def installation_secret(db: Database) -> str:
    """The key that signs message links when none is configured: made once, kept in the
    database (every process of the installation reads the same one)."""
    import secrets

    import sqlalchemy as sa

    from shopkeeper.storage import tables as t

    with db.write() as conn:
        conn.execute(
            db.insert_ignore(t.meta).values(key="secret_key", value=secrets.token_urlsafe(32))
        )
        return str(
            conn.execute(sa.select(t.meta.c.value).where(t.meta.c.key == "secret_key")).scalar_one()
        )


def with_secret(db: Database, settings: Settings) -> Settings:
    if settings.secret_key is not None:
        return settings
    return settings.model_copy(update={"secret_key": installation_secret(db)})


def make_delivery(
    db: Database, settings: Settings, clock: Clock, metrics: Metrics | None, run: bool
) -> tuple[Deliverer, DeliveryRunner | None, JourneyRuntime]:
    """Message delivery (with its background loop when `run`), and the journey runtime
    that wakes it when a journey queues a message."""
    deliverer = Deliverer(db, settings, build_channels(settings), clock, metrics)
    delivery = DeliveryRunner(deliverer, settings.journey_tick_seconds) if run else None
    journeys = JourneyRuntime(db, settings, wake_delivery=delivery.wake if delivery else None)
    return deliverer, delivery, journeys


def build_services(
    settings: Settings,
    *,
    clock: Clock | None = None,
    db: Database | None = None,
    run_worker: bool = True,
) -> Services:
    clock = clock or SystemClock()
    db = db or open_database(settings)
    settings = with_secret(db, settings)
    metrics = Metrics()
    deliverer, delivery, journeys = make_delivery(db, settings, clock, metrics, run_worker)
    runner = None
    if run_worker:
        runner = PipelineRunner(
            make_processor(db, settings, clock, metrics, journeys),
            settings.pipeline_idle_seconds,
            after_batch=journeys.after_commit,
        )
    writer = EventWriter(db, on_commit=runner.wake if runner else None)
    services = Services(
        settings=settings,
        db=db,
        clock=clock,
        metrics=metrics,
        writer=writer,
        write_keys=WriteKeyCache(db, settings.write_key_cache_seconds),
        validator=MessageValidator(
            JunkFilter(settings.junk_identifiers),
            Limits(
                max_message_bytes=settings.max_message_bytes,
                max_request_bytes=settings.max_request_bytes,
                max_batch_messages=settings.max_batch_messages,
            ),
        ),
        runner=runner,
        scheduler=make_scheduler(db, settings, clock, metrics, journeys)
        if run_worker and settings.scheduler_enabled
        else None,
        journeys=journeys,
        deliverer=deliverer,
        delivery=delivery,
    )

    def pipeline_status() -> dict[str, float]:
        with db.read() as conn:
            return event_log.status_counts(conn, clock.now_ms())

    metrics.add_pipeline_collector(pipeline_status)
    return services


def create_app(services: Services) -> FastAPI:
    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        services.writer.start()
        if services.runner is not None:
            services.runner.start()
        if services.scheduler is not None:
            services.scheduler.start()
        if services.delivery is not None:
            services.delivery.start()
        imports_service.allow_background_imports()
        # The framework's long-lived objects (about 120k) would otherwise be scanned by
        # every full collection, in 40-70 ms pauses that set the ingest p99.
        gc.collect()
        gc.freeze()
        try:
            yield
        finally:
            # In-flight requests are answered before this runs. Background imports stop
            # at their next chunk and record that they were interrupted; the pipeline
            # stops after its current batch; the writer writes whatever it still holds.
            imports_service.stop_background_imports()
            if services.scheduler is not None:
                services.scheduler.stop()
            if services.delivery is not None:
                services.delivery.stop()
            if services.runner is not None:
                services.runner.stop()
            services.writer.stop()

    app = FastAPI(
        title="Shopkeeper",
        version=__version__,
        summary="Customer data and personalization for online shops.",
        description=(
            "`/v1/*` is the Segment-compatible tracking API (write keys). `/api/*` is the "
            "admin API (admin keys as Bearer tokens)."
        ),
        lifespan=lifespan,
    )
    app.state.services = services
    install_error_handlers(app)
    app.include_router(ingest_api.router)
    app.include_router(profiles_api.router)
    app.include_router(privacy_api.router)
    app.include_router(pipeline_api.router)
    app.include_router(sources_api.router)
    app.include_router(imports_api.router)
    app.include_router(catalog_api.router)
    app.include_router(audit_api.router)
    app.include_router(scores_api.router)
    app.include_router(segments_api.router)
    app.include_router(audiences_api.router)
    app.include_router(audience_export_api.router)
    app.include_router(journeys_api.router)
    app.include_router(coupons_api.router)
    app.include_router(messaging_api.router)
    app.include_router(rules_api.router)
    app.include_router(tracking_api.router)
    install_ui(app)

    @app.get("/healthz", tags=["Operations"], summary="Liveness and database reachability")
    def healthz(request: Request) -> JSONResponse:
        try:
            with services.db.read() as conn:
                counts = event_log.status_counts(conn, services.clock.now_ms())
        except Exception as exc:
            return JSONResponse(
                {"status": "unavailable", "database": services.db.dialect, "error": str(exc)},
                status_code=503,
            )
        return JSONResponse(
            {
                "status": "ok",
                "version": __version__,
                "database": services.db.dialect,
                "pipeline": {"pending": counts["pending"], "parked": counts["parked"]},
            }
        )

    @app.get("/metrics", tags=["Operations"], summary="Prometheus metrics")
    def metrics() -> Response:
        return Response(
            services.metrics.render(), media_type="text/plain; version=0.0.4; charset=utf-8"
        )

    app.add_middleware(ingest_api.V1Cors)
    return app
