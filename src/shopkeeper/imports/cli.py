"""`shopkeeper import customers|orders|products FILE`: a progress bar on the bytes read,
then a summary and the first rejected lines as FILE:LINE: reason.

Exit code 0 once the file was read, even with rejected rows (they are reported); 1 with
one line on stderr when the file or an option is unusable. Customers and orders land in
the event log: a running `shopkeeper serve` or `shopkeeper worker` applies them, or
`--apply` does it here before exiting (for a shop without a server running).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer

from shopkeeper import clikit as cli
from shopkeeper.clikit import DatabaseOption
from shopkeeper.imports.model import ImportProgress, ImportSummary

import_app = typer.Typer(
    help="Load CRM customers, POS orders or products from CSV or JSON Lines files.",
    no_args_is_help=True,
)

# Rejected lines printed after the summary; the import keeps the first 100.
SHOWN_ERRORS = 20

FileArgument = Annotated[
    Path, typer.Argument(help="A .csv, .tsv, .jsonl or .ndjson file (optionally .gz).")
]
FormatOption = Annotated[
    str | None, typer.Option("--format", help="csv or jsonl (default: from the file name).")
]
EncodingOption = Annotated[
    str | None,
    typer.Option(
        "--encoding",
        help="The file's encoding when it has no byte order mark (default utf-8), e.g. cp1252.",
    ),
]
DelimiterOption = Annotated[
    str | None,
    typer.Option("--delimiter", help="CSV field delimiter (default: guessed from the header)."),
]
MapOption = Annotated[
    list[str] | None,
    typer.Option(
        "--map",
        help="target=column: read a field from another column (repeatable); target= turns "
        "a field off; ignore=column leaves a column out. See docs/imports.md.",
    ),
]
ApplyOption = Annotated[
    bool,
    typer.Option(
        "--apply",
        help="Apply the imported events to profiles before exiting (when no server or "
        "worker is running).",
    ),
]


def _import(
    kind: str,
    file: Path,
    format: str | None,
    encoding: str | None,
    delimiter: str | None,
    mapping: list[str] | None,
    database_url: str | None,
    apply: bool,
) -> None:
    from shopkeeper.admin.audit import CLI
    from shopkeeper.bootstrap import build_services
    from shopkeeper.imports.mapping import parse_map_options
    from shopkeeper.imports.model import ImportFailure, ImportOptions
    from shopkeeper.imports.service import check_options, run_import

    shown = str(file)
    try:
        options = ImportOptions(
            format=format,
            encoding=encoding,
            delimiter=delimiter,
            mapping=parse_map_options(mapping or []),
        )
        check_options(kind, file.name, options)
        if not file.is_file():
            raise ImportFailure(f"{shown}: no such file")
    except ImportFailure as exc:
        raise cli.fail(str(exc)) from None

    settings = cli.load_settings(database_url)
    db = cli.open_db(settings)
    services = build_services(settings, db=db, run_worker=False)
    try:
        with _progress_bar(file.name) as show, cli.database_errors():
            summary = run_import(services, kind, file, file.name, options, CLI, show)
    except ImportFailure as exc:
        raise cli.fail(str(exc)) from None
    finally:
        services.db.dispose()
    if summary.status == "done" or summary.rows_read:
        _print_summary(shown, summary)
    if summary.status != "done":
        raise cli.fail(summary.message or "the import failed")
    if kind == "products":
        return
    if apply:
        _apply(database_url)
    else:
        cli.console.print(
            "the events wait in the pipeline: a running `shopkeeper serve` or `shopkeeper "
            "worker` applies them (or import with --apply)",
            soft_wrap=True,
            highlight=False,
            markup=False,
        )


@contextmanager
def _progress_bar(name: str) -> Iterator[Callable[[ImportProgress], None] | None]:
    """A bar on the bytes read, on a terminal only (a script's log gets the summary)."""
    from rich.markup import escape
    from rich.progress import (
        BarColumn,
        DownloadColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
        TransferSpeedColumn,
    )

    if not cli.err.is_terminal:
        yield None
        return
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=cli.err, transient=True) as bar:
        task = bar.add_task(f"importing {escape(name)}", total=None)

        def show(step: ImportProgress) -> None:
            bar.update(task, completed=step.bytes_read, total=step.bytes_total)

        yield show


def _print_summary(shown: str, summary: ImportSummary) -> None:

    def out(text: str) -> None:
        cli.console.print(text, soft_wrap=True, highlight=False, markup=False)

    out(
        f"{shown}: {summary.rows_read:,} rows read; {summary.imported:,} imported, "
        f"{summary.duplicates:,} duplicates, {summary.rejected:,} rejected "
        f"(import {summary.import_id})"
    )
    for error in summary.errors[:SHOWN_ERRORS]:
        out(f"{shown}:{error['line']}: {error['reason']}")
    more = summary.rejected - min(len(summary.errors), SHOWN_ERRORS)
    if more > 0:
        out(
            f"... and {more:,} more rejected rows (the first {len(summary.errors)} are in "
            f"GET /api/imports/{summary.import_id})"
        )


def _apply(database_url: str | None) -> None:
    from rich.console import Console

    from shopkeeper.bootstrap import make_processor
    from shopkeeper.clock import SystemClock

    settings = cli.load_settings(database_url)
    db = cli.open_db(settings)
    processor = make_processor(db, settings, SystemClock(), None)
    status: Console = cli.err
    try:
        with status.status("applying the events to profiles"):
            applied = processor.drain()
    finally:
        db.dispose()
    cli.console.print(f"applied {applied:,} events to profiles", highlight=False)


@import_app.command("customers")
def import_customers(
    file: FileArgument,
    format: FormatOption = None,
    encoding: EncodingOption = None,
    delimiter: DelimiterOption = None,
    map: MapOption = None,
    apply: ApplyOption = False,
    database_url: DatabaseOption = None,
) -> None:
    """CRM customers: each row becomes an identify from the source "crm"."""
    _import("customers", file, format, encoding, delimiter, map, database_url, apply)


@import_app.command("orders")
def import_orders(
    file: FileArgument,
    format: FormatOption = None,
    encoding: EncodingOption = None,
    delimiter: DelimiterOption = None,
    map: MapOption = None,
    apply: ApplyOption = False,
    database_url: DatabaseOption = None,
) -> None:
    """POS orders: each order becomes an Order Completed from the source "pos"."""
    _import("orders", file, format, encoding, delimiter, map, database_url, apply)


@import_app.command("products")
def import_products(
    file: FileArgument,
    format: FormatOption = None,
    encoding: EncodingOption = None,
    delimiter: DelimiterOption = None,
    map: MapOption = None,
    database_url: DatabaseOption = None,
) -> None:
    """Products: created or updated in the catalog."""
    _import("products", file, format, encoding, delimiter, map, database_url, False)
