"""The admin UI in a real Chromium (Debian's, driven by Playwright) against a real
`shopkeeper serve` filled with events through /v1: log in, read the dashboard, find a
customer, read their visits, keys and CSRF, log out. Screenshots of each step go to
test-artifacts/browser/ for people to look at."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, Page, expect

from shopkeeper.analytics.customers import recent_customers
from shopkeeper.demo.run import EXCHANGE_RATES
from shopkeeper.storage.db import Database
from tests.browser.conftest import EMAIL, PASSWORD, open_page, shot
from tests.live import LiveServer, free_port

pytestmark = pytest.mark.slow


def _open(browser: Browser) -> tuple[Page, list[str]]:
    # Expected: the refused login's own 401, and the demo catalog's pictures, which live
    # on the shop's (made-up) servers that this machine cannot reach.
    return open_page(browser, ("(Unauthorized)", "net::ERR_NAME_NOT_RESOLVED"))


def test_a_marketer_logs_in_finds_a_customer_and_reads_their_visits(
    browser: Browser, shop: LiveServer
) -> None:
    page, problems = _open(browser)
    page.goto(shop.url + "/customers")
    expect(page).to_have_url(re.compile(r"/login\?next=/customers$"))
    page.fill("#email", EMAIL)
    page.fill("#password", "not my password")
    page.click("button[type=submit]")
    expect(page.locator("#login-error")).to_have_text(
        "That email and password do not match an account. Check both and try again."
    )
    shot(page, "01-login-bad-password")

    page.fill("#password", PASSWORD)
    page.click("button[type=submit]")
    expect(page).to_have_url(shop.url + "/customers")
    page.click("nav >> text=Dashboard")
    expect(page.get_by_test_id("customers-total")).to_have_text("5")
    expect(page.get_by_test_id("customers-known")).to_have_text("2")
    expect(page.get_by_test_id("revenue")).to_have_text("$1,370.00")
    expect(page.get_by_test_id("orders")).to_have_text("3")
    expect(page.get_by_test_id("conversion")).to_have_text("40.0%")
    # The live card polls with htmx (so htmx runs under the page's security policy).
    with page.expect_response(lambda r: r.url.endswith("/dashboard/live"), timeout=10_000):
        pass
    expect(page.get_by_test_id("pipeline-status")).to_contain_text("Up to date")
    shot(page, "02-dashboard")

    page.click("nav >> text=Customers")
    page.fill("#q", "lima")
    expect(page).to_have_url(re.compile(r"/customers\?q=lima$"))  # htmx pushed the search
    result = page.locator("#results a", has_text="Ana Lima")
    expect(result).to_have_count(1)
    shot(page, "03-customer-search")
    result.click()
    expect(page.locator("h1")).to_contain_text("Ana Lima")
    visits = page.get_by_test_id("visit")
    expect(visits).to_have_count(3)
    expect(visits.nth(0).locator("summary")).to_have_text(
        ["Added Bergen lamp to the cart", "Viewed Bergen lamp", "Searched for “lamp”"]
    )
    expect(visits.nth(1)).to_contain_text("5 events over 9 min")
    expect(visits.nth(2)).to_contain_text("Placed order A-050 · $80.00")
    # Times were rewritten to the browser's time zone by the page's script.
    assert page.locator("time[data-local]").count() == 0
    visits.nth(1).locator("summary", has_text="Placed order A-100").click()
    expect(visits.nth(1).get_by_role("row", name="Revenue $1,250.00")).to_be_visible()
    shot(page, "04-customer")
    assert problems == []


def test_keys_csrf_and_logout(browser: Browser, shop: LiveServer) -> None:
    page, problems = _open(browser)
    page.goto(shop.url + "/login")
    page.fill("#email", EMAIL)
    page.fill("#password", PASSWORD)
    page.click("button[type=submit]")
    expect(page).to_have_url(shop.url + "/")

    # A form posted by another page with the browser's own cookie, but without the
    # session's token, is refused.
    forged: Any = page.request.post(
        shop.url + "/sources", form={"name": "forged", "kind": "web"}, max_redirects=0
    )
    assert forged.status == 403
    assert "sent from another site" in forged.text()

    page.click("nav >> text=Sources & keys")
    page.fill("#source-name", "Web shop NO")
    page.select_option("#source-kind", "web")
    page.click("text=Create source")
    expect(page.locator(".notice")).to_contain_text("Source created.")
    expect(page.locator("#connect h2")).to_have_text("Connect your shop: Web shop NO")
    page.fill("#key-name", "nightly export")
    page.click("text=Create key")
    key = page.locator("#new-key").inner_text()
    assert key.startswith("sk_")
    assert (
        httpx.get(shop.url + "/api/sources", headers={"Authorization": f"Bearer {key}"}).json()[
            "sources"
        ][-1]["name"]
        == "Web shop NO"
    )
    shot(page, "05-sources")

    page.once("dialog", lambda dialog: dialog.accept())
    page.locator("tr", has_text="Web shop NO").locator("button", has_text="Revoke").click()
    expect(page.locator(".notice")).to_contain_text("Write key revoked.")

    page.click("text=Log out")
    expect(page.locator(".notice")).to_have_text("You have logged out.")
    shot(page, "06-logged-out")
    page.goto(shop.url + "/customers")
    expect(page).to_have_url(re.compile(r"/login\?next=/customers$"))
    assert problems == []


def test_the_demo_store_in_the_browser(browser: Browser, tmp_path: Path) -> None:
    """`shopkeeper demo` builds a shop and prints a login; with it, a customer from the
    demo data is found and their visits read."""
    database = tmp_path / "demo.db"
    built = subprocess.run(
        [sys.executable, "-m", "shopkeeper", "demo", "--customers", "80", "--no-serve",
         "--database", str(database)],
        capture_output=True, text=True, timeout=300, cwd=tmp_path,
        env={**os.environ, "COLUMNS": "200", "NO_COLOR": "1"},
    )  # fmt: skip
    assert built.returncode == 0, built.stderr
    email = re.search(r"UI email:\s+(\S+)", built.stdout)
    password = re.search(r"UI password:\s+(\S+)", built.stdout)
    admin_key = re.search(r"Admin key \(/api/\*\):\s+(\S+)", built.stdout)
    assert email, built.stdout
    assert password, built.stdout
    assert admin_key, built.stdout
    url = f"sqlite:///{database}"
    db = Database(url)
    with db.read() as conn:
        known, _total = recent_customers(conn, known=True, limit=500)
    db.dispose()
    buyer = next(c for c in known if c["orders_count"] >= 2 and c["display_name"])
    server = LiveServer(
        url,
        "",
        admin_key.group(1),
        free_port(),
        tmp_path / "server.log",
        # As `shopkeeper demo` serves it: its shop sells in several currencies.
        env={"SHOPKEEPER_EXCHANGE_RATES": json.dumps(EXCHANGE_RATES)},
    )
    server.start()
    try:
        page, problems = _open(browser)
        page.goto(server.url + "/")
        page.fill("#email", email.group(1))
        page.fill("#password", password.group(1))
        page.click("button[type=submit]")
        expect(page.get_by_test_id("customers-known")).to_have_text(str(len(known)))
        shot(page, "07-demo-dashboard")
        page.click("nav >> text=Customers")
        page.fill("#q", buyer["display_name"])
        page.locator("#results a", has_text=buyer["display_name"]).first.click()
        expect(page.locator("h1")).to_contain_text(buyer["display_name"])
        expect(page.get_by_test_id("visit").first).to_be_visible()
        expect(page.locator(".event .what", has_text="Placed order").first).to_be_visible()
        shot(page, "08-demo-customer")
        page.click("nav >> text=Catalog")
        expect(page.locator("table tbody tr")).to_have_count(50)
        shot(page, "09-demo-catalog")
        assert problems == []
    finally:
        server.kill()
