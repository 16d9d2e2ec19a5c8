"""`shopkeeper segments ...` and `shopkeeper scheduler ...`: segments and periodic work
from the command line (for operators and scripts; marketers use the UI)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from shopkeeper.clikit import DatabaseOption, console, fail, load_settings, open_db

segments_app = typer.Typer(help="Segments: list, save, refresh, preview.", no_args_is_help=True)
scheduler_app = typer.Typer(help="Periodic work: status, run now.", no_args_is_help=True)

ACTOR = "cli"


@segments_app.command("list")
def list_command(database_url: DatabaseOption = None) -> None:
    """Every segment with its size and 7-day change."""
    from shopkeeper.clock import SystemClock
    from shopkeeper.segments import service

    db = open_db(load_settings(database_url), create_if_empty=False)
    rows = service.summaries(db, SystemClock().now_ms())
    table = Table("key", "name", "size", "7 days", "kind", "refreshed")
    for row in rows:
        change = row["change_7_days"]
        table.add_row(
            row["key"],
            row["name"],
            str(row["size"]),
            "" if change is None else f"{change:+d}",
            "real-time" if row["realtime"] else f"every {row['refresh_minutes']} min",
            row["refreshed_at"] or "never",
        )
    console.print(table)


@segments_app.command("save")
def save_command(
    key: Annotated[str, typer.Argument(help="The segment's key, e.g. vip")],
    condition: Annotated[
        str | None, typer.Option(help="The condition in the segment language.")
    ] = None,
    condition_file: Annotated[
        Path | None, typer.Option("--file", help="Read the condition from this file.")
    ] = None,
    name: Annotated[str | None, typer.Option(help="Display name (default: the key).")] = None,
    scheduled: Annotated[
        int | None,
        typer.Option(help="Refresh every N minutes instead of following events in real time."),
    ] = None,
    database_url: DatabaseOption = None,
) -> None:
    """Save a new segment, or change the condition of an existing one."""
    from shopkeeper.clock import SystemClock
    from shopkeeper.segments import service
    from shopkeeper.segments.store import SegmentError

    if (condition is None) == (condition_file is None):
        raise fail("give the condition with --condition or --file")
    text = condition if condition is not None else Path(str(condition_file)).read_text()
    db = open_db(load_settings(database_url), create_if_empty=False)
    now = SystemClock().now_ms()
    try:
        try:
            service.get(db, key)
            changes: dict[str, object] = {"condition": text}
            if name is not None:
                changes["name"] = name
            if scheduled is not None:
                changes.update(realtime=False, refresh_minutes=scheduled)
            _segment, result = service.update(db, now, key, changes, actor=ACTOR)
        except service.SegmentNotFound:
            _segment, result = service.create(
                db, now, actor=ACTOR, key=key, name=name or key, condition=text,
                realtime=scheduled is None, refresh_minutes=scheduled or 60,
            )  # fmt: skip
    except SegmentError as exc:
        where = f" (line {exc.line}, column {exc.column})" if exc.line else ""
        raise fail(f"{exc.field}: {exc.message}{where}") from None
    size = result.size if result else service.detail(db, key, now)["size"]
    console.print(f"segment {key} saved: {size} members")


@segments_app.command("refresh")
def refresh_command(
    key: Annotated[str | None, typer.Argument(help="One segment (default: every due one).")] = None,
    database_url: DatabaseOption = None,
) -> None:
    """Re-evaluate segments over the whole population now."""
    from shopkeeper.clock import SystemClock
    from shopkeeper.segments.jobs import refresh_due_segments
    from shopkeeper.segments.membership import refresh_segment

    settings = load_settings(database_url)
    db = open_db(settings, create_if_empty=False)
    now = SystemClock().now_ms()
    if key is not None:
        result = refresh_segment(db, key, now)
        if result is None:
            raise fail(f'there is no segment "{key}"')
        results = [result]
    else:
        results = refresh_due_segments(db, settings, now)
    for r in results:
        console.print(
            f"{r.key}: {r.size} members, {r.entered} entered, {r.exited} exited ({r.seconds:.2f} s)"
        )
    if not results:
        console.print("no segment was due")


@segments_app.command("indexes")
def indexes_command(
    apply: Annotated[
        bool, typer.Option("--apply", help="Build the missing indexes and drop unused ones now.")
    ] = False,
    database_url: DatabaseOption = None,
) -> None:
    """The PostgreSQL indexes the saved segments' conditions use (the scheduler keeps them
    in step every minute; --apply does it now)."""
    from shopkeeper.clock import SystemClock
    from shopkeeper.segments import indexes
    from shopkeeper.segments.store import conditions

    settings = load_settings(database_url)
    db = open_db(settings, create_if_empty=False)
    if db.is_sqlite:
        console.print("SQLite: segments use no indexes of their own (PostgreSQL only)")
        return
    now = SystemClock().now_ms()
    if apply:
        result = indexes.sync(db, settings, now)
        console.print(f"{len(result.created)} built, {len(result.dropped)} dropped")
    with db.read() as conn:
        saved = conditions(conn)
        have = indexes.existing(conn)
    limit = settings.segment_indexes_max if settings.segment_indexes else 0
    table = Table("index", "holds", "state")
    for index in indexes.wanted(saved, now, limit):
        state = have.get(index.name)
        label = "missing" if state is None else ("built" if state.valid else "invalid")
        table.add_row(index.name, index.describe(), label)
    wanted = {i.name for i in indexes.wanted(saved, now, limit)}
    for name in sorted(set(have) - wanted):
        table.add_row(name, "(no segment uses it)", "to drop")
    console.print(table)


@segments_app.command("preview")
def preview_command(
    condition: Annotated[str, typer.Argument(help="A condition in the segment language.")],
    database_url: DatabaseOption = None,
) -> None:
    """Count the profiles a condition holds for (nothing is saved)."""
    from shopkeeper.clock import SystemClock
    from shopkeeper.segments import service
    from shopkeeper.segments.store import SegmentError

    db = open_db(load_settings(database_url), create_if_empty=False)
    try:
        found = service.preview(db, condition, SystemClock().now_ms())
    except SegmentError as exc:
        where = f" (line {exc.line}, column {exc.column})" if exc.line else ""
        raise fail(f"{exc.message}{where}") from None
    console.print(f"{found.count} profiles")
    for person in found.sample:
        console.print(f"  profile {person['profile_id']}: {person['display_name'] or ''}")


@scheduler_app.command("status")
def status_command(database_url: DatabaseOption = None) -> None:
    """The periodic tasks: when each runs next, last ran, and its last error."""
    from shopkeeper.bootstrap import make_scheduler
    from shopkeeper.clock import SystemClock
    from shopkeeper.timeutil import ms_to_iso

    settings = load_settings(database_url)
    db = open_db(settings, create_if_empty=False)
    scheduler = make_scheduler(db, settings, SystemClock())
    table = Table("task", "next run", "last finished", "running on", "last error")
    for s in scheduler.status():
        table.add_row(
            s.name,
            ms_to_iso(s.next_run_at) if s.next_run_at else "now",
            ms_to_iso(s.last_finished_at) if s.last_finished_at else "never",
            s.lease_owner or "",
            s.last_error or "",
        )
    console.print(table)


@scheduler_app.command("run")
def run_command(
    task: Annotated[
        str | None, typer.Argument(help="One task to run now (default: every due task).")
    ] = None,
    database_url: DatabaseOption = None,
) -> None:
    """Run due tasks once (or one task now), then exit: for cron-style deployments."""
    from shopkeeper.bootstrap import make_scheduler
    from shopkeeper.clock import SystemClock

    settings = load_settings(database_url)
    db = open_db(settings, create_if_empty=False)
    scheduler = make_scheduler(db, settings, SystemClock())
    if task is not None:
        if task not in scheduler.tasks:
            raise fail(f"no task {task!r}; tasks: {', '.join(sorted(scheduler.tasks))}")
        ran = [task] if scheduler.run_task(task) else []
        if not ran:
            raise fail(f"{task} is running in another process")
    else:
        ran = scheduler.run_due()
    failed = {s.name: s.last_error for s in scheduler.status() if s.name in ran and s.last_error}
    for name in ran:
        console.print(f"{name}: {'failed: ' + failed[name] if name in failed else 'done'}")
    if not ran:
        console.print("nothing was due")
    if failed:
        raise typer.Exit(1)
