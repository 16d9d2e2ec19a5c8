"""`shopkeeper journeys` as operators run it: subprocesses on a real SQLite database."""

from __future__ import annotations

from pathlib import Path

import pytest

from shopkeeper.storage import migrate
from shopkeeper.storage.db import Database
from tests.e2e.test_cli import shopkeeper

pytestmark = pytest.mark.slow


def test_journeys_from_the_command_line(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'shop.db'}"
    db = Database(url)
    migrate.upgrade(db)
    db.dispose()

    def run(*args: str) -> tuple[int, str, str]:
        done = shopkeeper(*args, database_url=url, cwd=tmp_path)
        return done.returncode, done.stdout, done.stderr

    code, out, err = run("journeys", "playbooks")
    assert code == 0, err
    assert "abandoned_cart" in out
    code, out, err = run("journeys", "enable", "abandoned_cart")
    assert (code, out.strip()) == (0, "journey abandoned_cart saved from playbook abandoned_cart")
    code, out, err = run("journeys", "enable", "no_such_playbook")
    assert code == 1
    assert 'no playbook "no_such_playbook"' in err

    good = tmp_path / "nurture.yaml"
    good.write_text(
        "name: Nurture\nentry: {event: Signed Up}\nsteps:\n"
        "  - {id: hello, type: send, channel: email, template: cart_reminder}\n"
    )
    code, out, err = run("journeys", "save", "nurture", str(good))
    assert (code, out.strip()) == (0, "journey nurture created (draft)"), err
    code, out, err = run("journeys", "save", "nurture", str(good))
    assert (code, out.strip()) == (0, "journey nurture: version 2 saved"), err
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: Bad\nentry: {event: Signed Up}\nsteps:\n  - {id: x, type: wait}\n")
    code, out, err = run("journeys", "save", "bad", str(bad))
    assert code == 1
    assert "steps[0].duration" in err
    assert "Traceback" not in err
    code, out, err = run("journeys", "status", "nurture", "active")
    assert (code, out.strip()) == (0, "journey nurture is active"), err
    code, out, err = run("journeys", "status", "nurture", "archived")
    assert (code, out.strip()) == (0, "journey nurture is archived; 0 stopped"), err
    code, out, err = run("journeys", "list")
    assert code == 0, err
    assert "nurture" in out
    assert "archived" in out
