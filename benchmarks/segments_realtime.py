"""The cost of real-time segment membership per applied event, beside a baseline run in
the same process.

    .venv/bin/python benchmarks/segments_realtime.py [--events 30000] [--segments 50]
        [--database sqlite|postgresql|both] [--postgres URL] [--rounds 3]

A fresh database is filled with realistic shop traffic (benchmarks/ingest.py's
generator: page views, product views, carts, sign-ins, orders, through the real ingest
validator and writer). Copies of it are then drained by the real pipeline
(`Processor.drain()`, every hook included), pinned to one core:

- baseline: no segment saved (the membership hook runs and finds nothing to do);
- with segments: the same events with N real-time segments saved: the 25 built-in
  segments and N-25 more of the shapes marketers write (event counts in windows, sums of
  revenue, property filters, nested segments).

The difference of the medians, divided by the number of events, is what real-time
membership costs per applied event (loading the facts the conditions need, evaluating
every segment for every touched profile, writing entries and exits). Target (issue 4):
under 2 ms per event for 50 segments. Results: benchmarks/results/segments-realtime-*.json.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import sqlalchemy as sa

sys.path.insert(0, str(Path(__file__).resolve().parent))

from ingest import RESULTS, Databases, fill_events, shop_traffic
from shopkeeper.bootstrap import make_processor
from shopkeeper.clock import SystemClock
from shopkeeper.config import Settings
from shopkeeper.segments import indexes, service
from shopkeeper.segments.builtins import BUILTINS
from shopkeeper.storage import tables as t
from shopkeeper.storage.db import Database


def extra_conditions(count: int) -> list[tuple[str, str]]:
    shapes = [
        lambda i: f'did "Product Viewed" at least {i + 2} times within {7 * (i + 1)} days',
        lambda i: (
            f'total revenue of "Order Completed" within {30 * (i + 1)} days >= {50 * (i + 1)}'
        ),
        lambda i: f"orders_count >= {i + 1} and last_seen_at within {i + 1} days",
        lambda i: (
            f'did "Product Added" within {i + 1} days where price >= {10 * i} '
            f'and not did "Order Completed" within {i + 1} days'
        ),
        lambda i: f'in segment "cart-abandoners" and cart_value >= {25 * i}',
        lambda i: f"email is set and page_views_count >= {3 * (i + 1)}",
    ]
    out = []
    for n in range(count):
        shape = shapes[n % len(shapes)]
        out.append((f"custom-{n}", shape(n // len(shapes))))
    return out


def save_segments(url: str, count: int, indexed: bool = False) -> int:
    """N real-time segments saved; `indexed`: and the segment indexes built for them as
    the scheduler would (PostgreSQL), so that their cost to profile writes is counted."""
    db = Database(url)
    now = SystemClock().now_ms()
    saved = 0
    try:
        for builtin in BUILTINS[: min(count, len(BUILTINS))]:
            service.create(
                db, now, actor="benchmark", key=builtin.key, name=builtin.name,
                condition=builtin.condition, realtime=True,
            )  # fmt: skip
            saved += 1
        for key, condition in extra_conditions(count - saved):
            service.create(db, now, actor="benchmark", key=key, name=key, condition=condition)
            saved += 1
        if indexed:
            indexes.sync(db, Settings(database_url=url), now)
    finally:
        db.dispose()
    return saved


def drain(url: str) -> tuple[float, int, int]:
    """Seconds to apply every pending event, events applied, membership changes."""
    db = Database(url)
    try:
        processor = make_processor(db, Settings(database_url=url), SystemClock(), None)
        started = time.perf_counter()
        done = processor.drain()
        seconds = time.perf_counter() - started
        with db.read() as conn:
            changes = int(
                conn.execute(sa.select(sa.func.count()).select_from(t.segment_history)).scalar()
                or 0
            )
    finally:
        db.dispose()
    return seconds, done, changes


def run(kind: str, pg_url: str, events: int, segments: int, rounds: int) -> dict[str, Any]:
    dbs = Databases(kind, pg_url)
    try:
        base = dbs.create("rt_events")
        fill_events(base, shop_traffic(events))
        baseline: list[float] = []
        measured: list[float] = []
        indexed: list[float] = []
        variants = [("plain", 0, baseline), ("segments", segments, measured)]
        if kind == "postgresql":
            variants.append(("indexed", segments, indexed))
        applied = changes = 0
        for n in range(rounds):
            for label, count, into in variants:
                name = f"rt_{label}_{n}"
                url = dbs.copy("rt_events", name)
                if count:
                    save_segments(url, count, indexed=label == "indexed")
                seconds, applied, changed = drain(url)
                into.append(seconds)
                if count:
                    changes = changed
                dbs.drop(name)
                print(f"  {kind} round {n + 1} {label}: {seconds:.2f} s", flush=True)
    finally:
        dbs.close()
    base_s = statistics.median(baseline)
    with_s = statistics.median(measured)
    return {
        "database": kind,
        "events": applied,
        "segments": segments,
        "rounds": rounds,
        "baseline_seconds": round(base_s, 3),
        "with_segments_seconds": round(with_s, 3),
        "membership_changes": changes,
        "ms_per_event": round((with_s - base_s) * 1000 / max(applied, 1), 4),
        "baseline_ms_per_event": round(base_s * 1000 / max(applied, 1), 4),
        "ratio": round(with_s / base_s, 3),
        # PostgreSQL: the same segments with their indexes (segments/indexes.py) built.
        **(
            {
                "with_indexes_seconds": round(statistics.median(indexed), 3),
                "ms_per_event_with_indexes": round(
                    (statistics.median(indexed) - base_s) * 1000 / max(applied, 1), 4
                ),
            }
            if indexed
            else {}
        ),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=30_000)
    parser.add_argument("--segments", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--database", choices=["sqlite", "postgresql", "both"], default="both")
    parser.add_argument(
        "--postgres", default="postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
    )
    args = parser.parse_args()
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {0})
    kinds = ["sqlite", "postgresql"] if args.database == "both" else [args.database]
    results = []
    for kind in kinds:
        result = run(kind, args.postgres, args.events, args.segments, args.rounds)
        results.append(result)
        RESULTS.mkdir(parents=True, exist_ok=True)
        (RESULTS / f"segments-realtime-{kind}.json").write_text(json.dumps(result, indent=2))
    print()
    print(f"{'database':<11} {'events':>7} {'segs':>5} {'baseline s':>11} {'with s':>8} "
          f"{'ms/event':>9} {'ratio':>6} {'changes':>8}")  # fmt: skip
    for r in results:
        print(
            f"{r['database']:<11} {r['events']:>7} {r['segments']:>5} "
            f"{r['baseline_seconds']:>11.2f} {r['with_segments_seconds']:>8.2f} "
            f"{r['ms_per_event']:>9.3f} {r['ratio']:>6.2f} {r['membership_changes']:>8}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
