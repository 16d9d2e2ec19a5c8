"""The `shopkeeper demo` command: options in, `run.run_demo` does the work."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape

from shopkeeper.demo import DEFAULT_CUSTOMERS, DEFAULT_SEED


def demo_command(
    customers: Annotated[
        int,
        typer.Option(
            help="People in the shop's year of history (visitors and customers; about half "
            "never sign up). The default starts in well under a minute."
        ),
    ] = DEFAULT_CUSTOMERS,
    seed: Annotated[
        int, typer.Option(help="Seed: the same seed makes the same shop.")
    ] = DEFAULT_SEED,
    serve_after: Annotated[
        bool,
        typer.Option(
            "--serve/--no-serve",
            help="Keep serving the demo store when it is ready (--no-serve: build it, exit).",
        ),
    ] = True,
    database: Annotated[
        Path, typer.Option(help="SQLite file for the demo store (recreated each run).")
    ] = Path("shopkeeper-demo.db"),
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[
        int | None,
        typer.Option(
            help="Port to listen on (default 8000; any free port with --no-serve).",
            show_default=False,
        ),
    ] = None,
) -> None:
    """A realistic demo shop on a fresh embedded database: generated, replayed through the
    tracking API and the pipeline, then served with the admin UI."""
    from shopkeeper.demo.run import DemoOptions, run_demo
    from shopkeeper.demo.server import DemoError

    console = Console()
    options = DemoOptions(
        customers=customers,
        seed=seed,
        serve=serve_after,
        database=database,
        host=host,
        port=port,
    )
    try:
        run_demo(options, console)
    except DemoError as exc:
        Console(stderr=True).print(
            f"[red]error:[/red] {escape(str(exc))}", soft_wrap=True, highlight=False
        )
        raise typer.Exit(1) from None
