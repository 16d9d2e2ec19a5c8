"""The baseline for benchmarks/ingest.py: a bare ASGI app that does the least an ingest
endpoint must do, written the straightforward way.

It reads the body, checks the write key, decodes the JSON with msgspec (the decoder
Shopkeeper uses), builds one row per message and inserts the rows into the same `events`
table of the same kind of database, committing once per request, then answers
200 {"success": true}. No framework, no validation beyond what the insert needs, no
normalisation, no metrics, no group commit.

SQLite: one connection in one thread (as aiosqlite does), WAL with synchronous=FULL like
Shopkeeper's default. PostgreSQL: a small pool of psycopg async connections.

Run: python benchmarks/baseline_app.py --database-url URL --port PORT --write-key KEY
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import sqlite3
import time
import zlib
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import msgspec
import uvicorn

_COLUMNS = (
    "source_id, message_id, type, event, user_id, anonymous_id, partition, "
    "timestamp, received_at, status, payload"
)
_SQLITE_INSERT = (
    f"INSERT INTO events ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 0, ?) "
    "ON CONFLICT DO NOTHING"
)
_PG_INSERT = (
    f"INSERT INTO events ({_COLUMNS}) "
    "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, 0, %s::jsonb) ON CONFLICT DO NOTHING"
)
_PG_POOL_SIZE = 10

_decode = msgspec.json.decode
_encode = msgspec.json.encode
_OK = b'{"success":true}'
_JSON_HEADERS = [(b"content-type", b"application/json")]


class SqliteStore:
    def __init__(self, path: str) -> None:
        self.path = path
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sqlite")
        self.conn: sqlite3.Connection | None = None

    def _open(self) -> None:
        conn = sqlite3.connect(self.path, timeout=60)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=FULL")
        conn.execute("PRAGMA busy_timeout=60000")
        self.conn = conn

    def _insert(self, rows: list[tuple[Any, ...]]) -> None:
        assert self.conn is not None
        self.conn.executemany(_SQLITE_INSERT, rows)
        self.conn.commit()

    async def start(self) -> None:
        await asyncio.get_running_loop().run_in_executor(self.executor, self._open)

    async def insert(self, rows: list[tuple[Any, ...]]) -> None:
        await asyncio.get_running_loop().run_in_executor(self.executor, self._insert, rows)

    async def stop(self) -> None:
        if self.conn is not None:
            await asyncio.get_running_loop().run_in_executor(self.executor, self.conn.close)
        self.executor.shutdown()


class PostgresStore:
    def __init__(self, url: str) -> None:
        self.url = url
        self.pool: asyncio.Queue[Any] = asyncio.Queue()
        self.conns: list[Any] = []

    async def start(self) -> None:
        import psycopg

        for _ in range(_PG_POOL_SIZE):
            conn = await psycopg.AsyncConnection.connect(self.url)
            self.conns.append(conn)
            self.pool.put_nowait(conn)

    async def insert(self, rows: list[tuple[Any, ...]]) -> None:
        conn = await self.pool.get()
        try:
            async with conn.cursor() as cur:
                await cur.executemany(_PG_INSERT, rows)
            await conn.commit()
        except BaseException:
            await conn.rollback()
            raise
        finally:
            self.pool.put_nowait(conn)

    async def stop(self) -> None:
        for conn in self.conns:
            await conn.close()


def _row(message: dict[str, Any], kind: str | None, source_id: int, now: int) -> tuple[Any, ...]:
    anonymous_id = message.get("anonymousId")
    user_id = message.get("userId")
    key = anonymous_id or user_id or ""
    return (
        source_id,
        message["messageId"],
        kind or message["type"],
        message.get("event"),
        user_id,
        anonymous_id,
        zlib.crc32(key.encode()) % 256,
        now,
        now,
        _encode(message).decode(),
    )


def make_app(store: SqliteStore | PostgresStore, write_key: str, source_id: int) -> Any:
    expected = b"Basic " + base64.b64encode(f"{write_key}:".encode())

    async def respond(send: Any, status: int, body: bytes) -> None:
        headers = [*_JSON_HEADERS, (b"content-length", str(len(body)).encode())]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await store.start()
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    await store.stop()
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        path = scope["path"]
        if path == "/healthz":
            await respond(send, 200, b'{"status":"ok"}')
            return
        if scope["method"] != "POST" or path not in ("/v1/track", "/v1/batch"):
            await respond(send, 404, b'{"error":"not found"}')
            return
        if dict(scope["headers"]).get(b"authorization") != expected:
            await respond(send, 401, b'{"error":"unauthorized"}')
            return
        chunks = []
        while True:
            message = await receive()
            chunks.append(message.get("body", b""))
            if not message.get("more_body"):
                break
        now = int(time.time() * 1000)
        try:
            data = _decode(b"".join(chunks))
            if path == "/v1/batch":
                rows = [_row(m, None, source_id, now) for m in data["batch"]]
            else:
                rows = [_row(data, "track", source_id, now)]
        except (msgspec.DecodeError, KeyError, TypeError, AttributeError):
            await respond(send, 400, b'{"error":"invalid"}')
            return
        await store.insert(rows)
        await respond(send, 200, _OK)

    return app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database-url", required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--write-key", required=True)
    parser.add_argument("--source-id", type=int, default=1)
    args = parser.parse_args()
    url: str = args.database_url
    store: SqliteStore | PostgresStore
    if url.startswith("sqlite:///"):
        store = SqliteStore(url[len("sqlite:///") :])
    else:
        store = PostgresStore(url.replace("postgresql+psycopg://", "postgresql://", 1))
    # The same uvicorn settings as `shopkeeper serve` (loop and http implementation: auto,
    # that is uvloop and httptools).
    uvicorn.run(
        make_app(store, args.write_key, args.source_id),
        host="127.0.0.1",
        port=args.port,
        log_level="warning",
        timeout_graceful_shutdown=30,
    )


if __name__ == "__main__":
    main()
