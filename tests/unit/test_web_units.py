"""The admin UI's pure parts: formatting, visits, event lines, charts, snippets, the
login throttle and the after-login address check."""

from __future__ import annotations

import json
import re

import pytest

from shopkeeper.timeutil import parse_iso_ms
from shopkeeper.web import format as fmt
from shopkeeper.web.charts import Bar, bar_chart, sparkline
from shopkeeper.web.sessions import LoginThrottle
from shopkeeper.web.snippets import snippets
from shopkeeper.web.timeline import describe, group_visits, product_ids
from shopkeeper.web.ui import safe_next

NOW = parse_iso_ms("2026-11-23T12:00:00Z")


@pytest.mark.parametrize(
    ("value", "currency", "shown"),
    [
        (1234.5, "USD", "$1,234.50"),
        (0, "USD", "$0.00"),
        (99.9, "NOK", "NOK\u00a099.90"),
        (-5, "NOK", "-NOK\u00a05.00"),
        (1000, "EUR", "€1,000.00"),
        (None, "USD", "—"),
        ("12", "USD", "—"),
        (True, "USD", "—"),
        (float("nan"), "USD", "—"),
        (5, "usd", "$5.00"),
        (5, "<b>", "5.00 <B>"),
    ],
)
def test_money(value: object, currency: str, shown: str) -> None:
    assert fmt.money(value, currency) == shown


def test_dates_durations_and_ages() -> None:
    assert fmt.when("2026-11-03T08:05:00.000Z") == "3 Nov 2026, 08:05 UTC"
    assert fmt.when(NOW) == "23 Nov 2026, 12:00 UTC"
    assert fmt.when("not a date") == "not a date"
    assert fmt.day("2026-11-03T08:05:00.000Z") == "3 Nov 2026"
    assert fmt.clock(NOW + 5 * 60_000) == "12:05"
    assert fmt.iso(NOW) == "2026-11-23T12:00:00Z"
    assert fmt.iso("junk") == ""
    assert [fmt.duration(ms) for ms in (4_000, 125_000, 3_600_000, 5_460_000, 3 * 86_400_000)] == [
        "4 s",
        "2 min",
        "1 h",
        "1 h 31 min",
        "3 days",
    ]
    ages = [
        NOW - 30_000,
        NOW - 61_000,
        NOW - 2 * 3_600_000,
        NOW - 86_400_000,
        NOW - 40 * 86_400_000,
    ]
    assert [fmt.ago(ms, NOW) for ms in ages] == [
        "just now",
        "1 minute ago",
        "2 hours ago",
        "1 day ago",
        "14 Oct 2026",
    ]
    assert fmt.ago(None, NOW) == "—"


def test_labels_and_plain_values() -> None:
    assert fmt.label("orders_count") == "Orders"
    assert fmt.label("loyaltyTier") == "Loyalty tier"
    assert fmt.label("shipping_method") == "Shipping method"
    assert fmt.plain(True) == "Yes"
    assert fmt.plain([]) == "—"
    assert fmt.plain(["a", 2]) == "a, 2"
    assert fmt.plain({"step": 2, "completed": False}) == "Step: 2; Completed: No"
    assert fmt.plain("2026-11-03T08:05:00.000Z") == "3 Nov 2026, 08:05 UTC"
    assert fmt.plain("x" * 400) == "x" * 299 + "…"
    assert fmt.attribute("total_revenue", 12.5, "USD") == "$12.50"
    assert fmt.attribute("sessions_count", 1200, "USD") == "1,200"
    assert fmt.percent(0.4) == "40.0%"
    assert fmt.percent(None) == "—"


def _event(seq: int, at: str, **fields: object) -> dict[str, object]:
    return {"seq": seq, "timestamp": at, "type": "track", "source": "web", **fields}


def test_visits_split_on_gaps_longer_than_the_timeout() -> None:
    events = [  # newest first, as the timeline gives them
        _event(5, "2026-11-23T11:00:00.000Z"),
        _event(4, "2026-11-23T10:31:00.000Z"),  # 29 min before: same visit
        _event(3, "2026-11-23T10:00:00.000Z"),  # 31 min before: a new visit
        _event(2, "2026-11-23T09:30:00.000Z"),  # exactly 30 min: same visit
        _event(1, "2026-11-20T09:30:00.000Z"),
    ]
    visits = group_visits(events, 30 * 60_000)
    assert [[e["seq"] for e in v.events] for v in visits] == [[5, 4], [3, 2], [1]]
    assert fmt.iso(visits[0].start_ms) == "2026-11-23T10:31:00Z"
    assert fmt.iso(visits[0].end_ms) == "2026-11-23T11:00:00Z"
    assert visits[0].sources == ["web"]
    assert group_visits([], 60_000) == []


