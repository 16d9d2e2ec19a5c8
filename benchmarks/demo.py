"""The demo store end to end: generating it, and replaying it through the real tracking
API and pipeline, for 10,000 and 100,000 people (1,000 and 10,000 with --quick).

    .venv/bin/python benchmarks/demo.py [--quick] [--sizes 10000,100000]

For each size, three child processes (so that each peak memory figure is its own):

- generate: `DemoShop` builds the history and every message is JSON-encoded, as the
  replay does, without sending anything. Time, messages/s and peak memory.
- baseline: the same stream written straight into a plain SQLite table (WAL,
  synchronous=FULL like Shopkeeper, a commit per 1,000 messages): the cheapest durable
  store of the same data, on the same disk, in the same run.
- demo: `shopkeeper demo --no-serve` (run_demo in the child, with its real server
  process): the time from the first request to the pipeline drained, events/s over that
  window, the whole command's wall time, peak memory of the generating and replaying
  process (ru_maxrss) and of the server (VmHWM from /proc), the database size. The run
  counts as failed if an event was rejected or parked, or if the profiles differ from the
  generator's ground truth (known customers, all profiles, orders).

Results: a table on stdout and benchmarks/results/demo.json. Databases go to a temporary
directory under benchmarks/results/ (the project's disk; a tmpfs would make fsync free)
and are removed afterwards.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import io
import json
import os
import platform
import resource
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import msgspec

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
NOW_MS = 1_795_435_200_000  # 2026-11-23T08:00:00Z: generation figures do not drift by date
SEED = 1


def _peak_kb() -> int:
    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)


def child_generate(people: int) -> dict[str, Any]:
    from shopkeeper.demo.generator import DemoShop

    encode = msgspec.json.Encoder().encode
    began = time.perf_counter()
    shop = DemoShop(people, SEED, NOW_MS)
    count = size = 0
    for _source, message in shop.messages():
        size += len(encode(message))
        count += 1
    seconds = time.perf_counter() - began
    return {
        "seconds": seconds,
        "messages": count,
        "messages_per_s": count / seconds,
        "bytes_per_message": size / count,
        "peak_kb": _peak_kb(),
        "truth": shop.truth.summary(),
    }


def child_baseline(people: int, directory: Path) -> dict[str, Any]:
    from shopkeeper.demo.generator import DemoShop

    path = directory / f"baseline-{people}.db"
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute(
        "CREATE TABLE events (seq INTEGER PRIMARY KEY, source TEXT NOT NULL, "
        "message_id TEXT NOT NULL UNIQUE, timestamp TEXT NOT NULL, payload TEXT NOT NULL)"
    )
    encode = msgspec.json.Encoder().encode
    began = time.perf_counter()
    rows: list[tuple[str, str, str, str]] = []
    count = 0

    def flush() -> None:
        conn.execute("BEGIN")
        conn.executemany(
            "INSERT INTO events (source, message_id, timestamp, payload) VALUES (?, ?, ?, ?)",
            rows,
        )
        conn.execute("COMMIT")
        rows.clear()

    for source, message in DemoShop(people, SEED, NOW_MS).messages():
        rows.append((source, message["messageId"], message["timestamp"], encode(message).decode()))
        count += 1
        if len(rows) >= 1000:
            flush()
    flush()
    seconds = time.perf_counter() - began
    conn.close()
    size = path.stat().st_size
    return {"seconds": seconds, "messages": count, "events_per_s": count / seconds, "bytes": size}


def _check(database_url: str, truth: Any) -> list[str]:
    import sqlalchemy as sa

    from shopkeeper.storage import tables as t
    from shopkeeper.storage.db import Database

    db = Database(database_url)
    try:
        with db.read() as conn:
            live = t.profiles.c.merged_into.is_(None)
            profiles = conn.execute(
                sa.select(sa.func.count()).select_from(t.profiles).where(live)
            ).scalar_one()
            known = conn.execute(
                sa.select(sa.func.count())
                .select_from(t.profiles)
                .where(live, t.profiles.c.is_known)
            ).scalar_one()
            orders = conn.execute(
                sa.text(
                    "SELECT coalesce(sum(json_extract(computed, '$.orders_count')), 0) "
                    "FROM profiles WHERE merged_into IS NULL"
                )
            ).scalar_one()
    finally:
        db.dispose()
    problems = []
    for name, got, want in (
        ("profiles", profiles, truth.expected_profiles),
        ("known profiles", known, truth.known_people),
        ("orders", orders, truth.orders_counted),
    ):
        if got != want:
            problems.append(f"{name}: {got} in the database, {want} generated")
    return problems


def child_demo(people: int, directory: Path) -> dict[str, Any]:
    from rich.console import Console

    from shopkeeper.demo.run import DemoOptions, run_demo

    path = directory / f"demo-{people}.db"
    began = time.perf_counter()
    result = run_demo(
        DemoOptions(customers=people, seed=SEED, serve=False, database=path),
        Console(file=io.StringIO(), width=160),
    )
    wall = time.perf_counter() - began
    problems = _check(result.database_url, result.truth)
    if result.replay.rejected_count:
        problems.append(f"{result.replay.rejected_count} events rejected")
    if result.pipeline.get("parked"):
        problems.append(f"{result.pipeline['parked']} events parked")
    stored = result.replay.accepted + result.replay.duplicates
    if stored != sum(result.truth.messages.values()):
        problems.append(f"{stored} events stored of {sum(result.truth.messages.values())}")
    size = sum(
        Path(f"{path}{suffix}").stat().st_size
        for suffix in ("", "-wal")
        if Path(f"{path}{suffix}").exists()
    )
    return {
        "wall_seconds": wall,
        "setup_seconds": result.timings["setup_s"],
        "replay_seconds": result.timings["replay_s"],
        "ingest_seconds": result.timings["ingest_s"],
        "events": result.replay.accepted,
        "requests": result.replay.requests,
        "retries": result.replay.retries,
        "events_per_s": result.events_per_second,
        "client_peak_kb": _peak_kb(),
        "server_peak_kb": result.server_peak_kb,
        "database_bytes": size,
        "problems": problems,
        "truth": result.truth.summary(),
    }


def _run_child(mode: str, people: int, directory: Path) -> dict[str, Any]:
    command = [sys.executable, __file__, "--child", mode, "--people", str(people)]
    command += ["--dir", str(directory)]
    done = subprocess.run(command, capture_output=True, text=True, check=False, cwd=ROOT)
    if done.returncode != 0:
        raise RuntimeError(f"{mode} {people} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


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
        "python": platform.python_version(),
        "sqlite": sqlite3.sqlite_version,
        "platform": platform.platform(),
        "load_average_before": os.getloadavg(),
        "commit": commit,
    }


def _mb(kb: float | None) -> str:
    return "-" if kb is None else f"{kb / 1024:,.0f} MB"


def report(runs: list[dict[str, Any]]) -> str:
    head = (
        "| people | events | generate (s) | generate (msg/s) | generator peak | "
        "first request to drained (s) | events/s end to end | baseline events/s | ratio | "
        "demo wall (s) | client peak | server peak | database |"
    )
    lines = [head, "|" + "|".join("---:" for _ in range(head.count("|") - 1)) + "|"]
    for run in runs:
        gen, base, demo = run["generate"], run["baseline"], run["demo"]
        lines.append(
            f"| {run['people']:,} | {demo['events']:,} | {gen['seconds']:.1f} | "
            f"{gen['messages_per_s']:,.0f} | {_mb(gen['peak_kb'])} | "
            f"{demo['ingest_seconds']:.1f} | {demo['events_per_s']:,.0f} | "
            f"{base['events_per_s']:,.0f} | {demo['events_per_s'] / base['events_per_s']:.2f} | "
            f"{demo['wall_seconds']:.1f} | {_mb(demo['client_peak_kb'])} | "
            f"{_mb(demo['server_peak_kb'])} | {demo['database_bytes'] / 2**20:,.0f} MB |"
        )
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="1,000 and 10,000 people.")
    parser.add_argument("--sizes", help="Comma-separated numbers of people.")
    parser.add_argument("--child", choices=("generate", "baseline", "demo"), help=argparse.SUPPRESS)
    parser.add_argument("--people", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--dir", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        if args.child == "generate":
            out = child_generate(args.people)
        elif args.child == "baseline":
            out = child_baseline(args.people, args.dir)
        else:
            out = child_demo(args.people, args.dir)
        print(json.dumps(out))
        return 0

    sizes = [1_000, 10_000] if args.quick else [10_000, 100_000]
    if args.sizes:
        sizes = [int(size) for size in args.sizes.split(",")]
    RESULTS.mkdir(parents=True, exist_ok=True)
    info = machine()
    runs = []
    failed = False
    directory = Path(tempfile.mkdtemp(prefix="demo-", dir=RESULTS))
    try:
        for people in sizes:
            print(f"== {people:,} people", flush=True)
            run: dict[str, Any] = {"people": people}
            for mode in ("generate", "baseline", "demo"):
                began = time.perf_counter()
                run[mode] = _run_child(mode, people, directory)
                print(f"   {mode}: {time.perf_counter() - began:.0f} s", flush=True)
                for leftover in directory.iterdir():
                    leftover.unlink()
            problems = run["demo"]["problems"]
            if problems:
                failed = True
                print("   FAILED: " + "; ".join(problems), flush=True)
            runs.append(run)
    finally:
        shutil.rmtree(directory, ignore_errors=True)
    table = report(runs)
    print(table)
    out = {
        "when": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "machine": info,
        "load_average_after": os.getloadavg(),
        "seed": SEED,
        "runs": runs,
        "table": table,
        "failed": failed,
    }
    (RESULTS / "demo.json").write_text(json.dumps(out, indent=2) + "\n")
    print(f"written to {RESULTS / 'demo.json'}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
