"""`shopkeeper profiles export|erase`: privacy requests from the command line."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from shopkeeper.clikit import DatabaseOption, console, err, fail, load_settings, open_db

profiles_app = typer.Typer(
    help="A person's profile: export or erase their data.", no_args_is_help=True
)

RefArgument = Annotated[
    str, typer.Argument(help="type:value, e.g. email:ana@example.com, user_id:42 or profile:7.")
]


def _open(ref: str, database_url: str | None) -> tuple[Any, Any, int]:
    """Settings, database and the profile id a reference names (or a one-line error)."""
    from shopkeeper.profiles import view

    settings = load_settings(database_url)
    db = open_db(settings, create_if_empty=False)
    try:
        type_, value = view.parse_ref(ref)
        with db.read() as conn:
            profile_id = view.resolve(conn, type_, value)
    except view.BadRef as exc:
        raise fail(str(exc)) from None
    if profile_id is None:
        raise fail(f"no profile holds {ref}")
    return settings, db, profile_id


def _extractor(settings: Any) -> Any:
    from shopkeeper.identity.identifiers import IdentifierExtractor, JunkFilter

    return IdentifierExtractor(JunkFilter(settings.junk_identifiers), settings.default_phone_region)


@profiles_app.command("export")
def export_command(
    ref: RefArgument,
    output: Annotated[
        Path | None,
        typer.Option("--output", "-o", help="Write the JSON here instead of to stdout."),
    ] = None,
    database_url: DatabaseOption = None,
) -> None:
    """Export everything held about a person as one JSON document."""
    from shopkeeper.admin import audit
    from shopkeeper.clock import SystemClock
    from shopkeeper.privacy.export import ProfileNotFound, open_export_stream, record_export

    settings, db, profile_id = _open(ref, database_url)
    now = SystemClock().now_ms()
    try:
        stream = open_export_stream(db, profile_id, now_ms=now, extractor=_extractor(settings))
    except ProfileNotFound:
        raise fail(f"no profile holds {ref}") from None
    record_export(db, profile_id, now, audit.CLI)
    try:
        if output is None:
            for chunk in stream:
                sys.stdout.buffer.write(chunk)
            sys.stdout.buffer.write(b"\n")
            sys.stdout.flush()
        else:
            with output.open("wb") as file:
                for chunk in stream:
                    file.write(chunk)
            err.print(f"profile {profile_id} exported to {output}", highlight=False)
    except OSError as exc:
        raise fail(f"cannot write the export: {exc}") from None
    finally:
        stream.close()


@profiles_app.command("erase")
def erase_command(
    ref: RefArgument,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
    database_url: DatabaseOption = None,
) -> None:
    """Erase everything held about a person (one transaction) and suppress their ids."""
    from rich.table import Table

    from shopkeeper.admin import audit
    from shopkeeper.clock import SystemClock
    from shopkeeper.privacy.erase import ProfileNotFound, erase_profile

    settings, db, profile_id = _open(ref, database_url)
    if not yes:
        typer.confirm(
            f"Erase profile {profile_id} and every row holding this person's data? "
            "This cannot be undone.",
            abort=True,
        )
    try:
        summary = erase_profile(
            db, profile_id, SystemClock().now_ms(), audit.CLI, extractor=_extractor(settings)
        )
    except ProfileNotFound:
        raise fail(f"no profile holds {ref}") from None
    table = Table("erased", "count")
    for key, value in summary.as_dict().items():
        if key not in ("profile_id", "absorbed_profile_ids"):
            table.add_row(key.replace("_", " "), str(value))
    console.print(f"profile {summary.profile_id} erased")
    console.print(table)
