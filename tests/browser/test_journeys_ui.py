"""The journey pages in a real Chromium (Debian's, driven by Playwright) against a real
`shopkeeper serve`: a marketer enables the abandoned-cart playbook, reads its graph, opens
the editor, breaks the YAML and sees the mistake at its line as they type, and reads an
email in the outbox, shown in a sandboxed frame, and sets frequency caps and quiet hours.
Screenshots go to test-artifacts/browser/."""

from __future__ import annotations

import re

import pytest
import sqlalchemy as sa
from playwright.sync_api import Browser, Page, expect

from shopkeeper.clock import SystemClock
from shopkeeper.messaging import messages
from shopkeeper.storage import tables as t
from shopkeeper.storage.db import Database
from tests.browser.conftest import EMAIL, PASSWORD, open_page, shot
from tests.live import LiveServer

pytestmark = pytest.mark.slow


def _logged_in(browser: Browser, shop: LiveServer) -> tuple[Page, list[str]]:
    page, problems = open_page(browser)
    page.goto(shop.url + "/login")
    page.fill("#email", EMAIL)
    page.fill("#password", PASSWORD)
    page.click("button[type=submit]")
    expect(page).to_have_url(shop.url + "/")
    return page, problems


def _an_email_in_the_outbox(shop: LiveServer) -> int:
    """A message as delivery leaves it after the outbox channel took it."""
    db = Database(shop.database_url)
    now = SystemClock().now_ms()
    html = (
        '<html><body><p style="color:#2d5bd7">Hi Ana, your <a href="https://shop.example/cart">'
        "cart</a> is waiting.</p>"
        '<img src="http://127.0.0.1:1/t/o/o1.x.gif" width="1" height="1" alt=""></body></html>'
    )
    try:
        with db.write() as conn:
            profile_id = conn.execute(sa.select(sa.func.min(t.profiles.c.id))).scalar_one()
            found = messages.queue(
                conn, db, key="browser-test-1", profile_id=int(profile_id), channel="email",
                template="cart_reminder", transactional=False, variables={}, send_at=now,
                now_ms=now, status=messages.SENT, recipient="ana.lima@example.com",
                content={"subject": "You left something behind", "html": html,
                         "text": "Hi Ana, your cart is waiting."},
            )  # fmt: skip
    finally:
        db.dispose()
    assert found is not None
    return found


def test_a_marketer_enables_a_playbook_and_edits_it(browser: Browser, shop: LiveServer) -> None:
    page, problems = _logged_in(browser, shop)
    page.click("nav >> text=Journeys")
    expect(page.locator("h1")).to_have_text("Journeys")
    card = page.get_by_test_id("playbook-abandoned_cart")
    expect(card).to_contain_text("Abandoned cart")
    shot(page, "20-journeys")
    card.locator("button", has_text="Enable").click()

    # The journey's page: a draft, drawn as a graph with a box per step.
    expect(page).to_have_url(shop.url + "/journeys/abandoned_cart?notice=enabled")
    expect(page.get_by_test_id("journey-status")).to_have_text("Draft")
    graph = page.get_by_test_id("journey-graph")
    expect(graph).to_be_visible()
    expect(graph.locator("g.step")).to_have_count(10)
    expect(page.get_by_test_id("step-first_reminder")).to_contain_text("cart_reminder")
    expect(page.get_by_test_id("counts-wait_1h")).to_have_text("not reached yet")
    expect(page.get_by_test_id("journey-end")).to_be_visible()
    shot(page, "21-journey-graph")

    # The editor checks the definition as it is typed (htmx, after a pause).
    page.click("a.button:has-text('Edit')")
    expect(page).to_have_url(shop.url + "/journeys/abandoned_cart/edit")
    check = page.get_by_test_id("journey-check")
    expect(check.get_by_test_id("check-ok")).to_contain_text("10 steps")
    expect(check.get_by_test_id("who-would-enter")).to_contain_text("did “Product Added”")
    definition = page.locator("#definition")
    text = definition.input_value()
    definition.fill(text.replace("duration: 1h", "duration: soon", 1))
    error = check.get_by_test_id("check-error")
    expect(error).to_contain_text('Line 18 (steps[0].duration): "soon" is not a duration')
    expect(error.locator("pre")).to_have_text("    duration: soon")
    definition.fill(text.replace("then: next", "then: nowhere", 1))
    expect(error).to_contain_text('goes to "nowhere" (then), and there is no such step')
    shot(page, "22-journey-editor-error")
    definition.fill(text.replace("duration: 1h", "duration: 2h", 1))
    expect(check.get_by_test_id("check-ok")).to_be_visible()
    page.click("button:has-text('Save as version 2')")
    expect(page.locator(".notice")).to_contain_text("Saved as version 2.")
    expect(page.get_by_test_id("step-wait_1h")).to_contain_text("wait 2 h")

    # The outbox, like a mail catcher: the email's HTML in a sandboxed frame.
    message_id = _an_email_in_the_outbox(shop)
    page.click("nav >> text=Messages")
    outbox = page.get_by_test_id("outbox")
    expect(outbox).to_contain_text("You left something behind")
    expect(outbox).to_contain_text("ana.lima@example.com")
    outbox.locator("a", has_text="You left something behind").click()
    expect(page).to_have_url(re.compile(rf"/messages/{message_id}$"))
    frame = page.get_by_test_id("message-html")
    expect(frame).to_have_attribute("sandbox", "")
    body = page.frame_locator("[data-testid=message-html]").locator("body")
    expect(body).to_contain_text("Hi Ana, your cart is waiting.")
    assert "/t/o/" not in (frame.get_attribute("srcdoc") or "")
    shot(page, "23-outbox-message")

    # The template editor previews for a real customer as they type (htmx, debounced).
    page.click("a:has-text('cart_reminder')")
    expect(page.locator("h1")).to_contain_text("cart_reminder")
    page.fill("#preview-profile", "email:ana.lima@example.com")
    expect(page.get_by_test_id("preview-subject")).to_have_text("You left something in your cart")
    preview = page.frame_locator("[data-testid=preview-html]").locator("body")
    expect(preview).to_contain_text("Hi Ana, you left these in your cart")
    page.fill("#part-subject", "Hi {{ profile.first_name }")
    expect(page.get_by_test_id("render-error")).to_contain_text("subject, line 1:")
    shot(page, "24-template-editor")

    # Frequency caps and quiet hours, set on the messaging settings page.
    page.goto(shop.url + "/settings/messaging")
    rules = page.get_by_test_id("rules-form")
    rules.get_by_label("On all channels a day").fill("1")
    rules.get_by_label("Quiet hours from").select_option("22")
    rules.get_by_label("A message due in quiet hours is").select_option("skip")
    rules.locator("button", has_text="Save rules").click()
    expect(page.get_by_test_id("rules-result")).to_have_text("Rules saved.")
    expect(page.get_by_label("On all channels a day")).to_have_value("1")
    expect(page.get_by_label("Quiet hours from")).to_have_value("22")
    page.get_by_label("Per channel a week").fill("2000")
    page.locator("button", has_text="Save rules").click()
    # The browser refuses a number over the field's maximum before anything is sent.
    expect(page.get_by_test_id("rules-result")).to_have_text("Rules saved.")
    shot(page, "25-sending-rules")
    # Going back needs no valid form (the 2000 is still typed in).
    page.locator("button", has_text="Back to the server's settings").click()
    expect(page.get_by_test_id("rules-result")).to_have_text("Back to the server's settings.")
    assert problems == []
