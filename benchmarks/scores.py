"""RFM recompute and lead score refresh on a synthetic population.

    .venv/bin/python benchmarks/scores.py [--sizes 100000,1000000] [--postgres URL]

For each size and database (SQLite in benchmarks/results/, and PostgreSQL when --postgres
names a server: a scratch database is created there and dropped), in a child process so
that each peak memory figure is its own:

- baseline: the recompute's read alone (the same streamed SELECT with JSON extraction,
  rows fetched and dropped): what any RFM job must pay to see the population.
- rfm first: recompute_rfm on a table of scores never computed (every customer written).
- rfm again: the same population an hour later (nothing changed: nothing written).
- rfm 1% new orders: 1% of customers order again, then a recompute.
- grid: rfm_grid (the dashboard's query).
- lead refresh: refresh_lead_scores over one lead score row per profile.

Peak memory is the measuring process's (the population is written by another one):
the interpreter and SQLAlchemy, plus what the recompute holds.

Population: 60% of profiles are customers (orders 1 + geometric, revenue 20-400 per
order, last order in the last two years), the rest visitors without orders.
"""

from __future__ import annotations

import argparse
import json
import random
import resource
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
NOW_MS = 1_795_435_200_000  # 2026-11-23T08:00:00Z
DAY = 86_400_000


def populate(url: str, size: int) -> None:
    import sqlalchemy as sa

    from shopkeeper.storage import migrate
    from shopkeeper.storage import tables as t
    from shopkeeper.storage.db import Database
    from shopkeeper.timeutil import ms_to_iso

    db = Database(url, sqlite_synchronous="NORMAL")
    migrate.upgrade(db)
    rnd = random.Random(1)
    chunk = 10_000
    for start in range(1, size + 1, chunk):
        profiles, scores = [], []
        for pid in range(start, min(size + 1, start + chunk)):
            computed: dict[str, Any] = {"events_count": 3}
            if rnd.random() < 0.6:
                orders = 1
                while rnd.random() < 0.45:
                    orders += 1
                computed["orders_count"] = orders
                computed["total_revenue"] = round(orders * rnd.uniform(20, 400), 2)
                computed["last_order_at"] = ms_to_iso(NOW_MS - rnd.randrange(730 * DAY))
            profiles.append(
                {
                    "id": pid,
                    "created_at": NOW_MS,
                    "updated_at": NOW_MS,
                    "merged_into": None,
                    "is_known": True,
                    "display_name": None,
                    "traits": {},
                    "trait_times": {},
                    "computed": computed,
                }
            )
            scores.append(
                {
                    "profile_id": pid,
                    "lead_score": rnd.uniform(0, 100),
                    "lead_score_at": NOW_MS - rnd.randrange(30 * DAY),
                }
            )
        with db.write() as conn:
            conn.execute(t.profiles.insert(), profiles)
            conn.execute(t.profile_scores.insert(), scores)
    with db.write() as conn:
        if not db.is_sqlite:
            conn.execute(sa.text("ANALYZE"))
    db.dispose()


def reorder(url: str, share: float) -> int:
    """`share` of the customers order again now."""
    import sqlalchemy as sa

    from shopkeeper.storage import tables as t
    from shopkeeper.storage.db import Database
    from shopkeeper.timeutil import ms_to_iso

    db = Database(url)
    rnd = random.Random(2)
    with db.read() as conn:
        rows = conn.execute(sa.select(t.profiles.c.id, t.profiles.c.computed)).all()
    customers = [(pid, c) for pid, c in rows if c.get("orders_count")]
    chosen = rnd.sample(customers, int(len(customers) * share))
    with db.write() as conn:
        conn.execute(
            t.profiles.update().where(t.profiles.c.id == sa.bindparam("pid")),
            [
                {
                    "pid": pid,
                    "computed": {
                        **c,
                        "orders_count": c["orders_count"] + 1,
                        "total_revenue": c["total_revenue"] + 100,
                        "last_order_at": ms_to_iso(NOW_MS + 3_600_000),
                    },
                }
                for pid, c in chosen
            ],
        )
    db.dispose()
    return len(chosen)


