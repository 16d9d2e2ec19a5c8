"""What the audience tests share: segments and memberships written as rows (the way the
membership code writes them: a member row and a history row in one transaction), people
sent through the real pipeline, and a real local HTTP destination that records what it
receives and can be told to fail."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import sqlalchemy as sa

from shopkeeper.segments.lang.json_form import to_json
from shopkeeper.segments.lang.parser import parse
from shopkeeper.storage import tables as t
from shopkeeper.storage.db import Database
from tests.harness import NOW, Harness

# -- segments and memberships ------------------------------------------------------------


def create_segment(db: Database, key: str, name: str | None = None) -> int:
    with db.write() as conn:
        return int(
            conn.execute(
                t.segments.insert()
                .returning(t.segments.c.id)
                .values(
                    key=key,
                    name=name or key.title(),
                    description=None,
                    condition="orders_count >= 1",
                    ast=to_json(parse("orders_count >= 1")),
                    # Scheduled (and never refreshed here): these tests set members by hand.
                    realtime=False,
                    refresh_minutes=60,
                    builtin=None,
                    version=1,
                    size=0,
                    refreshed_at=None,
                    created_at=NOW,
                    updated_at=NOW,
                )
            ).scalar_one()
        )


def enter(db: Database, segment_id: int, *profile_ids: int, at: int = NOW) -> None:
    with db.write() as conn:
        for pid in profile_ids:
            conn.execute(
                t.segment_members.insert().values(
                    segment_id=segment_id, profile_id=pid, entered_at=at
                )
            )
            conn.execute(
                t.segment_history.insert().values(
                    segment_id=segment_id, profile_id=pid, at=at, entered=True
                )
            )


def leave(db: Database, segment_id: int, *profile_ids: int, at: int = NOW) -> None:
    with db.write() as conn:
        for pid in profile_ids:
            conn.execute(
                t.segment_members.delete()
                .where(t.segment_members.c.segment_id == segment_id)
                .where(t.segment_members.c.profile_id == pid)
            )
            conn.execute(
                t.segment_history.insert().values(
                    segment_id=segment_id, profile_id=pid, at=at, entered=False
                )
            )


def add_member_without_history(db: Database, segment_id: int, *profile_ids: int) -> None:
    """A member whose entry left no history (a rebuild, a pruned history)."""
    with db.write() as conn:
        for pid in profile_ids:
            conn.execute(
                t.segment_members.insert().values(
                    segment_id=segment_id, profile_id=pid, entered_at=NOW
                )
            )


def insert_profiles(db: Database, rows: list[dict[str, Any]]) -> list[int]:
    """Profiles written directly (for volume); each row: traits, computed."""
    with db.write() as conn:
        ids = db.allocate_ids(conn, t.profiles, len(rows))
        conn.execute(
            t.profiles.insert(),
            [
                {
                    "id": pid,
                    "created_at": NOW,
                    "updated_at": NOW,
                    "merged_into": None,
                    "is_known": True,
                    "display_name": None,
                    "traits": row.get("traits", {}),
                    "trait_times": {},
                    "computed": row.get("computed", {}),
                }
                for pid, row in zip(ids, rows, strict=True)
            ],
        )
    return ids


def person(h: Harness, user_id: str, **traits: Any) -> int:
    """A person sent through the tracking API and the pipeline; returns the profile id."""
    h.send("identify", {"userId": user_id, "traits": traits, "messageId": f"id-{user_id}"})
    h.drain()
    return int(h.profile(f"user_id:{user_id}")["profile_id"])


def history_top(db: Database) -> int:
    with db.read() as conn:
        return int(conn.execute(sa.select(sa.func.max(t.segment_history.c.id))).scalar() or 0)


# -- a real HTTP destination ---------------------------------------------------------------


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: dict[str, Any]


@dataclass
class HookServer:
    url: str
    received: list[Received] = field(default_factory=list)
    fail_next: int = 0
    # Fail these requests (1 for the first one received...), whatever fail_next says.
    fail_requests: set[int] = field(default_factory=set)
    fail_status: int = 500
    # Seconds to wait before answering the next `slow_next` requests (for timeouts).
    slow_next: int = 0
    slow_seconds: float = 0.0
    # Called with the request's number (1 for the first) before it is answered.
    on_request: Callable[[int], None] | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)

    def bodies(self) -> list[dict[str, Any]]:
        with self.lock:
            return [request.body for request in self.received]

    def reset(self) -> None:
        with self.lock:
            self.received.clear()
            self.fail_next = self.slow_next = 0


@contextmanager
def hook_server() -> Iterator[HookServer]:
    state: HookServer

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length)
            with state.lock:
                slow = state.slow_next > 0
                state.slow_next -= 1 if slow else 0
                fail = state.fail_next > 0 or len(state.received) + 1 in state.fail_requests
                state.fail_next -= 1 if state.fail_next > 0 else 0
                # Failed and timed-out requests are recorded too: the test sees every try.
                state.received.append(
                    Received(
                        self.path, {k.lower(): v for k, v in self.headers.items()}, json.loads(raw)
                    )
                )
                number = len(state.received)
            if state.on_request is not None:
                state.on_request(number)
            if slow:
                time.sleep(state.slow_seconds)
            status = state.fail_status if fail else 200
            body = b'{"error": "down for maintenance"}' if fail else b'{"ok": true}'
            try:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client gave up (a timeout test)

        def log_message(self, *_args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    state = HookServer(url=f"http://127.0.0.1:{server.server_address[1]}/hooks/audience")
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
