"""The segment benchmark (benchmarks/segments.py) at a tiny size: its DuckDB baseline
must count exactly the people the product's compiled segments count, or its ratios would
compare different work."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

BENCHMARK = Path(__file__).resolve().parents[2] / "benchmarks" / "segments.py"


@pytest.fixture(scope="module")
def bench() -> ModuleType:
    spec = importlib.util.spec_from_file_location("segments_benchmark", BENCHMARK)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up by name
    spec.loader.exec_module(module)
    return module


def test_duckdb_counts_what_the_compiled_segments_count(bench: ModuleType, tmp_path: Path) -> None:
    population = bench.Population(4000, seed=1)
    url = f"sqlite:///{tmp_path / 'bench.db'}"
    population.write([bench.SqliteSink(url), bench.DuckCsvSink(tmp_path / "duck")])
    con = bench.load_duckdb(tmp_path / "duck")
    counts = {}
    for segment in bench.SEGMENTS:
        ours = bench.count_sql(url, segment, runs=1)["count"]
        theirs = bench.count_duckdb(con, segment, runs=1)["count"]
        assert ours == theirs, segment.name
        counts[segment.name] = ours
    # Nobody in a segment would make the comparison say little.
    assert all(n > 0 for n in counts.values()), counts
    events = con.execute("SELECT count(*) FROM events").fetchone()[0]
    assert 8 * 4000 < events < 12 * 4000  # about ten events per person