def child(url: str, size: int) -> dict[str, Any]:
    from shopkeeper.segments.scores.lead import Decay
    from shopkeeper.segments.scores.lead_job import refresh_lead_scores
    from shopkeeper.segments.scores.rfm_job import customer_values, recompute_rfm, rfm_grid
    from shopkeeper.storage.db import Database

    out: dict[str, Any] = {"size": size}
    db = Database(url)

    began = time.perf_counter()
    with db.read() as conn:
        for _row in conn.execution_options(yield_per=10_000).execute(customer_values()):
            pass
    out["baseline_read_s"] = round(time.perf_counter() - began, 2)
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss

    for label, at in (("rfm_first", NOW_MS), ("rfm_again", NOW_MS + 3_600_000)):
        began = time.perf_counter()
        summary = recompute_rfm(db, at)
        out[f"{label}_s"] = round(time.perf_counter() - began, 2)
        out[f"{label}_written"] = summary.changed
    out["customers"] = summary.customers
    out["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    out["rss_before_rfm_mb"] = round(rss_before / 1024, 1)

    out["reordered"] = reorder(url, 0.01)
    began = time.perf_counter()
    summary = recompute_rfm(db, NOW_MS + 7_200_000)
    out["rfm_1pct_s"] = round(time.perf_counter() - began, 2)
    out["rfm_1pct_written"] = summary.changed

    began = time.perf_counter()
    with db.read() as conn:
        grid = rfm_grid(conn)
    out["grid_s"] = round(time.perf_counter() - began, 3)
    assert grid.customers == summary.customers

    began = time.perf_counter()
    out["lead_rows"] = refresh_lead_scores(db, NOW_MS + DAY, Decay.of(30, 100))
    out["lead_refresh_s"] = round(time.perf_counter() - began, 2)
    out["ratio_rfm_first_to_read"] = round(out["rfm_first_s"] / out["baseline_read_s"], 1)
    out["ratio_rfm_again_to_read"] = round(out["rfm_again_s"] / out["baseline_read_s"], 1)
    db.dispose()
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", default="100000")
    parser.add_argument("--postgres", default=None, help="a server URL, e.g. postgresql://...")
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    parser.add_argument("--populate", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.populate:
        populate(args.populate[0], int(args.populate[1]))
        return
    if args.child:
        print(json.dumps(child(args.child[0], int(args.child[1]))))
        return

    import sqlalchemy as sa

    from shopkeeper.storage.db import normalize_url

    RESULTS.mkdir(parents=True, exist_ok=True)
    results = []
    for size in (int(s) for s in args.sizes.split(",")):
        targets: list[tuple[str, str, Any]] = []
        scratch = Path(tempfile.mkdtemp(dir=RESULTS, prefix="scores-"))
        targets.append(("sqlite", f"sqlite:///{scratch / 'bench.db'}", None))
        if args.postgres:
            server = normalize_url(args.postgres)
            name = f"sk_bench_{uuid.uuid4().hex[:8]}"
            admin = sa.create_engine(server, isolation_level="AUTOCOMMIT")
            with admin.connect() as conn:
                conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
            url = sa.engine.make_url(server).set(database=name)
            targets.append(("postgresql", url.render_as_string(hide_password=False), admin))
        for dialect, url, admin in targets:
            try:
                began = time.perf_counter()
                subprocess.run([sys.executable, __file__, "--populate", url, str(size)], check=True)
                populated = round(time.perf_counter() - began, 1)
                done = subprocess.run(
                    [sys.executable, __file__, "--child", url, str(size)],
                    check=True,
                    capture_output=True,
                    text=True,
                )
                result = {
                    "database": dialect,
                    "populate_s": populated,
                    **json.loads(done.stdout.strip().splitlines()[-1]),
                }
            finally:
                if admin is not None:
                    with admin.connect() as conn:
                        db_name = sa.engine.make_url(url).database
                        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{db_name}"'))
                    admin.dispose()
            print(json.dumps(result))
            results.append(result)
        shutil.rmtree(scratch, ignore_errors=True)
    (RESULTS / "scores.json").write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