def test_event_lines_read_like_sentences() -> None:
    catalog = {"p1": {"name": "Oslo sofa (catalog)"}}
    cases = [
        (_event(1, "", event="Product Viewed", properties={"product_id": "p1", "name": "x"}),
         "view", "Viewed Oslo sofa (catalog)"),
        (_event(1, "", event="Product Added", properties={"product_id": "p9", "name": "Mug"}),
         "cart", "Added Mug to the cart"),
        (_event(1, "", event="Product Removed", properties={"sku": "s-7"}),
         "cart", "Removed product s-7 from the cart"),
        (_event(1, "", event="Order Completed",
                properties={"order_id": "A1", "total": "19.5", "currency": "NOK"}),
         "order", "Placed order A1 · NOK\u00a019.50"),
        (_event(1, "", event="Order Completed", properties={}), "order", "Placed order"),
        (_event(1, "", event="Products Searched", properties={"query": "red <b>"}),
         "search", "Searched for “red <b>”"),
        (_event(1, "", event="Coupon Applied", properties={"coupon_id": "XMAS"}),
         "cart", "Coupon XMAS applied"),
        (_event(1, "", type="page", event="Home", properties={}), "page", "Visited Home"),
        (_event(1, "", type="page", event=None, properties={"path": "/sale"}),
         "page", "Visited /sale"),
        (_event(1, "", type="identify", event=None, user_id="u7",
                traits={"lastName": "Lima", "email": "a@x"}),
         "identify", "Identified as u7 (email, last name)"),
        (_event(1, "", event="Something Custom", properties={"a": 1}),
         "other", "Something Custom"),
    ]  # fmt: skip
    for event, kind, title in cases:
        line = describe(event, catalog, "USD")
        assert (line.kind, line.title) == (kind, title)
    detail = describe(
        _event(1, "", event="Order Completed",
               properties={"order_id": "A1", "revenue": 10, "products": [
                   {"product_id": "p1", "name": "Sofa", "quantity": 2}]}),
        catalog, "USD",
    ).fields  # fmt: skip
    assert detail == [("Order ID", "A1"), ("Revenue", "$10.00"), ("Products", "2 \u00d7 Sofa")]
    assert product_ids(
        [{"properties": {"product_id": 5, "products": [{"sku": "s"}, "junk", {"id": 1}]}}]
    ) == {"5", "s"}


def test_charts_escape_their_text_and_scale_to_the_largest_value() -> None:
    chart = str(
        bar_chart(
            [Bar("a", 0, "zero"), Bar("b", 50, "half"), Bar("<c>", 100, "full & <b>")],
            label="Sales",
            top_label="$100",
        )
    )
    heights = [float(h) for h in re.findall(r'<rect class="bar"[^>]* height="([\d.]+)"', chart)]
    assert heights == [0, 78, 156]  # plot height 162 - 6 of headroom
    assert "full &amp; &lt;b&gt;" in chart
    assert "&lt;c&gt;" in chart
    assert "<b>" not in chart
    line = str(sparkline([0, 5, 10], width=100, height=20, label="x"))
    assert 'points="0,18 50,10 100,2"' in line


def test_snippets_point_at_this_server() -> None:
    s = snippets("wk_abc", "https://cdp.shop.example/")
    assert s.api_host == "cdp.shop.example/v1"
    assert s.protocol == "https"
    assert 'analytics.load("wk_abc", {"integrations": {"Segment.io": ' in s.browser
    assert '"apiHost": "cdp.shop.example/v1", "protocol": "https"' in s.browser
    assert json.loads(s.browser_settings) == {
        "integrations": {
            "Segment.io": {
                "apiKey": "wk_abc",
                "apiHost": "cdp.shop.example/v1",
                "protocol": "https",
            }
        }
    }
    assert s.curl.startswith("curl https://cdp.shop.example/v1/track \\\n  -u 'wk_abc:'")
    assert 'analytics.host = "https://cdp.shop.example"' in s.python
    assert "</script>" not in snippets("</script>", "http://x").browser.split("\n", 1)[1][:-9]


def test_the_throttle_counts_recent_failures_per_email_and_per_address() -> None:
    throttle = LoginThrottle(per_email=3, per_address=5, window_ms=1000)
    for at in (0, 10, 20):
        assert not throttle.blocked("a@x", "1.2.3.4", at)
        throttle.failed("a@x", "1.2.3.4", at)
    assert throttle.blocked("a@x", "9.9.9.9", 30)
    assert not throttle.blocked("b@x", "1.2.3.4", 30)
    throttle.failed("b@x", "1.2.3.4", 40)
    throttle.failed("c@x", "1.2.3.4", 50)
    assert throttle.blocked("d@x", "1.2.3.4", 60)  # five failures from that address
    assert not throttle.blocked("d@x", "1.2.3.5", 60)
    assert not throttle.blocked("a@x", "5.5.5.5", 1001)  # the first failure aged out
    throttle.succeeded("b@x")
    throttle.failed("b@x", "5.5.5.5", 1002)
    assert not throttle.blocked("b@x", "5.5.5.5", 1003)


@pytest.mark.parametrize(
    ("value", "safe"),
    [
        ("/customers?q=a", "/customers?q=a"),
        ("//evil.example", "/"),
        ("https://evil.example", "/"),
        ("/\\evil.example", "/"),
        ("/x\r\nSet-Cookie: a=b", "/"),
        ("customers", "/"),
        (None, "/"),
        ("/" + "a" * 3000, "/"),
    ],
)
def test_after_login_only_this_site(value: str | None, safe: str) -> None:
    assert safe_next(value) == safe
