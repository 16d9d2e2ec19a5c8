"""`shopkeeper users create|list` as an operator runs them: a subprocess, a password
typed twice at the prompt or given as an option, one-line errors, no traceback."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from shopkeeper.storage import migrate
from shopkeeper.storage.db import Database
from shopkeeper.web.users import authenticate

pytestmark = pytest.mark.slow


def users(*args: str, url: str, stdin: str = "", cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "shopkeeper", "users", *args, "--database-url", url],
        input=stdin,
        capture_output=True,
        text=True,
        cwd=cwd,
        env={**os.environ, "NO_COLOR": "1", "COLUMNS": "200"},
        timeout=60,
        # No controlling terminal: the password prompt reads the piped input.
        start_new_session=True,
    )


def test_create_and_list_users(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'shop.db'}"
    db = Database(url)
    migrate.upgrade(db)

    made = users("create", "Ana@Shop.example", "--name", "Ana", "--password", "a long secret",
                 url=url, cwd=tmp_path)  # fmt: skip
    assert (made.returncode, made.stderr) == (0, "")
    assert made.stdout == (
        "user 1 (ana@shop.example) created; they can log in to the admin UI now\n"
    )
    prompted = users("create", "ben@shop.example", url=url, cwd=tmp_path,
                     stdin="another secret\nanother secret\n")  # fmt: skip
    assert prompted.returncode == 0, prompted.stderr
    assert prompted.stdout.endswith(
        "user 2 (ben@shop.example) created; they can log in to the admin UI now\n"
    )
    assert authenticate(db, "ben@shop.example", "another secret") is not None

    for args, stdin, error in [
        (("ana@shop.example", "--password", "a long secret"), "",
         "error: A user with the email ana@shop.example already exists.\n"),
        (("not-an-email", "--password", "a long secret"), "",
         "error: 'not-an-email' is not an email address.\n"),
        (("cy@shop.example", "--password", "short"), "",
         "error: A password needs at least 10 characters.\n"),
        (("cy@shop.example",), "one secret!\nanother one\n",
         "error: no password given (use --password, or type it when asked)\n"),
    ]:  # fmt: skip
        refused = users("create", *args, url=url, stdin=stdin, cwd=tmp_path)
        assert refused.returncode == 1, refused.stdout
        assert refused.stderr.endswith(error)
        assert "Traceback" not in refused.stderr

    listed = users("list", url=url, cwd=tmp_path)
    assert listed.returncode == 0
    lines = [line for line in listed.stdout.splitlines() if "@" in line]
    assert len(lines) == 2
    assert "ana@shop.example" in lines[0]
    assert "Ana" in lines[0]
    assert "never" in lines[0]
    assert "active" in lines[0]
    assert "ben@shop.example" in lines[1]
    db.dispose()
