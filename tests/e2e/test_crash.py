"""Nothing acknowledged is lost and nothing is applied twice, whatever stops the server.

Sender threads stream events (single calls and batches, unique messageIds, about twenty
customers on two devices each, whose identifies merge the devices' profiles) at a real
server and remember every messageId the server answered 200 for. The server is killed
(SIGKILL) or interrupted (SIGINT) mid-stream, started again on the same database, and
nothing is re-sent. Then every acknowledged event must be in the log exactly once and
applied, and each profile's events_count must equal the number of its events in the log.
Requests that got no answer may or may not have been stored; either is fine, but what
was stored must be applied like the rest.
"""

from __future__ import annotations

import random
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from shopkeeper.storage import tables as t
from shopkeeper.storage.db import Database
from tests.live import LiveServer, live_server

pytestmark = pytest.mark.slow

CUSTOMERS = 20
SENDERS = 3
STREAM_SECONDS = 0.8


def message(sender: int, n: int, rng: random.Random) -> dict[str, Any]:
    customer = rng.randrange(CUSTOMERS)
    device = rng.randrange(2)
    anon = f"anon-{customer}-{device}"
    base: dict[str, Any] = {"messageId": f"s{sender}-{n}", "anonymousId": anon}
    roll = rng.random()
    if roll < 0.1:
        # Logging in on either device links it to the customer: the second one merges.
        return {
            **base,
            "type": "identify",
            "userId": f"user-{customer}",
            "traits": {"email": f"customer{customer}@example.com"},
        }
    if roll < 0.4:
        return {**base, "type": "page", "name": "Home", "properties": {"path": "/"}}
    if roll < 0.5:
        return {
            **base,
            "type": "track",
            "event": "Order Completed",
            "properties": {"order_id": f"o-{sender}-{n}", "revenue": 10, "currency": "USD"},
        }
    return {
        **base,
        "type": "track",
        "event": "Product Viewed",
        "properties": {"product_id": f"p-{n % 7}", "price": 5},
    }


@dataclass
class Stream:
    """Sender threads and what the server acknowledged to them."""

    server: LiveServer
    acked: set[str] = field(default_factory=set)
    unanswered: int = 0
    unexpected: list[str] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)
    threads: list[threading.Thread] = field(default_factory=list)

    def start(self) -> None:
        for sender in range(SENDERS):
            thread = threading.Thread(target=self._send, args=(sender,), daemon=True)
            thread.start()
            self.threads.append(thread)

    def finish(self) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(timeout=60)
            assert not thread.is_alive()

    def _send(self, sender: int) -> None:
        rng = random.Random(sender)
        n = 0
        auth = (self.server.write_key, "")
        with httpx.Client(base_url=self.server.url, auth=auth, timeout=30) as client:
            while not self.stop.is_set():
                if rng.random() < 0.5:
                    batch = [message(sender, n + i, rng) for i in range(rng.randint(2, 25))]
                    n += len(batch)
                    path, body = "/v1/batch", {"batch": batch}
                else:
                    single = message(sender, n, rng)
                    n += 1
                    batch = [single]
                    path, body = f"/v1/{single['type']}", single
                try:
                    response = client.post(path, json=body)
                except httpx.TransportError:
                    with self.lock:
                        self.unanswered += 1
                    time.sleep(0.01)  # the server is gone: do not spin
                    continue
                ids = [m["messageId"] for m in batch]
                if response.status_code == 200:
                    if path == "/v1/batch":
                        answer = response.json()
                        if answer != {
                            "success": True,
                            "accepted": len(ids),
                            "duplicates": 0,
                            "rejected": [],
                        }:
                            self.unexpected.append(response.text)
                    with self.lock:
                        self.acked.update(ids)
                elif response.status_code == 503:
                    with self.lock:
                        self.unanswered += 1  # "nothing was stored; retry": not acknowledged
                else:
                    self.unexpected.append(f"{response.status_code} {response.text}")


def stream_then(server: LiveServer, stop_server: Any) -> Stream:
    stream = Stream(server)
    stream.start()
    time.sleep(STREAM_SECONDS)
    try:
        stop_server()
    finally:
        stream.finish()
    assert stream.unexpected == []
    # The stream was really flowing when the server stopped.
    assert len(stream.acked) >= 50
    return stream


def logged(db_url: str) -> list[Any]:
    db = Database(db_url)
    try:
        with db.read() as conn:
            return list(
                conn.execute(
                    sa.select(t.events.c.message_id, t.events.c.status, t.events.c.profile_id)
                ).all()
            )
    finally:
        db.dispose()


def check_exactly_once(server: LiveServer, acked: set[str]) -> None:
    status = server.wait_drained()
    assert (status["pending"], status["parked"]) == (0, 0)
    rows = logged(server.database_url)
    counts = Counter(row.message_id for row in rows)
    assert [mid for mid, count in counts.items() if count > 1] == []
    missing = acked - set(counts)
    assert missing == set(), f"{len(missing)} acknowledged events lost"
    assert [row for row in rows if row.status != t.APPLIED or row.profile_id is None] == []

    per_profile = Counter(int(row.profile_id) for row in rows)
    db = Database(server.database_url)
    try:
        with db.read() as conn:
            profiles = conn.execute(
                sa.select(t.profiles.c.id, t.profiles.c.merged_into, t.profiles.c.computed)
            ).all()
    finally:
        db.dispose()
    live = {int(p.id): p.computed for p in profiles if p.merged_into is None}
    # Events belong to live profiles only (a merge moves them to the survivor)...
    assert set(per_profile) <= set(live)
    # ...and each profile counted each of its events once.
    counted = {pid: computed.get("events_count", 0) for pid, computed in live.items()}
    assert counted == {pid: per_profile.get(pid, 0) for pid in live}
    assert sum(counted.values()) == len(rows)
    # The API serves the same numbers.
    for pid in sorted(per_profile)[:3]:
        view = server.profile(f"profile:{pid}")
        assert view["computed"]["events_count"] == per_profile[pid]
    # Each customer who logged in is one profile, whichever device they used.
    for customer in range(CUSTOMERS):
        response = httpx.get(
            f"{server.url}/api/profiles/user_id:user-{customer}", headers=server.admin
        )
        if response.status_code == 404:
            continue  # never logged in during the stream
        assert response.status_code == 200, response.text
        identities = response.json()["identities"]
        anons = {i["value"] for i in identities if i["type"] == "anonymous_id"}
        assert anons
        assert anons <= {f"anon-{customer}-0", f"anon-{customer}-1"}


def test_sigkill_mid_stream_loses_no_acknowledged_event(db_url: str, tmp_path: Path) -> None:
    with live_server(db_url, tmp_path) as server:
        stream = stream_then(server, server.kill)
        assert server.process is None
        # Nothing was re-sent: the log holds what it held at the kill.
        before = {row.message_id for row in logged(db_url)}
        assert stream.acked <= before
        server.start()
        check_exactly_once(server, stream.acked)
        assert {row.message_id for row in logged(db_url)} == before


def test_sigint_mid_stream_stops_cleanly_and_keeps_everything(db_url: str, tmp_path: Path) -> None:
    with live_server(db_url, tmp_path) as server:
        codes: list[int] = []
        stream = stream_then(server, lambda: codes.append(server.interrupt(timeout=30)))
        assert codes == [0]
        # Every acknowledged event was in the log when the process ended.
        before = {row.message_id for row in logged(db_url)}
        assert stream.acked <= before
        server.start()
        check_exactly_once(server, stream.acked)
        assert {row.message_id for row in logged(db_url)} == before
