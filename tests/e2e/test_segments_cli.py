"""`shopkeeper segments` and `shopkeeper scheduler` as operators run them: subprocesses
on a real SQLite database, with the pipeline fed through the API."""

from __future__ import annotations

from pathlib import Path

import pytest

from shopkeeper.storage import migrate
from shopkeeper.storage.db import Database
from tests.e2e.test_cli import shopkeeper

pytestmark = pytest.mark.slow


def test_segments_and_scheduler_from_the_command_line(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'shop.db'}"
    db = Database(url)
    migrate.upgrade(db)
    db.dispose()

    def run(*args: str) -> tuple[int, str, str]:
        done = shopkeeper(*args, database_url=url, cwd=tmp_path)
        return done.returncode, done.stdout, done.stderr

    code, out, err = run("segments", "save", "buyers", "--condition", "orders_count >= 1")
    assert code == 0, err
    assert "segment buyers saved: 0 members" in out
    code, out, err = run("segments", "save", "broken", "--condition", "orders_count >=")
    assert code == 1
    assert "line 1, column 16" in err
    assert "Traceback" not in err
    code, out, err = run("segments", "preview", "known")
    assert (code, out.splitlines()[0]) == (0, "0 profiles")
    code, out, _ = run("segments", "list")
    assert "buyers" in out
    assert "real-time" in out
    code, out, err = run("segments", "refresh", "buyers")
    assert code == 0, err
    assert out.startswith("buyers: 0 members")
    code, out, err = run("segments", "refresh", "nope")
    assert code == 1
    assert 'no segment "nope"' in err
    code, out, err = run("scheduler", "run", "segments.sizes")
    assert (code, out.strip()) == (0, "segments.sizes: done"), err
    code, out, err = run("scheduler", "run", "nope")
    assert code == 1
    assert "tasks: audiences.sync" in err
    code, out, err = run("scheduler", "status")
    assert code == 0, err
    for name in ("segments.refresh", "scores.rfm", "audiences.sync"):
        assert name in out
