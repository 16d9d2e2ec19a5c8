"""The `shopkeeper` command: entry points parse arguments, call a service, print."""

from __future__ import annotations

import logging
import signal
import sys
from typing import Annotated, Any

import typer
from rich.table import Table

from shopkeeper import __version__
from shopkeeper.clikit import (
    DatabaseOption,
    console,
    database_errors,
    fail,
    load_settings,
    open_db,
)
from shopkeeper.clock import SystemClock
from shopkeeper.demo.cli import demo_command
from shopkeeper.imports.cli import import_app
from shopkeeper.journeys.cli import journeys_app
from shopkeeper.privacy.cli import profiles_app
from shopkeeper.segments.cli import scheduler_app, segments_app
from shopkeeper.web.users_cli import users_app

app = typer.Typer(
    help="Shopkeeper: customer data and personalization for online shops.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
db_app = typer.Typer(help="Database schema.", no_args_is_help=True)
sources_app = typer.Typer(help="Event sources and their write keys.", no_args_is_help=True)
keys_app = typer.Typer(help="Admin API keys.", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(sources_app, name="sources")
app.add_typer(keys_app, name="keys")
app.add_typer(import_app, name="import")
app.add_typer(profiles_app, name="profiles")
app.add_typer(users_app, name="users")
app.add_typer(segments_app, name="segments")
app.add_typer(scheduler_app, name="scheduler")
app.add_typer(journeys_app, name="journeys")
app.command("demo")(demo_command)


@app.command()
def version() -> None:
    """Print the version."""
    console.print(__version__)


@app.command()
def serve(
    database_url: DatabaseOption = None,
    host: Annotated[str | None, typer.Option(help="Interface to listen on.")] = None,
    port: Annotated[int | None, typer.Option(help="Port to listen on.")] = None,
    worker: Annotated[
        bool, typer.Option("--worker/--no-worker", help="Run the pipeline in this process.")
    ] = True,
    log_level: Annotated[str, typer.Option(help="debug, info, warning, error")] = "info",
) -> None:
    """Serve the tracking API, the admin API and (unless --no-worker) the pipeline."""
    import uvicorn

    from shopkeeper.bootstrap import build_services, create_app

    settings = load_settings(database_url, host=host, port=port)
    db = open_db(settings)
    services = build_services(settings, db=db, run_worker=worker)
    application = create_app(services)
    console.print(
        f"Shopkeeper {__version__} on http://{settings.host}:{settings.port} "
        f"({db.dialect}{', pipeline in-process' if worker else ', no pipeline worker'})"
    )
    uvicorn.run(
        application,
        host=settings.host,
        port=settings.port,
        log_level=log_level,
        timeout_graceful_shutdown=30,
    )


@app.command("worker")
def worker_command(
    database_url: DatabaseOption = None,
    once: Annotated[bool, typer.Option("--once", help="Apply what is pending, then exit.")] = False,
) -> None:
    """Run the pipeline (without HTTP). Several workers may run against PostgreSQL."""
    from shopkeeper.bootstrap import make_delivery, make_processor, make_scheduler, with_secret
    from shopkeeper.pipeline.worker import PipelineRunner

    settings = load_settings(database_url)
    db = open_db(settings, create_if_empty=False)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    clock = SystemClock()
    settings = with_secret(db, settings)
    try:
        deliverer, delivery, journeys = make_delivery(db, settings, clock, None, not once)
    except ValueError as exc:  # a channel's provider chosen without its settings
        raise fail(str(exc)) from None
    processor = make_processor(db, settings, clock, None, journeys)
    if once:
        done = processor.drain()
        sent = deliverer.drain()
        console.print(f"applied {done} events; handled {sent} messages")
        return
    runner = PipelineRunner(
        processor, settings.pipeline_idle_seconds, after_batch=journeys.after_commit
    )

    def stop(_signum: int, _frame: Any) -> None:
        runner.stop_soon()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    scheduler = (
        make_scheduler(db, settings, clock, None, journeys) if settings.scheduler_enabled else None
    )
    console.print(f"pipeline worker on {db.dialect}; Ctrl-C stops after the current batch")
    if scheduler is not None:
        scheduler.start()
    if delivery is not None:
        delivery.start()
    try:
        runner.run()
    finally:
        if delivery is not None:
            delivery.stop()
        if scheduler is not None:
            scheduler.stop()


@db_app.command("upgrade")
def db_upgrade(database_url: DatabaseOption = None) -> None:
    """Apply pending schema migrations."""
    from shopkeeper.storage import migrate
    from shopkeeper.storage.migrate import open_database

    with database_errors():
        db = open_database(load_settings(database_url))
        before = migrate.current_revision(db)
        migrate.check_known(before)
        migrate.upgrade(db)
        after = migrate.current_revision(db)
    if before == after:
        console.print(f"schema already at {after}")
    else:
        console.print(f"schema upgraded from {before or 'empty'} to {after}")


@db_app.command("current")
def db_current(database_url: DatabaseOption = None) -> None:
    """Print the schema revision of the database and the one this version needs."""
    from shopkeeper.storage import migrate
    from shopkeeper.storage.migrate import open_database

    with database_errors():
        db = open_database(load_settings(database_url))
        current = migrate.current_revision(db)
    console.print(f"database: {current or 'empty'}")
    console.print(f"code:     {migrate.head_revision()}")


@sources_app.command("create")
def sources_create(
    name: Annotated[str, typer.Argument(help="A name people recognise, e.g. 'web shop'.")],
    kind: Annotated[
        str, typer.Option(help="web, app, server, email, pos, crm, catalog, import, other")
    ] = "web",
    database_url: DatabaseOption = None,
) -> None:
    """Create a source; prints its write key alone on the last line."""
    from shopkeeper.ingest.sources import SourceError, create_source

    db = open_db(load_settings(database_url))
    try:
        source = create_source(db, name, kind, SystemClock().now_ms())
    except SourceError as exc:
        raise fail(str(exc)) from None
    console.print(f"source [bold]{source.name}[/bold] ({source.kind}) created; its write key:")
    print(source.write_key)


@sources_app.command("list")
def sources_list(database_url: DatabaseOption = None) -> None:
    """List sources and their write keys."""
    from shopkeeper.ingest.sources import list_sources

    db = open_db(load_settings(database_url))
    table = Table("id", "name", "kind", "write key", "status")
    for source in list_sources(db):
        table.add_row(
            str(source.id),
            source.name,
            source.kind,
            source.write_key,
            "active" if source.active else "revoked",
        )
    console.print(table)


@sources_app.command("revoke")
def sources_revoke(name: str, database_url: DatabaseOption = None) -> None:
    """Revoke a source's write key."""
    from shopkeeper.ingest.sources import SourceError, revoke_source

    db = open_db(load_settings(database_url))
    try:
        revoke_source(db, name, SystemClock().now_ms())
    except SourceError as exc:
        raise fail(str(exc)) from None
    console.print(f"source {name} revoked")


@keys_app.command("create")
def keys_create(
    name: Annotated[str, typer.Option(help="What the key is for.")] = "admin",
    database_url: DatabaseOption = None,
) -> None:
    """Create an admin API key; prints it alone on the last line (shown only once)."""
    from shopkeeper.admin.keys import AdminKeyError, create_admin_key

    db = open_db(load_settings(database_url))
    try:
        key, record = create_admin_key(db, name, SystemClock().now_ms())
    except AdminKeyError as exc:
        raise fail(str(exc)) from None
    console.print(
        f"admin key {record.id} ({record.name}) created; it is shown only now, keep it safe:"
    )
    print(key)


@keys_app.command("list")
def keys_list(database_url: DatabaseOption = None) -> None:
    """List admin keys (their prefixes only)."""
    from shopkeeper.admin.keys import list_admin_keys
    from shopkeeper.timeutil import ms_to_iso

    db = open_db(load_settings(database_url))
    table = Table("id", "name", "prefix", "created", "status")
    for key in list_admin_keys(db):
        table.add_row(
            str(key.id),
            key.name,
            key.key_prefix + "…",
            ms_to_iso(key.created_at),
            "active" if key.revoked_at is None else "revoked",
        )
    console.print(table)


@keys_app.command("revoke")
def keys_revoke(key_id: int, database_url: DatabaseOption = None) -> None:
    """Revoke an admin key by id."""
    from shopkeeper.admin.keys import AdminKeyError, revoke_admin_key

    db = open_db(load_settings(database_url))
    try:
        revoke_admin_key(db, key_id, SystemClock().now_ms())
    except AdminKeyError as exc:
        raise fail(str(exc)) from None
    console.print(f"admin key {key_id} revoked")


def main() -> None:
    try:
        app()
    except KeyboardInterrupt:
        sys.exit(130)
