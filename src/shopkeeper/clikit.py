"""What every `shopkeeper` subcommand shares: the consoles, the --database-url option,
settings and a database opened with one-line errors instead of tracebacks."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated, Any

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.markup import escape

from shopkeeper.config import Settings

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


def load_settings(database_url: str | None = None, **overrides: Any) -> Settings:
    values = {k: v for k, v in overrides.items() if v is not None}
    if database_url:
        values["database_url"] = database_url
    try:
        return Settings(**values)
    except ValidationError as exc:
        problems = "; ".join(
            f"SHOPKEEPER_{'_'.join(map(str, e['loc'])).upper()}: {e['msg']}" for e in exc.errors()
        )
        raise fail(f"bad setting: {problems}") from None


def fail(message: str) -> typer.Exit:
    err.print(f"[red]error:[/red] {escape(message)}", soft_wrap=True, highlight=False)
    return typer.Exit(1)


@contextmanager
def database_errors() -> Iterator[None]:
    """What an operator can get wrong about the database (a bad URL, a server that does
    not answer, a schema this version does not know) as one line, not a traceback."""
    from alembic.util import CommandError
    from sqlalchemy.exc import OperationalError

    from shopkeeper.storage.migrate import SchemaOutOfDate

    try:
        yield
    except (SchemaOutOfDate, ValueError, CommandError) as exc:
        raise fail(str(exc)) from None
    except OperationalError as exc:
        raise fail(f"cannot use the database: {exc.orig}") from None


def open_db(settings: Settings, *, create_if_empty: bool = True) -> Any:
    from shopkeeper.storage.migrate import ensure_schema, open_database

    with database_errors():
        db = open_database(settings)
        ensure_schema(db, create_if_empty=create_if_empty)
    return db
