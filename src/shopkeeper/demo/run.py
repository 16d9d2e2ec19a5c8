"""`shopkeeper demo`: a fresh embedded database, the demo shop generated and replayed
through the real tracking API and pipeline (a `shopkeeper serve` process), then where to
log in; the server keeps serving until Ctrl-C (unless --no-serve).
"""

from __future__ import annotations

import contextlib
import json
import secrets
import sqlite3
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from shopkeeper.demo import DEFAULT_CUSTOMERS, DEFAULT_SEED
from shopkeeper.demo.emit import Truth
from shopkeeper.demo.generator import DemoShop
from shopkeeper.demo.locales import COUNTRIES
from shopkeeper.demo.model import DAY
from shopkeeper.demo.replay import (
    Replayer,
    ReplayError,
    ReplayStats,
    admin_post,
    pipeline_status,
    wait_for_pipeline,
)
from shopkeeper.demo.server import DemoError, ServerProcess, free_port, port_is_free

DEFAULT_PORT = 8000
UI_EMAIL = "admin@baanliving.example"
SHOP_CURRENCY = "USD"
# The demo's exchange rates (units of the shop currency for one unit), matching the
# prices the generator converts from the catalog's dollars.
EXCHANGE_RATES = {c.currency: round(1 / c.per_usd, 6) for c in COUNTRIES if c.currency != "USD"}
# Source names: the imports use "pos" and "crm" too, so files imported into the demo
# store land in the same sources.
SOURCE_NAMES = {"web": "web shop", "app": "app", "pos": "pos", "crm": "crm"}
_MARKER = "demo_store"


@dataclass(frozen=True)
class DemoOptions:
    customers: int = DEFAULT_CUSTOMERS
    seed: int = DEFAULT_SEED
    serve: bool = True
    database: Path = Path("shopkeeper-demo.db")
    host: str = "127.0.0.1"
    port: int | None = None  # None: 8000 when serving, any free port with --no-serve


@dataclass
class DemoResult:
    database_url: str
    base_url: str
    ui_email: str
    ui_password: str
    admin_key: str
    write_keys: dict[str, str]
    truth: Truth
    replay: ReplayStats
    pipeline: dict[str, Any]
    timings: dict[str, float] = field(default_factory=dict)
    server_peak_kb: int | None = None

    @property
    def events_per_second(self) -> float:
        """End to end: from the first request to the pipeline drained."""
        seconds = self.timings.get("ingest_s") or 0.0
        return self.replay.accepted / seconds if seconds else 0.0


def _is_demo_database(path: Path) -> bool:
    """Whether `path` is a database this command made (and may therefore recreate)."""
    if path.stat().st_size == 0:
        return True
    try:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    except sqlite3.Error:
        return False
    try:
        if conn.execute("SELECT 1 FROM meta WHERE key = ?", (_MARKER,)).fetchone():
            return True
        # Made by the first version of `shopkeeper demo`, which left no marker.
        return bool(conn.execute("SELECT 1 FROM sources WHERE name = 'demo web shop'").fetchone())
    except sqlite3.Error:
        return False
    finally:
        conn.close()


