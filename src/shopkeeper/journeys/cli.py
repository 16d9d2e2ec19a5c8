"""`shopkeeper journeys ...`: journeys from the command line (operators and scripts keep
definitions in version control and save them from a file; marketers use the UI)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from shopkeeper.clikit import DatabaseOption, console, fail, load_settings, open_db

journeys_app = typer.Typer(
    help="Journeys: list, save from a YAML file, switch on and off, playbooks.",
    no_args_is_help=True,
)

ACTOR = "cli"


@journeys_app.command("list")
def list_command(database_url: DatabaseOption = None) -> None:
    """Every journey with its status and key figures."""
    from shopkeeper.journeys import service

    db = open_db(load_settings(database_url), create_if_empty=False)
    table = Table("key", "name", "status", "version", "entered", "in progress", "sent",
                  "conversions", "revenue")  # fmt: skip
    for row in service.summaries(db):
        table.add_row(
            row["key"],
            row["name"],
            row["status"],
            str(row["version"]),
            str(row["entered"]),
            str(row["in_progress"]),
            str(row["messages"].get("sent", 0) + row["messages"].get("delivered", 0)),
            str(row["conversions"]),
            f"{row['revenue']:.2f}",
        )
    console.print(table)


@journeys_app.command("save")
def save_command(
    key: Annotated[str, typer.Argument(help="The journey's key, e.g. abandoned_cart")],
    file: Annotated[Path, typer.Argument(help="The definition: a YAML or JSON file")],
    activate: Annotated[bool, typer.Option(help="Switch a new journey on at once.")] = False,
    database_url: DatabaseOption = None,
) -> None:
    """Save a new journey from a file, or a new version of an existing one."""
    from shopkeeper.clock import SystemClock
    from shopkeeper.journeys import service
    from shopkeeper.journeys.definition import JourneyInvalid

    try:
        text = file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise fail(f"{file}: cannot read it ({exc})") from None
    db = open_db(load_settings(database_url), create_if_empty=False)
    now = SystemClock().now_ms()
    try:
        try:
            service.get(db, key)
            journey = service.update(db, now, actor=ACTOR, key=key, definition=text)
            console.print(f"journey {key}: version {journey.version} saved")
        except service.JourneyNotFound:
            journey = service.create(
                db, now, actor=ACTOR, key=key, definition=text,
                status="active" if activate else "draft",
            )  # fmt: skip
            console.print(f"journey {key} created ({journey.status})")
    except JourneyInvalid as exc:
        where = f" at {exc.path}" if exc.path else ""
        raise fail(f"{file}{where}: {exc.message}") from None
    except service.JourneyConflict as exc:
        raise fail(str(exc)) from None


@journeys_app.command("status")
def status_command(
    key: Annotated[str, typer.Argument(help="The journey's key")],
    status: Annotated[str, typer.Argument(help="draft, active, paused or archived")],
    database_url: DatabaseOption = None,
) -> None:
    """Switch a journey on, pause it or archive it (archiving stops everyone in it)."""
    from shopkeeper.clock import SystemClock
    from shopkeeper.journeys import service
    from shopkeeper.journeys.definition import JourneyInvalid
    from shopkeeper.journeys.runtime import JourneyRuntime

    settings = load_settings(database_url)
    db = open_db(settings, create_if_empty=False)
    now = SystemClock().now_ms()
    try:
        journey, stop = service.set_status(db, now, actor=ACTOR, key=key, status=status)
    except (JourneyInvalid, service.JourneyNotFound, service.JourneyConflict) as exc:
        raise fail(str(exc)) from None
    stopped = JourneyRuntime(db, settings).stop_journey(journey.id, "archived", now) if stop else 0
    console.print(f"journey {key} is {journey.status}" + (f"; {stopped} stopped" if stop else ""))


@journeys_app.command("playbooks")
def playbooks_command() -> None:
    """The playbooks ready to enable."""
    from shopkeeper.journeys.playbooks import PLAYBOOKS

    table = Table("key", "name", "what it does")
    for playbook in PLAYBOOKS:
        table.add_row(playbook.key, playbook.name, playbook.description)
    console.print(table)


@journeys_app.command("enable")
def enable_command(
    playbook: Annotated[str, typer.Argument(help="The playbook's key (see `playbooks`)")],
    key: Annotated[str | None, typer.Option(help="Save the journey under this key.")] = None,
    activate: Annotated[bool, typer.Option(help="Switch it on at once.")] = False,
    database_url: DatabaseOption = None,
) -> None:
    """Enable a playbook: its journey (a draft unless --activate), templates and pool."""
    from shopkeeper.clock import SystemClock
    from shopkeeper.journeys import playbooks, service
    from shopkeeper.journeys.definition import JourneyInvalid

    db = open_db(load_settings(database_url), create_if_empty=False)
    try:
        saved = playbooks.enable(
            db, SystemClock().now_ms(), actor=ACTOR, key=playbook, journey_key=key,
            status="active" if activate else "draft",
        )  # fmt: skip
    except (JourneyInvalid, service.JourneyConflict, LookupError) as exc:
        raise fail(str(exc)) from None
    console.print(f"journey {saved} saved from playbook {playbook}")
