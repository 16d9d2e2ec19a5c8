"""The `shopkeeper` command: entry points parse arguments, call a service, print."""

from __future__ import annotations

import logging
import signal
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated, Any

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from shopkeeper import __version__
from shopkeeper.clock import SystemClock
from shopkeeper.config import Settings

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

console = Console()
err = Console(stderr=True)

DatabaseOption = Annotated[
    str | None,
    typer.Option(
        "--database-url",
        help="Database URL (default: SHOPKEEPER_DATABASE_URL, else sqlite:///shopkeeper.db).",
        show_default=False,
    ),
]


def _settings(database_url: str | None = None, **overrides: Any) -> Settings:
    values = {k: v for k, v in overrides.items() if v is not None}
    if database_url:
        values["database_url"] = database_url
    try:
        return Settings(**values)
    except ValidationError as exc:
        problems = "; ".join(
            f"SHOPKEEPER_{'_'.join(map(str, e['loc'])).upper()}: {e['msg']}" for e in exc.errors()
        )
        raise _fail(f"bad setting: {problems}") from None


def _fail(message: str) -> typer.Exit:
    err.print(f"[red]error:[/red] {escape(message)}", soft_wrap=True, highlight=False)
    return typer.Exit(1)


@contextmanager
def _database_errors() -> Iterator[None]:
    """What an operator can get wrong about the database (a bad URL, a server that does
    not answer, a schema this version does not know) as one line, not a traceback."""
    from alembic.util import CommandError
    from sqlalchemy.exc import OperationalError

    from shopkeeper.storage.migrate import SchemaOutOfDate

    try:
        yield
    except (SchemaOutOfDate, ValueError, CommandError) as exc:
        raise _fail(str(exc)) from None
    except OperationalError as exc:
        raise _fail(f"cannot use the database: {exc.orig}") from None


def _database(settings: Settings, *, create_if_empty: bool = True) -> Any:
    from shopkeeper.storage.migrate import ensure_schema, open_database

    with _database_errors():
        db = open_database(settings)
        ensure_schema(db, create_if_empty=create_if_empty)
    return db


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

    settings = _settings(database_url, host=host, port=port)
    db = _database(settings)
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
    from shopkeeper.bootstrap import make_processor
    from shopkeeper.pipeline.worker import PipelineRunner

    settings = _settings(database_url)
    db = _database(settings, create_if_empty=False)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    processor = make_processor(db, settings, SystemClock(), None)
    if once:
        done = processor.drain()
        console.print(f"applied {done} events")
        return
    runner = PipelineRunner(processor, settings.pipeline_idle_seconds)

    def stop(_signum: int, _frame: Any) -> None:
        runner.stop_soon()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    console.print(f"pipeline worker on {db.dialect}; Ctrl-C stops after the current batch")
    runner.run()


@app.command()
def demo(
    database: Annotated[
        str, typer.Option(help="SQLite file for the demo store (recreated each run).")
    ] = "shopkeeper-demo.db",
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8000,
    serve_after: Annotated[
        bool, typer.Option("--serve/--no-serve", help="Serve the demo store when it is ready.")
    ] = True,
) -> None:
    """A fresh demo store on the embedded database, served on localhost."""
    from pathlib import Path

    from shopkeeper.admin.keys import create_admin_key
    from shopkeeper.ingest.sources import create_source

    path = Path(database)
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    url = f"sqlite:///{path}"
    settings = _settings(url, host=host, port=port)
    db = _database(settings)
    now = SystemClock().now_ms()
    source = create_source(db, "demo web shop", "web", now)
    key, _ = create_admin_key(db, "demo", now)
    console.print(f"demo store in {path}")
    console.print(f"  write key (tracking API, /v1/*): {source.write_key}")
    console.print(f"  admin key (admin API, /api/*):   {key}")
    console.print(f"  API documentation:               http://{host}:{port}/docs")
    db.dispose()
    if serve_after:
        serve(database_url=url, host=host, port=port)


@db_app.command("upgrade")
def db_upgrade(database_url: DatabaseOption = None) -> None:
    """Apply pending schema migrations."""
    from shopkeeper.storage import migrate
    from shopkeeper.storage.migrate import open_database

    with _database_errors():
        db = open_database(_settings(database_url))
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

    with _database_errors():
        db = open_database(_settings(database_url))
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

    db = _database(_settings(database_url))
    try:
        source = create_source(db, name, kind, SystemClock().now_ms())
    except SourceError as exc:
        raise _fail(str(exc)) from None
    console.print(f"source [bold]{source.name}[/bold] ({source.kind}) created; its write key:")
    print(source.write_key)


@sources_app.command("list")
def sources_list(database_url: DatabaseOption = None) -> None:
    """List sources and their write keys."""
    from shopkeeper.ingest.sources import list_sources

    db = _database(_settings(database_url))
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

    db = _database(_settings(database_url))
    try:
        revoke_source(db, name, SystemClock().now_ms())
    except SourceError as exc:
        raise _fail(str(exc)) from None
    console.print(f"source {name} revoked")


@keys_app.command("create")
def keys_create(
    name: Annotated[str, typer.Option(help="What the key is for.")] = "admin",
    database_url: DatabaseOption = None,
) -> None:
    """Create an admin API key; prints it alone on the last line (shown only once)."""
    from shopkeeper.admin.keys import AdminKeyError, create_admin_key

    db = _database(_settings(database_url))
    try:
        key, record = create_admin_key(db, name, SystemClock().now_ms())
    except AdminKeyError as exc:
        raise _fail(str(exc)) from None
    console.print(
        f"admin key {record.id} ({record.name}) created; it is shown only now, keep it safe:"
    )
    print(key)


@keys_app.command("list")
def keys_list(database_url: DatabaseOption = None) -> None:
    """List admin keys (their prefixes only)."""
    from shopkeeper.admin.keys import list_admin_keys
    from shopkeeper.timeutil import ms_to_iso

    db = _database(_settings(database_url))
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

    db = _database(_settings(database_url))
    try:
        revoke_admin_key(db, key_id, SystemClock().now_ms())
    except AdminKeyError as exc:
        raise _fail(str(exc)) from None
    console.print(f"admin key {key_id} revoked")


def main() -> None:
    try:
        app()
    except KeyboardInterrupt:
        sys.exit(130)
