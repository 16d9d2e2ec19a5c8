"""A large import runs in flat memory: ten times the rows, the same peak (tracemalloc
counts every Python allocation, in the reader, the mapping, the validator and the
writer's thread alike). SQLite only: the streaming does not depend on the database."""

from __future__ import annotations

import gc
import shutil
import tracemalloc
from pathlib import Path

import pytest

from shopkeeper.bootstrap import build_services
from shopkeeper.clock import FixedClock
from shopkeeper.config import Settings
from shopkeeper.imports.model import ImportOptions
from shopkeeper.imports.service import run_import
from tests.harness import NOW

pytestmark = pytest.mark.slow


def customers_file(path: Path, rows: int) -> Path:
    with path.open("w", encoding="utf-8") as out:
        out.write("customer_id,email,first_name,last_name,city,country,accepts_marketing,tier\n")
        for i in range(rows):
            out.write(
                f"c{i},person{i}@example.com,First{i},Last{i},Oslo,NO,"
                f"{'yes' if i % 2 else 'no'},gold\n"
            )
    return path


def import_peak(tmp_path: Path, template: Path, rows: int, *, traced: bool = True) -> int:
    database = tmp_path / f"db-{rows}.db"
    shutil.copy(template, database)
    # No fsync per commit: this test is about memory, and it is slow enough traced.
    settings = Settings(database_url=f"sqlite:///{database}", sqlite_synchronous="OFF")
    services = build_services(settings, clock=FixedClock(NOW), run_worker=False)
    path = customers_file(tmp_path / f"customers-{rows}.csv", rows)
    gc.collect()
    if traced:
        tracemalloc.start()
    try:
        summary = run_import(services, "customers", path, path.name, ImportOptions(), "cli")
        peak = tracemalloc.get_traced_memory()[1] if traced else 0
    finally:
        tracemalloc.stop()
        services.db.dispose()
    assert (summary.status, summary.imported, summary.rejected) == ("done", rows, 0)
    return peak


def test_ten_times_the_rows_takes_no_more_memory(tmp_path: Path, sqlite_template: Path) -> None:
    import_peak(tmp_path, sqlite_template, 50, traced=False)  # one-time caches, imports
    small = import_peak(tmp_path, sqlite_template, 2_000)
    large = import_peak(tmp_path, sqlite_template, 20_000)
    # Holding as little as 30 bytes per row would show as 18,000 * 30 = 540 KB more.
    assert large - small < 512 * 1024, (small, large)
    assert large < small * 1.25, (small, large)
