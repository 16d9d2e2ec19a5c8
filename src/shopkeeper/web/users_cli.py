"""`shopkeeper users ...`: the people who may log in to the admin UI."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from shopkeeper import clikit as cli
from shopkeeper.clikit import DatabaseOption

users_app = typer.Typer(help="People who log in to the admin UI.", no_args_is_help=True)


@users_app.command("create")
def users_create(
    email: Annotated[str, typer.Argument(help="The email the person logs in with.")],
    name: Annotated[str | None, typer.Option(help="Their name, shown in the UI.")] = None,
    password: Annotated[
        str | None,
        typer.Option(help="Their password (asked twice when left out; at least 10 characters)."),
    ] = None,
    database_url: DatabaseOption = None,
) -> None:
    """Create a user who can log in to the admin UI."""
    from shopkeeper.clock import SystemClock
    from shopkeeper.web.users import UserError, check_password, create_user

    db = cli.open_db(cli.load_settings(database_url))
    if password is None:
        try:
            password = typer.prompt("Password", hide_input=True, confirmation_prompt=True)
        except typer.Abort:
            raise cli.fail("no password given (use --password, or type it when asked)") from None
    try:
        check_password(password)
        user_id = create_user(db, email, password, SystemClock().now_ms(), name=name)
    except UserError as exc:
        raise cli.fail(str(exc)) from None
    cli.console.print(
        f"user {user_id} ({email.strip().lower()}) created; they can log in to the admin UI now"
    )


@users_app.command("list")
def users_list(database_url: DatabaseOption = None) -> None:
    """List the admin UI's users."""
    from shopkeeper.timeutil import ms_to_iso
    from shopkeeper.web.users import list_users

    db = cli.open_db(cli.load_settings(database_url))
    table = Table("id", "email", "name", "created", "last login", "status")
    for user in list_users(db):
        table.add_row(
            str(user.id),
            user.email,
            user.name or "",
            ms_to_iso(user.created_at),
            ms_to_iso(user.last_login_at) if user.last_login_at else "never",
            "active" if user.disabled_at is None else "disabled",
        )
    cli.console.print(table)
