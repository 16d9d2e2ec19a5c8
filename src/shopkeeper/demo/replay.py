"""Sending a stream of Segment messages to a running Shopkeeper, the way a shop's sources
would: gzip `/v1/batch` requests with each source's write key, over keep-alive
connections, and then waiting for the pipeline to apply everything.

Sender threads do the HTTP round trips (and the compression, which releases the GIL)
while the caller's thread generates and encodes the next messages.
"""

from __future__ import annotations

import base64
import http.client
import json
import queue
import threading
import time
import zlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import msgspec

from shopkeeper.timeutil import parse_iso_ms

# Under the server's 500 KB request limit (which applies to the expanded body too).
MAX_BATCH_BYTES = 400_000
MAX_BATCH_MESSAGES = 1000
# A source's partial batch is sent once this many messages of other sources went by, so
# that sources stay roughly in time order with one another.
MAX_BATCH_AGE = 5000
_RETRIES = 6


class ReplayError(RuntimeError):
    pass


@dataclass
class ReplayStats:
    messages: int = 0
    requests: int = 0
    accepted: int = 0
    duplicates: int = 0
    bytes_sent: int = 0
    retries: int = 0
    rejected: list[dict[str, Any]] = field(default_factory=list)  # the first few
    rejected_count: int = 0
    first_request_at: float | None = None  # time.monotonic()
    last_answer_at: float | None = None


class _Connection:
    def __init__(self, base_url: str, timeout: float) -> None:
        parts = urlsplit(base_url)
        self.host = parts.hostname or "127.0.0.1"
        self.port = parts.port or 80
        self.timeout = timeout
        self.conn: http.client.HTTPConnection | None = None

    def post(self, path: str, body: bytes, headers: dict[str, str]) -> tuple[int, bytes]:
        if self.conn is None:
            self.conn = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
        try:
            self.conn.request("POST", path, body=body, headers=headers)
            response = self.conn.getresponse()
            return response.status, response.read()
        except (OSError, http.client.HTTPException):
            self.close()
            raise

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None


class Replayer:
    """Batches messages per source and posts them; `run` returns once every batch has
    been acknowledged (so every event is in the event log)."""

    def __init__(
        self,
        base_url: str,
        write_keys: dict[str, str],
        *,
        senders: int = 2,
        timeout: float = 120.0,
        on_sent: Callable[[int, int], None] | None = None,
    ) -> None:
        self.base_url = base_url
        self.auth = {
            source: "Basic " + base64.b64encode(f"{key}:".encode()).decode()
            for source, key in write_keys.items()
        }
        self.senders = senders
        self.timeout = timeout
        self.on_sent = on_sent  # (messages acknowledged so far, newest timestamp ms)
        self.stats = ReplayStats()
        self._lock = threading.Lock()
        self._error: BaseException | None = None

    def run(self, stream: Iterable[tuple[str, dict[str, Any]]]) -> ReplayStats:
        work: queue.Queue[tuple[str, list[bytes], int] | None] = queue.Queue(
            maxsize=2 * self.senders
        )
        threads = [
            threading.Thread(target=self._send_loop, args=(work,), name=f"replay-{n}", daemon=True)
            for n in range(self.senders)
        ]
        for thread in threads:
            thread.start()
        encode = msgspec.json.Encoder().encode
        buffers: dict[str, list[bytes]] = {source: [] for source in self.auth}
        sizes = dict.fromkeys(self.auth, 0)
        started = dict.fromkeys(self.auth, 0)
        newest = 0
        count = 0

        def flush(source: str) -> None:
            if buffers[source]:
                self._put(work, (source, buffers[source], newest))
                buffers[source] = []
                sizes[source] = 0

        try:
            for source, message in stream:
                if source not in buffers:
                    raise ReplayError(f"no write key for the source {source!r}")
                data = encode(message)
                if sizes[source] + len(data) > MAX_BATCH_BYTES or (
                    len(buffers[source]) >= MAX_BATCH_MESSAGES
                ):
                    flush(source)
                if not buffers[source]:
                    started[source] = count
                buffers[source].append(data)
                sizes[source] += len(data) + 1
                count += 1
                if count % 256 == 0:
                    newest = parse_iso_ms(message["timestamp"])
                    for other in buffers:
                        if buffers[other] and count - started[other] > MAX_BATCH_AGE:
                            flush(other)
            newest = 0
            for source in buffers:
                flush(source)
        finally:
            for _ in threads:
                self._put(work, None, force=True)
            for thread in threads:
                thread.join()
        if self._error is not None:
            raise ReplayError(str(self._error)) from self._error
        self.stats.messages = count
        return self.stats

    def _put(self, work: queue.Queue[Any], item: Any, force: bool = False) -> None:
        while True:
            if self._error is not None and not force:
                raise ReplayError(str(self._error))
            try:
                work.put(item, timeout=0.5)
                return
            except queue.Full:
                continue

    def _send_loop(self, work: queue.Queue[tuple[str, list[bytes], int] | None]) -> None:
        connection = _Connection(self.base_url, self.timeout)
        try:
            while True:
                item = work.get()
                if item is None:
                    return
                if self._error is not None:
                    continue  # drain the queue; run() raises
                source, messages, newest = item
                try:
                    self._send(connection, source, messages, newest)
                except BaseException as exc:
                    self._error = exc
        finally:
            connection.close()

    def _send(
        self, connection: _Connection, source: str, messages: list[bytes], newest: int
    ) -> None:
        body = b'{"batch":[' + b",".join(messages) + b"]}"
        compressor = zlib.compressobj(6, zlib.DEFLATED, 31)
        gz = compressor.compress(body) + compressor.flush()
        headers = {
            "Authorization": self.auth[source],
            "Content-Type": "application/json",
            "Content-Encoding": "gzip",
        }
        status, answer = 0, b""
        for attempt in range(_RETRIES):
            with self._lock:
                if self.stats.first_request_at is None:
                    self.stats.first_request_at = time.monotonic()
            try:
                status, answer = connection.post("/v1/batch", gz, headers)
            except (OSError, http.client.HTTPException) as exc:
                if attempt == _RETRIES - 1:
                    raise ReplayError(f"cannot reach the server: {exc}") from None
            else:
                if status != 503:
                    break
            with self._lock:
                self.stats.retries += 1
            time.sleep(0.25 * 2**attempt)
        if status != 200:
            raise ReplayError(
                f"the server answered {status}: {answer[:300].decode(errors='replace')}"
            )
        result = json.loads(answer)
        with self._lock:
            stats = self.stats
            stats.requests += 1
            stats.bytes_sent += len(gz)
            stats.accepted += int(result.get("accepted", 0))
            stats.duplicates += int(result.get("duplicates", 0))
            rejected = result.get("rejected") or []
            stats.rejected_count += len(rejected)
            stats.rejected.extend(rejected[: max(0, 20 - len(stats.rejected))])
            stats.last_answer_at = time.monotonic()
            done = stats.accepted + stats.duplicates + stats.rejected_count
        if self.on_sent is not None:
            self.on_sent(done, newest)


