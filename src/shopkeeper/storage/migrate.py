"""Apply Alembic migrations programmatically (no alembic.ini needed at run time)."""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

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
        if db.is_sqlite:
            # Alembic's SQLite batch mode wants no open transaction of ours on DDL.
            pass
        config.attributes["connection"] = conn
        command.upgrade(config, revision)


def is_up_to_date(db: Database) -> bool:
    return current_revision(db) == head_revision()


def has_tables(db: Database) -> bool:
    with db.engine.connect() as conn:
        return bool(sa.inspect(conn).get_table_names())