def fresh_database(path: Path) -> str:
    """Delete a previous demo database at `path` (never anything else); its URL."""
    if path.is_dir():
        raise DemoError(f"{path} is a directory; give --database a file name.")
    if path.exists() and not _is_demo_database(path):
        raise DemoError(
            f"{path} exists and is not a demo database; the demo recreates its database on "
            "every run, so choose another --database or remove that file yourself."
        )
    for suffix in ("", "-wal", "-shm", "-journal"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    path.parent.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{path}"


def _setup_store(database_url: str, shop: DemoShop, now_ms: int) -> dict[str, Any]:
    """Schema, sources, an admin key, a UI user and the catalog; returns the secrets."""
    import sqlalchemy as sa
    from pydantic import ValidationError

    from shopkeeper.admin.keys import create_admin_key
    from shopkeeper.catalog.products import parse_product
    from shopkeeper.catalog.service import upsert_products
    from shopkeeper.config import Settings
    from shopkeeper.ingest.sources import create_source, ensure_source
    from shopkeeper.storage import tables as t
    from shopkeeper.storage.migrate import ensure_schema, open_database
    from shopkeeper.web.users import create_user

    try:
        settings = Settings(database_url=database_url)
    except ValidationError as exc:
        raise DemoError(f"bad setting: {exc.errors()[0]['msg']}") from None
    db = open_database(settings)
    try:
        ensure_schema(db, create_if_empty=True)
        with db.write() as conn:
            marker = {"seed": shop.seed, "customers": shop.customers, "created_at": now_ms}
            conn.execute(t.meta.insert().values(key=_MARKER, value=json.dumps(marker)))
        keys = {}
        for source, name in SOURCE_NAMES.items():
            if source in ("pos", "crm"):
                keys[source] = ensure_source(db, name, source, now_ms).write_key
            else:
                keys[source] = create_source(db, name, source, now_ms, actor="demo").write_key
        admin_key, _ = create_admin_key(db, "demo", now_ms, actor="demo")
        password = secrets.token_urlsafe(12)
        create_user(db, UI_EMAIL, password, now_ms, name="Demo admin", actor="demo")
        products = [parse_product(product) for product in shop.products]
        upsert_products(
            db, products, now_ms, low_stock_threshold=settings.low_stock_threshold, actor="demo"
        )
        with db.read() as conn:
            count = conn.execute(sa.select(sa.func.count()).select_from(t.products)).scalar_one()
        return {
            "write_keys": keys,
            "admin_key": admin_key,
            "password": password,
            "products": int(count),
        }
    finally:
        db.dispose()


def _replay(
    console: Console, shop: DemoShop, base_url: str, secrets_: dict[str, Any], server: ServerProcess
) -> tuple[ReplayStats, dict[str, Any], float, float]:
    """Send the history, then wait for the pipeline; returns the replay's figures, the
    last pipeline status and the seconds both took."""
    window = shop.window
    days = max(1, round((shop.now_ms - window.start_ms) / DAY))
    progress = Progress(
        TextColumn("{task.description:<26}"),
        BarColumn(),
        TextColumn("{task.fields[detail]}"),
        TimeElapsedColumn(),
        console=console,
        transient=False,
    )
    sent_task = progress.add_task("Replaying a year of shop", total=days, detail="")
    applied_task = progress.add_task("Pipeline applying events", total=None, detail="")
    state = {"acked": 0}

    def on_sent(acked: int, newest: int) -> None:
        state["acked"] = acked
        if newest:
            done = min(days, (newest - window.start_ms) / DAY)
            progress.update(sent_task, completed=done, detail=f"{acked:,} events sent")
        else:
            progress.update(sent_task, detail=f"{acked:,} events sent")

    def on_status(status: dict[str, Any]) -> None:
        acked = state["acked"]
        applied = max(0, acked - int(status["pending"]))
        progress.update(
            applied_task,
            total=max(acked, 1),
            completed=applied,
            detail=f"{applied:,} applied, {int(status['pending']):,} waiting",
        )

    replayer = Replayer(base_url, secrets_["write_keys"], on_sent=on_sent)
    started = time.monotonic()
    with progress:
        stop_polling = threading.Event()

        def poll() -> None:
            pause = 0.5
            while not stop_polling.wait(pause):
                began = time.monotonic()
                # A missed poll only leaves the bar behind for a moment.
                with contextlib.suppress(OSError, ReplayError):
                    on_status(pipeline_status(base_url, secrets_["admin_key"]))
                # Counting a backlog of millions takes a while: poll less often then,
                # so that the server spends its time applying events, not counting them.
                pause = max(0.5, 10 * (time.monotonic() - began))

        poller = threading.Thread(target=poll, name="demo-status", daemon=True)
        poller.start()
        try:
            stats = replayer.run(shop.messages())
        finally:
            stop_polling.set()
            poller.join()
        progress.update(sent_task, completed=days, detail=f"{stats.accepted:,} events sent")
        replayed = time.monotonic()
        status = wait_for_pipeline(
            base_url, secrets_["admin_key"], on_status=on_status, still_running=server.running
        )
    drained = time.monotonic()
    return stats, status, replayed - started, drained - (stats.first_request_at or started)


def _enable_segments(base_url: str, admin_key: str) -> dict[str, int]:
    """RFM scores for the replayed history, then every built-in segment (each evaluated
    over the population as it is saved): key -> size."""
    from shopkeeper.segments.builtins import BUILTINS

    admin_post(base_url, admin_key, "/api/scores/rfm/recompute")
    sizes = {}
    for builtin in BUILTINS:
        saved = admin_post(base_url, admin_key, f"/api/segments/builtins/{builtin.key}")
        sizes[builtin.key] = int(saved["size"])
    return sizes


# Switched on before the replay, so that the demo's shoppers walk through them and the
# outbox shows what they would have been sent.
LIVE_PLAYBOOKS = ("welcome", "abandoned_cart")


def _enable_journeys(base_url: str, admin_key: str, live: bool) -> list[str]:
    """live: the playbooks that run during the replay; else every other playbook, as a
    draft for the marketer to look at (after the segments some of them need)."""
    from shopkeeper.journeys.playbooks import PLAYBOOKS

    keys = [p.key for p in PLAYBOOKS if (p.key in LIVE_PLAYBOOKS) == live]
    for key in keys:
        admin_post(
            base_url, admin_key, f"/api/playbooks/{key}",
            body={"status": "active" if live else "draft"},
        )  # fmt: skip
    return keys


def run_demo(options: DemoOptions, console: Console) -> DemoResult:
    """Build and replay the demo store; with options.serve, keep serving until Ctrl-C."""
    if options.customers < 1:
        raise DemoError("--customers must be at least 1.")
    began = time.monotonic()
    display_host = "127.0.0.1" if options.host in ("0.0.0.0", "::", "") else options.host  # noqa: S104
    port = options.port
    if port is None:
        port = DEFAULT_PORT if options.serve else free_port(display_host)
    if not port_is_free(options.host, port):
        raise DemoError(f"port {port} on {options.host} is in use; choose another with --port.")
    path = options.database.expanduser()
    database_url = fresh_database(path)
    now_ms = time.time_ns() // 1_000_000
    shop = DemoShop(options.customers, options.seed, now_ms)
    console.print(
        f"Demo store [bold]Baan Living[/bold] in {path}: {len(shop.products)} products, "
        f"{options.customers:,} people, {shop.params.days} days, seed {options.seed}",
        soft_wrap=True,
        highlight=False,
    )
    secrets_ = _setup_store(database_url, shop, now_ms)
    base_url = f"http://{display_host}:{port}"
    env = {
        "SHOPKEEPER_SHOP_CURRENCY": SHOP_CURRENCY,
        "SHOPKEEPER_EXCHANGE_RATES": json.dumps(EXCHANGE_RATES),
    }
    server = ServerProcess(database_url, options.host, port, env, console)
    server.start()
    try:
        server.wait_ready(base_url)
        setup_s = time.monotonic() - began
        try:
            _enable_journeys(base_url, secrets_["admin_key"], live=True)
            stats, status, replay_s, ingest_s = _replay(console, shop, base_url, secrets_, server)
        except ReplayError as exc:
            raise DemoError(f"replaying the demo failed: {exc}{server.tail()}") from None
        try:
            segments = _enable_segments(base_url, secrets_["admin_key"])
            drafts = _enable_journeys(base_url, secrets_["admin_key"], live=False)
        except ReplayError as exc:
            raise DemoError(
                f"setting up the demo's segments failed: {exc}{server.tail()}"
            ) from None
        console.print(
            f"RFM scores computed; {len(segments)} built-in segments enabled "
            f"({sum(1 for size in segments.values() if size)} with members); journeys "
            f"{', '.join(LIVE_PLAYBOOKS)} running, {len(drafts)} more playbooks as drafts",
            highlight=False,
        )
        result = DemoResult(
            database_url=database_url,
            base_url=base_url,
            ui_email=UI_EMAIL,
            ui_password=secrets_["password"],
            admin_key=secrets_["admin_key"],
            write_keys=secrets_["write_keys"],
            truth=shop.truth,
            replay=stats,
            pipeline=status,
            timings={
                "setup_s": setup_s,
                "replay_s": replay_s,
                "ingest_s": ingest_s,
                "total_s": time.monotonic() - began,
            },
            server_peak_kb=server.peak_kb(),
        )
        _print_ready(console, result, secrets_["products"])
        if not options.serve:
            console.print(
                "Built, not served (--no-serve). To explore it: "
                f"shopkeeper serve --database-url {database_url}",
                soft_wrap=True,
                highlight=False,
            )
        if options.serve:
            console.print(f"Serving on [bold]{base_url}[/bold]; Ctrl-C stops.", soft_wrap=True)
            server.serve_until_interrupted()
            console.print("Stopped.")
        return result
    finally:
        server.stop()


def _print_ready(console: Console, result: DemoResult, products: int) -> None:
    truth = result.truth

    def say(text: str) -> None:
        # soft_wrap: a key is never broken over two lines, so it can be copied whole.
        console.print(text, soft_wrap=True, highlight=False)

    say(
        f"Ready in {result.timings['total_s']:.0f} s: {truth.people:,} people "
        f"({truth.known_people:,} known customers), {result.replay.accepted:,} events, "
        f"{truth.orders_completed:,} orders, {products} products "
        f"({result.events_per_second:,.0f} events/s from first request to pipeline drained)."
    )
    if result.pipeline.get("parked"):
        say(f"[yellow]{result.pipeline['parked']} events were parked[/yellow]")
    if result.replay.rejected_count:
        say(f"[yellow]{result.replay.rejected_count} events were rejected[/yellow]")
    say(f"  Admin UI:            {result.base_url}/login")
    say(f"  UI email:            {result.ui_email}")
    say(f"  UI password:         {result.ui_password}")
    say(f"  Admin key (/api/*):  {result.admin_key}")
    say(f"  Write key (/v1/*):   {result.write_keys['web']}")
    say(f"  API docs:            {result.base_url}/docs")
    say(f"  Database:            {result.database_url}")
