"""What every browser test shares: Debian's Chromium driven by Playwright, a real
`shopkeeper serve` filled with the hand-made shop's events and a UI user, screenshots in
test-artifacts/browser/, and pages that collect console errors."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser, Page, sync_playwright

from shopkeeper.clock import SystemClock
from shopkeeper.storage.db import Database
from shopkeeper.web.users import create_user
from tests.browser.shop import shop_events
from tests.live import LiveServer, live_server

CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "browser"
EMAIL = "marta@shop.example"
PASSWORD = "correct horse battery"


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: install Debian's chromium (apt-get install chromium)")
    with sync_playwright() as p:
        launched = p.chromium.launch(
            executable_path=CHROMIUM,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
            ],
        )
        yield launched
        launched.close()


@pytest.fixture
def shop(tmp_path: Path) -> Iterator[LiveServer]:
    url = f"sqlite:///{tmp_path / 'shop.db'}"
    with live_server(url, tmp_path) as server:
        db = Database(url)
        create_user(db, EMAIL, PASSWORD, SystemClock().now_ms(), name="Marta")
        db.dispose()
        sent = httpx.post(
            f"{server.url}/v1/batch",
            json={"batch": shop_events(SystemClock().now_ms())},
            auth=(server.write_key, ""),
        )
        assert sent.json()["accepted"] == 17
        server.wait_drained()
        yield server


def shot(page: Page, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def open_page(browser: Browser, expected: tuple[str, ...] = ()) -> tuple[Page, list[str]]:
    """A new page and the list its problems go to: a script error, a missing file or a
    resource the content security policy blocked (console errors containing one of the
    `expected` texts excepted)."""
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    problems: list[str] = []
    page.on(
        "console",
        lambda m: (
            problems.append(m.text)
            if m.type == "error" and not any(text in m.text for text in expected)
            else None
        ),
    )
    page.on("pageerror", lambda e: problems.append(str(e)))
    return page, problems
