"""Apply Alembic migrations programmatically (no alembic.ini needed at run time)."""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

from shopkeeper.config import Settings
from shopkeeper.storage.db import Database

MIGRATIONS = Path(__file__).parent / "migrations"


def alembic_config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    return config


def head_revision() -> str | None:
    return ScriptDirectory.from_config(alembic_config()).get_current_head()


def current_revision(db: Database) -> str | None:
    with db.engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def upgrade(db: Database, revision: str = "head") -> None:
    config = alembic_config()
    with db.engine.begin() as conn:
        config.attributes["connection"] = conn
        command.upgrade(config, revision)


def is_up_to_date(db: Database) -> bool:
    return current_revision(db) == head_revision()


def has_tables(db: Database) -> bool:
    with db.engine.connect() as conn:
        return bool(sa.inspect(conn).get_table_names())


class SchemaOutOfDate(RuntimeError):
    pass


def open_database(settings: Settings) -> Database:
    return Database(settings.database_url, sqlite_synchronous=settings.sqlite_synchronous)


def ensure_schema(db: Database, *, create_if_empty: bool) -> None:
    """Migrate an empty database; refuse to run on another schema (the operator runs
    `shopkeeper db upgrade` deliberately, after a backup)."""
    current = current_revision(db)
    if current == head_revision():
        return
    if current is None and create_if_empty and not has_tables(db):
        upgrade(db)
        return
    check_known(current)
    raise SchemaOutOfDate(
        "The database schema is not the one this version needs: run `shopkeeper db upgrade`."
    )


def check_known(current: str | None) -> None:
    """Refuse a schema revision this code has never heard of (made by a newer version)."""
    scripts = ScriptDirectory.from_config(alembic_config())
    known = {script.revision for script in scripts.walk_revisions()}
    if current is not None and current not in known:
        raise SchemaOutOfDate(
            f"The database schema ({current}) is newer than this version of Shopkeeper "
            "knows: run the newer version, or restore a backup made for this one."
        )