def pipeline_status(base_url: str, admin_key: str, timeout: float = 30.0) -> dict[str, Any]:
    connection = _Connection(base_url, timeout)
    try:
        if connection.conn is None:
            connection.conn = http.client.HTTPConnection(
                connection.host, connection.port, timeout=timeout
            )
        connection.conn.request(
            "GET", "/api/pipeline/status", headers={"Authorization": f"Bearer {admin_key}"}
        )
        response = connection.conn.getresponse()
        body = response.read()
        if response.status != 200:
            raise ReplayError(f"pipeline status answered {response.status}: {body[:200]!r}")
        return json.loads(body)  # type: ignore[no-any-return]
    finally:
        connection.close()


def admin_post(
    base_url: str, admin_key: str, path: str, timeout: float = 300.0, body: Any = None
) -> Any:
    """POST to the admin API (a JSON body, or none); the JSON answer, or ReplayError."""
    connection = _Connection(base_url, timeout)
    headers = {"Authorization": f"Bearer {admin_key}"}
    data = b""
    if body is not None:
        data = json.dumps(body).encode()
        headers["Content-Type"] = "application/json"
    try:
        conn = http.client.HTTPConnection(connection.host, connection.port, timeout=timeout)
        connection.conn = conn
        conn.request("POST", path, body=data, headers=headers)
        response = conn.getresponse()
        body = response.read()
        if response.status not in (200, 201):
            raise ReplayError(f"POST {path} answered {response.status}: {body[:300]!r}")
        return json.loads(body)
    finally:
        connection.close()


def wait_for_pipeline(
    base_url: str,
    admin_key: str,
    *,
    poll_seconds: float = 0.25,
    on_status: Callable[[dict[str, Any]], None] | None = None,
    still_running: Callable[[], bool] | None = None,
) -> dict[str, Any]:
    """Poll /api/pipeline/status until nothing is pending; returns the last status."""
    while True:
        began = time.monotonic()
        status = pipeline_status(base_url, admin_key)
        if on_status is not None:
            on_status(status)
        if status["pending"] == 0:
            return status
        if still_running is not None and not still_running():
            raise ReplayError("the server stopped before the pipeline was done")
        # Counting a large backlog is not free: poll less often while it is large.
        time.sleep(max(poll_seconds, 10 * (time.monotonic() - began)))
