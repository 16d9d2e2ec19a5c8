"""Engines and the few places where SQLite and PostgreSQL differ.

SQLite gets two engines on the same file: writes begin with BEGIN IMMEDIATE, so that two
writers queue on the lock instead of failing when a read transaction tries to upgrade;
reads begin deferred and run beside the writer (WAL).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import msgspec
import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, Engine

_encoder = msgspec.json.Encoder()


def json_dumps(value: Any) -> str:
    return _encoder.encode(value).decode()


def json_loads(value: str | bytes) -> Any:
    return msgspec.json.decode(value)


def normalize_url(url: str) -> str:
    """Accept the URLs people paste (postgres://, postgresql://) and pick psycopg 3."""
    if url.startswith("postgres://"):
        url = "postgresql://" + url[len("postgres://") :]
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url[len("postgresql://") :]
    return url


class Database:
    """The engines of one database, and helpers that hide dialect differences."""

    def __init__(self, url: str, *, sqlite_synchronous: str = "FULL", pool_size: int = 10) -> None:
        self.url = normalize_url(url)
        self.dialect = sa.engine.make_url(self.url).get_backend_name()
        if self.dialect == "sqlite":
            self.engine = self._sqlite_engine(immediate=True, synchronous=sqlite_synchronous)
            self.read_engine = self._sqlite_engine(immediate=False, synchronous=sqlite_synchronous)
        elif self.dialect == "postgresql":
            self.engine = sa.create_engine(
                self.url,
                json_serializer=json_dumps,
                json_deserializer=json_loads,
                pool_size=pool_size,
                max_overflow=pool_size,
                pool_pre_ping=True,
            )
            self.read_engine = self.engine
        else:
            raise ValueError(
                f"unsupported database {self.dialect!r}: use a sqlite:/// or postgresql:// URL"
            )

    @property
    def is_sqlite(self) -> bool:
        return self.dialect == "sqlite"

    def _sqlite_engine(self, *, immediate: bool, synchronous: str) -> Engine:
        engine = sa.create_engine(
            self.url,
            json_serializer=json_dumps,
            json_deserializer=json_loads,
            connect_args={"timeout": 60, "check_same_thread": False},
        )

        @event.listens_for(engine, "connect")
        def _on_connect(dbapi_connection: Any, _record: Any) -> None:
            # Let SQLAlchemy's "begin" event below emit BEGIN, not the driver.
            dbapi_connection.isolation_level = None
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute(f"PRAGMA synchronous={_checked_synchronous(synchronous)}")
            cursor.execute("PRAGMA busy_timeout=60000")
            cursor.execute("PRAGMA foreign_keys=OFF")
            cursor.close()

        begin = "BEGIN IMMEDIATE" if immediate else "BEGIN"

        @event.listens_for(engine, "begin")
        def _on_begin(conn: Connection) -> None:
            conn.exec_driver_sql(begin)

        return engine

    @contextmanager
    def write(self) -> Iterator[Connection]:
        """A write transaction: committed on success, rolled back on error."""
        with self.engine.begin() as conn:
            yield conn

    @contextmanager
    def read(self) -> Iterator[Connection]:
        with self.read_engine.connect() as conn:
            yield conn

    @contextmanager
    def snapshot(self) -> Iterator[Connection]:
        """A read transaction that sees one moment: SQLite's read transactions already do
        (WAL); PostgreSQL needs REPEATABLE READ, or each query would see a later state."""
        with self.read() as conn:
            if not self.is_sqlite:
                conn.execution_options(isolation_level="REPEATABLE READ")
            with conn.begin():
                yield conn

    def insert_ignore(self, table: sa.Table) -> Any:
        """INSERT that skips rows whose unique key already exists."""
        if self.is_sqlite:
            return sqlite.insert(table).on_conflict_do_nothing()
        return postgresql.insert(table).on_conflict_do_nothing()

    def upsert(self, table: sa.Table, index_elements: list[str], update: list[str]) -> Any:
        dialect_insert = sqlite.insert if self.is_sqlite else postgresql.insert
        stmt = dialect_insert(table)
        return stmt.on_conflict_do_update(
            index_elements=index_elements,
            set_={name: stmt.excluded[name] for name in update},
        )

    def raw_many(self, conn: Connection, sql: str, rows: list[tuple[Any, ...]]) -> None:
        """executemany straight on the driver, for hot paths where building SQLAlchemy
        parameters per row costs more than the statement. `sql` uses `?` placeholders."""
        if not rows:
            return
        if not self.is_sqlite:
            sql = sql.replace("?", "%s")
        conn.exec_driver_sql(sql, rows)

    def allocate_ids(
        self, conn: Connection, table: sa.Table, count: int, reserved_above: int = 0
    ) -> list[int]:
        """Reserve `count` new primary keys of `table` inside a write transaction, so that
        rows can be inserted later in one executemany. PostgreSQL: from the sequence
        (unused ones leave gaps, which is harmless). SQLite: the write transaction holds
        the database lock, so the ids above both max(id) and `reserved_above` (the highest
        id this transaction reserved before, perhaps not inserted yet) are ours."""
        if self.is_sqlite:
            top = conn.execute(sa.select(sa.func.max(table.c.id))).scalar() or 0
            top = max(int(top), reserved_above)
            return list(range(top + 1, top + 1 + count))
        result = conn.execute(
            sa.text(
                "SELECT nextval(pg_get_serial_sequence(:table, 'id')) "
                "FROM generate_series(1, :count)"
            ),
            {"table": table.name, "count": count},
        )
        return [int(value) for value in result.scalars()]

    def dispose(self) -> None:
        self.engine.dispose()
        if self.read_engine is not self.engine:
            self.read_engine.dispose()


def _checked_synchronous(value: str) -> str:
    value = value.upper()
    if value not in {"OFF", "NORMAL", "FULL", "EXTRA"}:
        raise ValueError(
            f"SHOPKEEPER_SQLITE_SYNCHRONOUS must be OFF, NORMAL, FULL or EXTRA, not {value!r}"
        )
    return value
