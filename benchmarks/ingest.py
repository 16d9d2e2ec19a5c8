"""Ingest and processing throughput, each beside a baseline measured in the same run.

    .venv/bin/python benchmarks/ingest.py [--database sqlite|postgresql|both] [--quick]

Ingest: the real `shopkeeper serve --no-worker` runs pinned to one core; a load generator
pinned to the other core sends realistic Segment track messages (about 0.6 KB, like
analytics.js sends for Product Viewed and Product Added) over keep-alive HTTP/1.1
connections: 100 messages per /v1/batch request and one per /v1/track request. The
baseline is benchmarks/baseline_app.py, a bare ASGI app on the same uvicorn settings that
parses the same JSON and inserts into the same `events` table, committing per request.
The generator is first measured against a trivial server, to show it can push far more
than either server under test.

Processing: a fresh database is filled with a realistic mix of shop traffic through the
ingest validator and the event writer (the rows ingest produces), then
`Processor.drain()` (identity resolution and profile updates) is timed in this process,
pinned to one core. The baseline reads the same events and does what a naive pipeline
must (select pending, decode, mark them done).

Figures are medians over rounds (the machine is shared and noisy). The table is printed
and written as JSON to benchmarks/results/ingest-<database>.json.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import datetime as dt
import json
import os
import platform
import random
import shutil
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec
import sqlalchemy as sa
import uvloop

from shopkeeper.bootstrap import make_processor
from shopkeeper.clock import SystemClock
from shopkeeper.config import Settings
from shopkeeper.identity.identifiers import JunkFilter
from shopkeeper.ingest.sources import create_source
from shopkeeper.ingest.spec import Accepted, Envelope, Limits, MessageValidator
from shopkeeper.ingest.writer import EventWriter, event_row
from shopkeeper.observability.metrics import Metrics
from shopkeeper.storage import migrate
from shopkeeper.storage import tables as t
from shopkeeper.storage.db import Database, normalize_url

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
BASELINE_APP = ROOT / "benchmarks" / "baseline_app.py"
DEFAULT_PG_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"

INGEST_RATIO_TARGET = 0.5
PROCESSING_TARGET = 5000.0  # events/s per worker core, on SQLite
BATCH_SIZE = 100
TRACK_CONNECTIONS = 32
BATCH_CONNECTIONS = 8

CORES = sorted(os.sched_getaffinity(0))
SERVER_CORE = CORES[0]
CLIENT_CORE = CORES[1] if len(CORES) > 1 else CORES[0]


def _pin(core: int) -> Callable[[], None]:
    def pin() -> None:
        os.sched_setaffinity(0, {core})

    return pin


def _iso(seconds: float) -> str:
    moment = dt.datetime.fromtimestamp(seconds, dt.UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


# -- the messages the load generator sends ------------------------------------------------

_CATEGORIES = ("Shoes", "Jackets", "Backpacks", "Tents", "Socks", "Headlamps", "Gloves")
_USER_AGENT = (
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 "
    "(KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36"
)


@dataclass(frozen=True)
class Product:
    product_id: str
    sku: str
    name: str
    category: str
    price: float
    slug: str

    def properties(self, quantity: int | None = None, cart_id: str | None = None) -> dict[str, Any]:
        props: dict[str, Any] = {
            "product_id": self.product_id,
            "sku": self.sku,
            "category": self.category,
            "name": self.name,
            "brand": "Northpeak",
            "price": self.price,
            "currency": "USD",
        }
        if quantity is not None:
            props["quantity"] = quantity
        if cart_id is not None:
            props["cart_id"] = cart_id
        return props


def catalog(count: int = 200, seed: int = 7) -> list[Product]:
    rng = random.Random(seed)
    products = []
    for i in range(count):
        category = _CATEGORIES[i % len(_CATEGORIES)]
        name = f"{rng.choice(('Trail', 'Summit', 'Fjord', 'Ridge', 'Alpine'))} {category[:-1]} {i}"
        products.append(
            Product(
                product_id=f"P{10000 + i}",
                sku=f"NP-{10000 + i}-{rng.choice('SML')}",
                name=name,
                category=category,
                price=round(rng.uniform(9, 400), 2),
                slug=name.lower().replace(" ", "-"),
            )
        )
    return products


_TRACK = (
    b'{"type":"track","event":"%s","properties":%s,"context":{"library":{"name":"analytics.js",'
    b'"version":"npm:next-1.70.0"},"page":{"path":"/p/%s","referrer":"https://www.google.com/",'
    b'"title":"%s | Northpeak","url":"https://shop.example.com/p/%s"},'
    b'"userAgent":"' + _USER_AGENT.encode() + b'","locale":"en-US"},%s"anonymousId":"%s",'
    b'"messageId":"ajs-next-%s-%d","timestamp":"%s"%s}'
)


class TrackMessages:
    """Product Viewed and Product Added messages with varied ids and unique messageIds,
    built from byte templates so that the generator spends little time per message."""

    def __init__(self, seed: int, tag: str) -> None:
        rng = random.Random(seed)
        self.rng = rng
        self.tag = tag.encode()
        self.counter = 0
        self.visitors = [uuid.UUID(int=rng.getrandbits(128)).hex.encode() for _ in range(20000)]
        self.users = [b'"userId":"cust-%d",' % i for i in range(4000)]
        encode = msgspec.json.encode
        self.kinds: list[tuple[bytes, bytes, bytes, bytes]] = []
        for product in catalog():
            slug, title = product.slug.encode(), product.name.encode()
            viewed = encode(product.properties())
            added = encode(product.properties(quantity=1, cart_id="c-" + product.sku))
            self.kinds.append((b"Product Viewed", viewed, slug, title))
            self.kinds.append((b"Product Viewed", viewed, slug, title))
            self.kinds.append((b"Product Added", added, slug, title))

    def message(self, timestamp: bytes, sent_at: bytes) -> bytes:
        rng = self.rng
        self.counter += 1
        event, props, slug, title = self.kinds[rng.randrange(len(self.kinds))]
        user = self.users[rng.randrange(len(self.users))] if rng.random() < 0.3 else b""
        anonymous = self.visitors[rng.randrange(len(self.visitors))]
        return _TRACK % (
            event,
            props,
            slug,
            title,
            slug,
            user,
            anonymous,
            self.tag,
            self.counter,
            timestamp,
            sent_at,
        )


# -- the load generator (its own process, on the client core) -----------------------------


class RequestBuilder:
    def __init__(self, path: str, port: int, write_key: str, per_request: int, tag: str) -> None:
        self.path = path
        self.per_request = per_request
        self.messages = TrackMessages(seed=hash(tag) & 0xFFFF, tag=tag)
        auth = base64.b64encode(f"{write_key}:".encode()).decode()
        self.head = (
            f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
            f"Authorization: Basic {auth}\r\nContent-Type: application/json\r\n"
            "Content-Length: %d\r\n\r\n"
        ).encode()

    def build(self) -> bytes:
        now = _iso(time.time()).encode()
        if self.path == "/v1/track":
            body = self.messages.message(now, b',"sentAt":"' + now + b'"')
        else:
            parts = [self.messages.message(now, b"") for _ in range(self.per_request)]
            body = b'{"batch":[' + b",".join(parts) + b'],"sentAt":"' + now + b'"}'
        return self.head % len(body) + body


async def _generate(spec: dict[str, Any]) -> dict[str, Any]:
    builder = RequestBuilder(
        spec["path"], spec["port"], spec["write_key"], spec["per_request"], spec["tag"]
    )
    per_request = spec["per_request"]
    clock = time.perf_counter
    begin = clock()
    window_start = begin + spec["warmup"]
    window_end = window_start + spec["duration"]
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    counted = {"events": 0, "acked_total": 0, "short": 0, "body_bytes": 0, "bodies": 0}
    failures: list[str] = []

    async def connection() -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", spec["port"])
        try:
            while clock() < window_end:
                request = builder.build()
                if counted["bodies"] < 100:
                    counted["bodies"] += 1
                    counted["body_bytes"] += len(request) - request.index(b"\r\n\r\n") - 4
                sent = clock()
                writer.write(request)
                head = await reader.readuntil(b"\r\n\r\n")
                status = int(head[9:12])
                marker = head.lower().find(b"content-length:")
                if marker < 0:
                    raise RuntimeError(f"no content-length in {head!r}")
                length = int(head[marker + 15 : head.index(b"\r\n", marker)])
                body = await reader.readexactly(length)
                done = clock()
                accepted = per_request if status == 200 else 0
                if status == 200 and per_request > 1:
                    answer = msgspec.json.decode(body)
                    accepted = int(answer.get("accepted", per_request))
                counted["acked_total"] += accepted
                if window_start <= done <= window_end:
                    latencies.append(done - sent)
                    statuses[status] = statuses.get(status, 0) + 1
                    counted["events"] += accepted
                    if status == 200 and accepted < per_request:
                        counted["short"] += 1
                    if status != 200 and len(failures) < 3:
                        failures.append(body[:300].decode(errors="replace"))
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()

    cpu: dict[str, float] = {}

    async def markers() -> None:
        await asyncio.sleep(max(0.0, window_start - clock()))
        cpu["start"] = time.process_time()
        print("start", flush=True)
        await asyncio.sleep(max(0.0, window_end - clock()))
        cpu["end"] = time.process_time()
        print("end", flush=True)

    await asyncio.gather(markers(), *(connection() for _ in range(spec["connections"])))
    latencies.sort()
    requests = len(latencies)
    duration = spec["duration"]
    return {
        "requests": requests,
        "events": counted["events"],
        "requests_per_s": requests / duration,
        "events_per_s": counted["events"] / duration,
        "p50_ms": _quantile(latencies, 0.50) * 1000,
        "p99_ms": _quantile(latencies, 0.99) * 1000,
        "statuses": {str(k): v for k, v in statuses.items()},
        "errors": requests - statuses.get(200, 0),
        "short_batches": counted["short"],
        "failures": failures,
        "acked_total": counted["acked_total"],
        "generator_cpu": (cpu["end"] - cpu["start"]) / duration,
        "bytes_per_event": counted["body_bytes"] / max(1, counted["bodies"]) / per_request,
    }


def _quantile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    return values[min(len(values) - 1, round(q * (len(values) - 1)))]


def loadgen_main(spec_json: str) -> None:
    result = uvloop.run(_generate(json.loads(spec_json)))
    print(json.dumps(result), flush=True)


# -- a trivial server, to measure what the generator can push -----------------------------


class _TrivialProtocol(asyncio.Protocol):
    ANSWER = (
        b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 16\r\n\r\n"
        b'{"success":true}'
    )

    def __init__(self) -> None:
        self.buffer = b""
        self.transport: Any = None

    def connection_made(self, transport: Any) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while True:
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            head = self.buffer[:end].lower()
            marker = head.find(b"content-length:")
            length = 0
            if marker >= 0:
                stop = head.find(b"\r\n", marker)
                length = int(head[marker + 15 : stop if stop >= 0 else len(head)])
            total = end + 4 + length
            if len(self.buffer) < total:
                return
            self.buffer = self.buffer[total:]
            self.transport.write(self.ANSWER)


def trivial_server_main(port: int) -> None:
    async def serve() -> None:
        loop = asyncio.get_running_loop()
        server = await loop.create_server(_TrivialProtocol, "127.0.0.1", port)
        stop = asyncio.Event()
        loop.add_signal_handler(signal.SIGINT, stop.set)
        loop.add_signal_handler(signal.SIGTERM, stop.set)
        await stop.wait()
        server.close()

    uvloop.run(serve())


# -- processes -------------------------------------------------------------------------------

_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU of a process (all its threads), or None when it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / _TICKS


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class ServerProcess:
    name: str
    command: list[str]
    port: int
    log_path: Path
    env: dict[str, str] = field(default_factory=dict)
    process: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 60.0) -> None:
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            self.command,
            env={**os.environ, **self.env},
            stdout=log,
            stderr=subprocess.STDOUT,
            preexec_fn=_pin(SERVER_CORE),
        )
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.name} exited: {self.log_path.read_text()[-3000:]}")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/healthz", timeout=2):
                    return
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                time.sleep(0.05)
        raise RuntimeError(f"{self.name} did not start: {self.log_path.read_text()[-3000:]}")

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def stop(self) -> None:
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout=40)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None


def run_load(
    server: ServerProcess,
    path: str,
    connections: int,
    per_request: int,
    write_key: str,
    warmup: float,
    duration: float,
    tag: str,
    other_pids: Callable[[], list[int]] = list,
) -> dict[str, Any]:
    """One measurement: the generator runs in its own process on the client core while
    this process samples the CPU the server (and PostgreSQL) used in the window."""
    spec = {
        "path": path,
        "port": server.port,
        "connections": connections,
        "per_request": per_request,
        "write_key": write_key,
        "warmup": warmup,
        "duration": duration,
        "tag": tag,
    }
    process = subprocess.Popen(
        [sys.executable, str(Path(__file__).resolve()), "--loadgen", json.dumps(spec)],
        stdout=subprocess.PIPE,
        text=True,
        preexec_fn=_pin(CLIENT_CORE),
    )
    assert process.stdout is not None
    result: dict[str, Any] | None = None
    samples: dict[str, dict[int, float]] = {}
    others: list[int] = []
    for line in process.stdout:
        line = line.strip()
        if line in ("start", "end"):
            if line == "start":
                others = other_pids()
            samples[line] = {
                pid: cpu for pid in [server.pid, *others] if (cpu := cpu_seconds(pid)) is not None
            }
        elif line.startswith("{"):
            result = json.loads(line)
    if process.wait() != 0 or result is None:
        raise RuntimeError(f"the load generator failed on {server.name} {path}")
    start, end = samples["start"], samples["end"]
    result["server_cpu"] = (end[server.pid] - start[server.pid]) / duration
    result["postgres_cpu"] = (
        sum(end[pid] - start[pid] for pid in others if pid in start and pid in end) / duration
    )
    return result


# -- databases -------------------------------------------------------------------------------


class Databases:
    """Fresh databases migrated by Shopkeeper: SQLite files in a temporary directory, or
    PostgreSQL databases created next to the given one. All removed by close()."""

    def __init__(self, kind: str, pg_url: str) -> None:
        self.kind = kind
        # Next to the results (on the project's disk: a tmpfs would make fsync free).
        RESULTS.mkdir(parents=True, exist_ok=True)
        self.dir = Path(tempfile.mkdtemp(prefix="sk-bench-", dir=RESULTS))
        self.pg_url = normalize_url(pg_url)
        self.created: list[str] = []
        self.admin = None
        if kind == "postgresql":
            self.admin = sa.create_engine(self.pg_url, isolation_level="AUTOCOMMIT")

    def url(self, name: str) -> str:
        if self.kind == "sqlite":
            return f"sqlite:///{self.dir / (name + '.db')}"
        url = sa.engine.make_url(self.pg_url).set(database=self._pg_name(name))
        return url.render_as_string(hide_password=False)

    def _pg_name(self, name: str) -> str:
        return f"sk_bench_{os.getpid()}_{name}"

    def create(self, name: str) -> str:
        """A fresh, migrated database with one source; returns its URL."""
        self._create_empty(name)
        db = Database(self.url(name))
        migrate.upgrade(db)
        db.dispose()
        return self.url(name)

    def _create_empty(self, name: str, template: str | None = None) -> None:
        if self.kind == "sqlite":
            return
        assert self.admin is not None
        pg_name = self._pg_name(name)
        clause = f' TEMPLATE "{self._pg_name(template)}"' if template else ""
        with self.admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{pg_name}" WITH (FORCE)'))
            conn.execute(sa.text(f'CREATE DATABASE "{pg_name}"{clause}'))
        self.created.append(pg_name)

    def copy(self, source: str, name: str) -> str:
        """A copy of database `source` (which nobody may be connected to)."""
        if self.kind == "sqlite":
            for suffix in ("", "-wal", "-shm"):
                src = self.dir / f"{source}.db{suffix}"
                if src.exists():
                    shutil.copy(src, self.dir / f"{name}.db{suffix}")
        else:
            self._create_empty(name, template=source)
        return self.url(name)

    def drop(self, name: str) -> None:
        if self.kind == "sqlite":
            for suffix in ("", "-wal", "-shm"):
                (self.dir / f"{name}.db{suffix}").unlink(missing_ok=True)
            return
        assert self.admin is not None
        pg_name = self._pg_name(name)
        with self.admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{pg_name}" WITH (FORCE)'))
        if pg_name in self.created:
            self.created.remove(pg_name)

    def backend_pids(self, name: str | None = None) -> list[int]:
        """PostgreSQL processes working for a database (or for all of ours), and the WAL
        writer, checkpointer and background writer."""
        if self.admin is None:
            return []
        names = [self._pg_name(name)] if name else list(self.created)
        with self.admin.connect() as conn:
            rows = conn.execute(
                sa.text(
                    "SELECT pid FROM pg_stat_activity "
                    "WHERE datname = ANY(CAST(:names AS text[])) OR "
                    "backend_type IN ('walwriter', 'checkpointer', 'background writer')"
                ),
                {"names": names},
            ).all()
        return [int(row[0]) for row in rows]

    def server_version(self) -> str:
        if self.admin is None:
            return f"SQLite {sqlite3.sqlite_version}"
        with self.admin.connect() as conn:
            return str(conn.execute(sa.text("SHOW server_version")).scalar_one())

    def close(self) -> None:
        for pg_name in list(self.created):
            self.drop(pg_name.removeprefix(f"sk_bench_{os.getpid()}_"))
        if self.admin is not None:
            self.admin.dispose()
        shutil.rmtree(self.dir, ignore_errors=True)


def add_source(url: str) -> tuple[int, str]:
    db = Database(url)
    source = create_source(db, "benchmark web shop", "web", SystemClock().now_ms())
    db.dispose()
    return source.id, source.write_key


def count_events(url: str) -> int:
    db = Database(url)
    try:
        with db.read() as conn:
            return int(conn.execute(sa.text("SELECT count(*) FROM events")).scalar_one())
    finally:
        db.dispose()


# -- the ingest benchmark ----------------------------------------------------------------------


@dataclass(frozen=True)
class Plan:
    warmup: float
    duration: float
    rounds: int
    events: int
    processor_rounds: int


ENDPOINTS = {
    "batch": ("/v1/batch", BATCH_CONNECTIONS, BATCH_SIZE),
    "track": ("/v1/track", TRACK_CONNECTIONS, 1),
}


def generator_capacity(plan: Plan) -> dict[str, Any]:
    """What the load generator pushes against a server that does nothing."""
    port = free_port()
    log_dir = Path(tempfile.mkdtemp(prefix="sk-bench-"))
    server = ServerProcess(
        "trivial server",
        [sys.executable, str(Path(__file__).resolve()), "--trivial-server", str(port)],
        port,
        log_dir / "trivial.log",
    )
    out: dict[str, Any] = {}
    try:
        server.start()
        for name, (path, connections, per_request) in ENDPOINTS.items():
            result = run_load(
                server,
                path,
                connections,
                per_request,
                "key",
                1.0,
                min(plan.duration, 3.0),
                f"gen-{name}-{uuid.uuid4().hex[:6]}",
            )
            out[name] = {
                "requests_per_s": result["requests_per_s"],
                "events_per_s": result["events_per_s"],
                "generator_cpu": result["generator_cpu"],
                "p50_ms": result["p50_ms"],
            }
    finally:
        server.stop()
        shutil.rmtree(log_dir, ignore_errors=True)
    return out


def bench_ingest(dbs: Databases, plan: Plan, profile_dir: Path | None) -> dict[str, Any]:
    urls = {"shopkeeper": dbs.create("ingest_sk"), "baseline": dbs.create("ingest_base")}
    keys = {app: add_source(url) for app, url in urls.items()}
    servers = {
        "shopkeeper": ServerProcess(
            "shopkeeper serve",
            [
                sys.executable,
                "-m",
                "shopkeeper",
                "serve",
                "--database-url",
                urls["shopkeeper"],
                "--port",
                str(port := free_port()),
                "--log-level",
                "warning",
                "--no-worker",
            ],
            port,
            dbs.dir / "shopkeeper.log",
            env={"SHOPKEEPER_SQLITE_SYNCHRONOUS": "FULL"},
        ),
        "baseline": ServerProcess(
            "baseline app",
            [
                sys.executable,
                str(BASELINE_APP),
                "--database-url",
                urls["baseline"],
                "--port",
                str(port := free_port()),
                "--write-key",
                keys["baseline"][1],
                "--source-id",
                str(keys["baseline"][0]),
            ],
            port,
            dbs.dir / "baseline.log",
        ),
    }
    runs: dict[str, dict[str, list[dict[str, Any]]]] = {
        name: {"shopkeeper": [], "baseline": []} for name in ENDPOINTS
    }
    acked = {"shopkeeper": 0, "baseline": 0}
    try:
        for server in servers.values():
            server.start()
        for round_no in range(plan.rounds):
            order = ["shopkeeper", "baseline"]
            if round_no % 2:
                order.reverse()
            for name, (path, connections, per_request) in ENDPOINTS.items():
                for app in order:
                    result = run_load(
                        servers[app],
                        path,
                        connections,
                        per_request,
                        keys[app][1],
                        plan.warmup,
                        plan.duration,
                        f"{app}-{name}-{round_no}-{uuid.uuid4().hex[:6]}",
                        dbs.backend_pids,
                    )
                    acked[app] += result["acked_total"]
                    runs[name][app].append(result)
                    print(
                        f"  {dbs.kind:10} {name:5} {app:10} round {round_no + 1}: "
                        f"{result['events_per_s']:>9,.0f} events/s  "
                        f"p50 {result['p50_ms']:6.1f} ms  p99 {result['p99_ms']:6.1f} ms  "
                        f"server CPU {result['server_cpu']:.0%}  "
                        f"postgres CPU {result['postgres_cpu']:.0%}  "
                        f"generator CPU {result['generator_cpu']:.0%}  "
                        f"errors {result['errors']}",
                        flush=True,
                    )
        if profile_dir is not None:
            acked["shopkeeper"] += profile_server(
                servers["shopkeeper"], keys["shopkeeper"][1], plan, profile_dir, dbs
            )
    finally:
        for server in servers.values():
            server.stop()
    stored = {app: count_events(url) for app, url in urls.items()}
    for app in urls:
        dbs.drop("ingest_sk" if app == "shopkeeper" else "ingest_base")
    return {"runs": runs, "acknowledged": acked, "stored": stored}


def profile_server(
    server: ServerProcess, write_key: str, plan: Plan, out_dir: Path, dbs: Databases
) -> int:
    """Sample the server under load with py-spy (if installed): collapsed stacks, one
    file per endpoint, for flame graphs or a quick `sort | head`. Returns the number of
    events acknowledged meanwhile."""
    py_spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    if not Path(py_spy).exists():
        print("  (py-spy not found: no profile)")
        return 0
    acked = 0
    for name, (path, connections, per_request) in ENDPOINTS.items():
        target = out_dir / f"ingest-{dbs.kind}-{name}.collapsed.txt"
        spy = subprocess.Popen(
            [
                py_spy,
                "record",
                "--pid",
                str(server.pid),
                "--duration",
                str(int(plan.warmup + plan.duration)),
                "--rate",
                "200",
                # Only threads holding the GIL: where the server's CPU goes.
                "--gil",
                "--nonblocking",
                "--threads",
                "--format",
                "raw",
                "--output",
                str(target),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            preexec_fn=_pin(CLIENT_CORE),
        )
        result = run_load(
            server,
            path,
            connections,
            per_request,
            write_key,
            plan.warmup,
            plan.duration,
            f"profile-{name}-{uuid.uuid4().hex[:6]}",
        )
        acked += result["acked_total"]
        spy.wait()
        print(
            f"  profiled {path} ({result['events_per_s']:,.0f} events/s while sampled): "
            f"{target.relative_to(ROOT)}"
        )
    return acked


# -- the processing benchmark --------------------------------------------------------------


def shop_traffic(count: int, seed: int = 11) -> list[dict[str, Any]]:
    """Segment messages of a day in a web shop, in time order: many anonymous visitors
    browsing pages and products and adding to carts, some identifying themselves (some
    returning customers on a new device, which merges profiles), some ordering."""
    rng = random.Random(seed)
    products = catalog()
    customers = max(50, count // 40)
    start = time.time() - 86400
    messages: list[tuple[float, int, dict[str, Any]]] = []
    serial = 0
    while len(messages) < count:
        anonymous = str(uuid.UUID(int=rng.getrandbits(128)))
        moment = start + rng.uniform(0, 80000)
        user: str | None = None
        context = {
            "library": {"name": "analytics.js", "version": "npm:next-1.70.0"},
            "userAgent": _USER_AGENT,
            "locale": "en-US",
        }
        steps: list[tuple[str, Any]] = [("page", rng.choice(("Home", "Category", "Search")))]
        steps += [("page", "Category") for _ in range(rng.randint(0, 3))]
        viewed = rng.sample(products, rng.randint(0, 5))
        steps += [("view", product) for product in viewed]
        cart = [p for p in viewed if rng.random() < 0.3]
        steps += [("add", product) for product in cart]
        if rng.random() < 0.2:
            steps.append(("identify", rng.randrange(customers)))
            if cart and rng.random() < 0.6:
                steps.append(("order", cart))
        for step, value in steps:
            moment += rng.uniform(5, 90)
            serial += 1
            message: dict[str, Any] = {
                "anonymousId": anonymous,
                "messageId": f"ajs-next-{serial:08d}-{seed}",
                "timestamp": _iso(moment),
                "context": context,
            }
            if step == "identify":
                user = f"cust-{value}"
                message.update(
                    type="identify",
                    traits={
                        "email": f"customer{value}@example.com",
                        "first_name": f"Kari{value}",
                        "last_name": "Nordmann",
                        "phone": f"+47 4{value % 10_000_000:07d}",
                    },
                )
            elif step == "page":
                message.update(
                    type="page",
                    name=value,
                    properties={"path": f"/{value.lower()}", "title": f"{value} | Northpeak"},
                )
            elif step in ("view", "add"):
                message.update(
                    type="track",
                    event="Product Viewed" if step == "view" else "Product Added",
                    properties=value.properties(quantity=1 if step == "add" else None),
                )
            else:
                lines = [p.properties(quantity=1) for p in value]
                total = round(sum(p.price for p in value), 2)
                message.update(
                    type="track",
                    event="Order Completed",
                    properties={
                        "order_id": f"O-{serial}",
                        "total": total,
                        "revenue": total,
                        "currency": "USD",
                        "products": lines,
                    },
                )
            if user is not None:
                message["userId"] = user
            messages.append((moment, serial, message))
    messages.sort(key=lambda item: (item[0], item[1]))
    return [message for _, _, message in messages[:count]]


def expected_profiles(messages: list[dict[str, Any]]) -> dict[str, int]:
    """The profiles identity resolution must end with: one per customer (with all the
    anonymous ids that identified as them) and one per visitor who never identified."""
    linked = {m["anonymousId"]: m["userId"] for m in messages if "userId" in m}
    visitors = {m["anonymousId"] for m in messages}
    customers = set(linked.values())
    return {"profiles": len(visitors - set(linked)) + len(customers), "known": len(customers)}


def fill_events(url: str, messages: list[dict[str, Any]]) -> dict[str, int]:
    """Append the messages to the event log as ingest does: the same validator, the same
    rows, the same writer."""
    source_id, _ = add_source(url)
    settings = Settings(database_url=url)
    validator = MessageValidator(JunkFilter(settings.junk_identifiers), Limits())
    db = Database(url)
    writer = EventWriter(db)
    writer.start()
    kinds: dict[str, int] = {}
    try:
        for start in range(0, len(messages), 500):
            received = SystemClock().now_ms()
            envelope = Envelope(received_ms=received, request_ip="203.0.113.7")
            rows = []
            for index, message in enumerate(messages[start : start + 500]):
                accepted = validator.check(message, index=index, size=600, envelope=envelope)
                assert isinstance(accepted, Accepted), accepted
                rows.append(event_row(accepted, source_id, received))
                label = accepted.event or accepted.type
                if accepted.type == "page":
                    label = "page"
                kinds[label] = kinds.get(label, 0) + 1
            result = writer.write_sync(rows)
            assert result.inserted == len(rows), result
    finally:
        writer.stop()
        db.dispose()
    return kinds


def naive_drain(db: Database, batch_size: int) -> int:
    """What any pipeline must do: claim pending events in order, decode them, mark them
    done, one transaction per batch."""
    select = (
        sa.select(t.events.c.seq, t.events.c.type, t.events.c.payload)
        .where(t.events.c.status == t.PENDING)
        .order_by(t.events.c.seq)
        .limit(batch_size)
    )
    mark = (
        t.events.update()
        .where(t.events.c.seq == sa.bindparam("b_seq"))
        .values(status=t.APPLIED, processed_at=sa.bindparam("b_at"))
    )
    total = 0
    seen: set[str] = set()
    while True:
        with db.write() as conn:
            rows = conn.execute(select).all()
            if not rows:
                return total
            now = int(time.time() * 1000)
            for row in rows:
                payload = row[2]
                seen.add(payload.get("userId") or payload["anonymousId"])
            conn.execute(mark, [{"b_seq": row[0], "b_at": now} for row in rows])
        total += len(rows)


def drain_shopkeeper(db: Database, url: str) -> int:
    settings = Settings(database_url=url, sqlite_synchronous="FULL")
    return make_processor(db, settings, SystemClock(), Metrics()).drain()


def outcome(url: str) -> dict[str, int]:
    db = Database(url)
    queries = {
        "applied": "SELECT count(*) FROM events WHERE status = 1",
        "pending": "SELECT count(*) FROM events WHERE status = 0",
        "parked": "SELECT count(*) FROM events WHERE status = 2",
        "profiles": "SELECT count(*) FROM profiles WHERE merged_into IS NULL",
        "known_profiles": "SELECT count(*) FROM profiles WHERE merged_into IS NULL AND is_known",
        "merges": "SELECT count(*) FROM merges WHERE status = 'merged'",
        "identities": "SELECT count(*) FROM identities",
    }
    try:
        with db.read() as conn:
            return {name: int(conn.execute(sa.text(q)).scalar_one()) for name, q in queries.items()}
    finally:
        db.dispose()


def bench_processor(dbs: Databases, plan: Plan) -> dict[str, Any]:
    batch_size = Settings().pipeline_batch_size
    print(f"  {dbs.kind:10} filling the event log with {plan.events:,} events", flush=True)
    messages = shop_traffic(plan.events)
    dbs.create("proc_template")
    mix = fill_events(dbs.url("proc_template"), messages)
    if dbs.kind == "sqlite":
        with contextlib.closing(sqlite3.connect(dbs.dir / "proc_template.db")) as conn:
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    runs: dict[str, list[dict[str, Any]]] = {"shopkeeper": [], "baseline": []}
    previous = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {SERVER_CORE})
    try:
        for round_no in range(plan.processor_rounds):
            order = ["shopkeeper", "baseline"]
            if round_no % 2:
                order.reverse()
            for app in order:
                name = f"proc_{app}_{round_no}"
                url = dbs.copy("proc_template", name)
                db = Database(url, sqlite_synchronous="FULL")
                background = {pid: cpu_seconds(pid) for pid in dbs.backend_pids(name)}
                wall, cpu = time.perf_counter(), time.process_time()
                if app == "shopkeeper":
                    done = drain_shopkeeper(db, url)
                else:
                    done = naive_drain(db, batch_size)
                wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
                # The pool keeps its connections: their backends' CPU is this run's.
                pg_cpu = 0.0
                for pid in dbs.backend_pids(name):
                    now = cpu_seconds(pid)
                    if now is not None:
                        pg_cpu += now - (background.get(pid) or 0.0)
                db.dispose()
                result = {
                    "events": done,
                    "seconds": wall,
                    "events_per_s": done / wall,
                    "process_cpu_s": cpu,
                    "events_per_cpu_s": done / cpu if cpu else float("nan"),
                    "postgres_cpu_s": pg_cpu,
                    "outcome": outcome(url),
                }
                runs[app].append(result)
                dbs.drop(name)
                print(
                    f"  {dbs.kind:10} process {app:10} round {round_no + 1}: "
                    f"{result['events_per_s']:>9,.0f} events/s  ({wall:.1f} s wall, "
                    f"{cpu:.1f} s CPU here, {pg_cpu:.1f} s CPU in postgres)",
                    flush=True,
                )
    finally:
        os.sched_setaffinity(0, previous)
        dbs.drop("proc_template")
    return {
        "runs": runs,
        "mix": mix,
        "batch_size": batch_size,
        "expected": expected_profiles(messages),
    }


# -- the report ----------------------------------------------------------------------------


def machine() -> dict[str, Any]:
    model = "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break

    def git(*args: str) -> str:
        return subprocess.run(
            ["git", "-C", str(ROOT), *args], capture_output=True, text=True, check=False
        ).stdout.strip()

    commit = git("rev-parse", "--short", "HEAD")
    if git("status", "--porcelain", "--", "src"):
        commit += " + uncommitted changes in src/"
    return {
        "cpu": model,
        "cores": os.cpu_count(),
        "server_core": SERVER_CORE,
        "client_core": CLIENT_CORE,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "load_average": os.getloadavg(),
        "commit": commit,
    }


def _median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


@dataclass
class Figure:
    name: str
    unit: str
    shopkeeper: float
    baseline: float | None
    target: str = ""
    met: bool | None = None

    @property
    def ratio(self) -> float | None:
        if not self.baseline:
            return None
        return self.shopkeeper / self.baseline


def figures(
    ingest: dict[str, Any] | None, process: dict[str, Any] | None, kind: str
) -> list[Figure]:
    out: list[Figure] = []
    if ingest is not None:
        for name, (path, _, per_request) in ENDPOINTS.items():
            runs = ingest["runs"][name]
            sk = _median([r["events_per_s"] for r in runs["shopkeeper"]])
            base = _median([r["events_per_s"] for r in runs["baseline"]])
            label = f"{path} ({per_request} per request)" if per_request > 1 else path
            fig = Figure(f"ingest {label}", "events/s", sk, base, f">= {INGEST_RATIO_TARGET:.0%}")
            fig.met = bool(fig.ratio is not None and fig.ratio >= INGEST_RATIO_TARGET)
            out.append(fig)
            for q in ("p50", "p99"):
                out.append(
                    Figure(
                        f"  ack latency {q}, {path}",
                        "ms",
                        _median([r[f"{q}_ms"] for r in runs["shopkeeper"]]),
                        _median([r[f"{q}_ms"] for r in runs["baseline"]]),
                    )
                )
    if process is not None:
        runs = process["runs"]
        sk = _median([r["events_per_s"] for r in runs["shopkeeper"]])
        base = _median([r["events_per_s"] for r in runs["baseline"]])
        target = f">= {PROCESSING_TARGET:,.0f}/s" if kind == "sqlite" else ""
        fig = Figure("processing (identity + profiles)", "events/s", sk, base, target)
        if kind == "sqlite":
            fig.met = sk >= PROCESSING_TARGET
        out.append(fig)
        out.append(
            Figure(
                "  per CPU-second of the worker",
                "events/s",
                _median([r["events_per_cpu_s"] for r in runs["shopkeeper"]]),
                _median([r["events_per_cpu_s"] for r in runs["baseline"]]),
            )
        )
    return out


def _fmt(value: float | None, unit: str) -> str:
    if value is None:
        return "-"
    if unit == "ms":
        return f"{value:,.1f} ms"
    return f"{value:,.0f}"


def table(kind: str, rows: list[Figure]) -> str:
    header = ("figure", "Shopkeeper", "baseline", "ratio", "target", "met?")
    lines = [header]
    for fig in rows:
        ratio = fig.ratio
        lines.append(
            (
                fig.name + ("" if fig.unit == "ms" else f" ({fig.unit})"),
                _fmt(fig.shopkeeper, fig.unit),
                _fmt(fig.baseline, fig.unit),
                f"{ratio:.2f}" if ratio is not None else "-",
                fig.target or "-",
                {True: "yes", False: "NO", None: "-"}[fig.met],
            )
        )
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]

    def render(line: tuple[str, ...]) -> str:
        cells = [line[0].ljust(widths[0])] + [
            cell.rjust(width) for cell, width in zip(line[1:], widths[1:], strict=True)
        ]
        return "| " + " | ".join(cells) + " |"

    rule = "|" + "|".join("-" * (w + 1) + (":" if i else "-") for i, w in enumerate(widths)) + "|"
    return "\n".join([f"{kind}:", render(lines[0]), rule, *(render(line) for line in lines[1:])])


def check(ingest: dict[str, Any] | None, process: dict[str, Any] | None, n: int) -> list[str]:
    """Problems that make the figures meaningless (errors, lost or duplicated events)."""
    problems = []
    if ingest is not None:
        for name, apps in ingest["runs"].items():
            for app, runs in apps.items():
                for run in runs:
                    if run["errors"] or run["short_batches"]:
                        problems.append(
                            f"{app} {name}: {run['errors']} error answers, "
                            f"{run['short_batches']} short batches: {run['failures']}"
                        )
        for app, acked in ingest["acknowledged"].items():
            if ingest["stored"][app] != acked:
                problems.append(
                    f"{app}: {acked} events acknowledged but {ingest['stored'][app]} stored"
                )
    if process is not None:
        for app, runs in process["runs"].items():
            for run in runs:
                if run["events"] != n or run["outcome"]["pending"]:
                    problems.append(f"{app} processed {run['events']} of {n}: {run['outcome']}")
                if run["outcome"]["parked"]:
                    problems.append(f"{app} parked {run['outcome']['parked']} events")
        expected = process["expected"]
        for run in process["runs"]["shopkeeper"]:
            found = run["outcome"]
            if (found["profiles"], found["known_profiles"]) != (
                expected["profiles"],
                expected["known"],
            ):
                problems.append(
                    f"identity resolution ended with {found['profiles']} profiles "
                    f"({found['known_profiles']} known); the traffic has "
                    f"{expected['profiles']} ({expected['known']} known)"
                )
    return problems


def bench_database(kind: str, args: argparse.Namespace, plan: Plan, generator: Any) -> bool:
    print(f"\n== {kind}", flush=True)
    dbs = Databases(kind, args.postgres_url)
    ingest = process = None
    try:
        version = dbs.server_version()
        profile_dir = RESULTS if args.py_spy else None
        if not args.skip_ingest:
            ingest = bench_ingest(dbs, plan, profile_dir)
        if not args.skip_processing:
            process = bench_processor(dbs, plan)
    finally:
        dbs.close()
    rows = figures(ingest, process, kind)
    print()
    print(table(f"{kind} ({version})", rows))
    problems = check(ingest, process, plan.events)
    for problem in problems:
        print(f"PROBLEM: {problem}")
    RESULTS.mkdir(parents=True, exist_ok=True)
    report = {
        "benchmark": "ingest",
        "database": kind,
        "database_version": version,
        "when": _iso(time.time()),
        "machine": machine(),
        "plan": plan.__dict__,
        "generator_capacity": generator,
        "figures": [
            {
                "figure": fig.name.strip(),
                "unit": fig.unit,
                "shopkeeper": fig.shopkeeper,
                "baseline": fig.baseline,
                "ratio": fig.ratio,
                "target": fig.target or None,
                "met": fig.met,
            }
            for fig in rows
        ],
        "ingest": ingest,
        "processing": process,
        "problems": problems,
    }
    path = RESULTS / f"ingest-{kind}.json"
    path.write_text(json.dumps(report, indent=2) + "\n")
    print(f"results: {path.relative_to(ROOT)}")
    return not problems


def main() -> int:
    parser = argparse.ArgumentParser(
        description="Ingest and processing throughput against a baseline."
    )
    parser.add_argument("--database", choices=("sqlite", "postgresql", "both"), default="both")
    parser.add_argument("--quick", action="store_true", help="Short runs, one round.")
    parser.add_argument(
        "--postgres-url",
        default=os.environ.get("SHOPKEEPER_TEST_DATABASE_URL", DEFAULT_PG_URL),
        help="An existing PostgreSQL database; benchmark databases are created beside it.",
    )
    parser.add_argument("--skip-ingest", action="store_true")
    parser.add_argument("--skip-processing", action="store_true")
    parser.add_argument(
        "--py-spy", action="store_true", help="Also profile the server under load with py-spy."
    )
    parser.add_argument("--loadgen", help=argparse.SUPPRESS)
    parser.add_argument("--trivial-server", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.loadgen:
        loadgen_main(args.loadgen)
        return 0
    if args.trivial_server:
        trivial_server_main(args.trivial_server)
        return 0

    if args.quick:
        plan = Plan(warmup=1.0, duration=3.0, rounds=1, events=10_000, processor_rounds=1)
    else:
        plan = Plan(warmup=2.0, duration=10.0, rounds=3, events=50_000, processor_rounds=3)
    info = machine()
    print(
        f"{info['cpu']}, {info['cores']} cores, Python {info['python']}; server on core "
        f"{SERVER_CORE}, load generator on core {CLIENT_CORE}; load average "
        f"{', '.join(f'{x:.2f}' for x in info['load_average'])}"
    )
    if len(CORES) < 2:
        print("warning: one core only; the server and the load generator share it")
    generator = None
    if not args.skip_ingest:
        generator = generator_capacity(plan)
        print(
            "load generator against a trivial server: "
            + ", ".join(
                f"{name} {g['requests_per_s']:,.0f} requests/s ({g['events_per_s']:,.0f} "
                f"events/s, generator CPU {g['generator_cpu']:.0%})"
                for name, g in generator.items()
            )
        )
    kinds = ("sqlite", "postgresql") if args.database == "both" else (args.database,)
    ok = True
    for kind in kinds:
        ok = bench_database(kind, args, plan, generator) and ok
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
