"""The built-in segments: every condition reads and prints back, keys are well formed and
unique, there is one per RFM segment, and for each one hand-made customers show who is
in and who is not (the examples document what each rule means). The integration test
tests/integration/test_builtin_segments_sql.py runs the same examples through SQL."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest

from shopkeeper.segments.builtins import BUILTINS, Builtin, find_builtin, rfm_key
from shopkeeper.segments.lang.evaluate import EventFact, ProfileFacts, compile_predicate
from shopkeeper.segments.lang.parser import parse
from shopkeeper.segments.lang.printer import to_text
from shopkeeper.segments.scores.rfm import SEGMENT_NAMES
from shopkeeper.timeutil import ms_to_iso, parse_iso_ms

NOW = parse_iso_ms("2026-11-23T12:00:00Z")
MINUTE = 60_000
HOUR = 60 * MINUTE
DAY = 24 * HOUR
GROUPS = {"Buyers", "Abandoners", "Lifecycle", "Leads", "Reachability", "RFM"}
KEY = re.compile(r"[a-z0-9]+(-[a-z0-9]+)*\Z")


def ago(days: float = 0, hours: float = 0, minutes: float = 0) -> int:
    return NOW - round(days * DAY + hours * HOUR + minutes * MINUTE)


def at(days: float = 0, hours: float = 0, minutes: float = 0) -> str:
    """An ISO time that long before NOW, as computed attributes hold times."""
    return ms_to_iso(ago(days, hours, minutes))


def event(name: str, when: int, **properties: Any) -> EventFact:
    return EventFact(name, when, properties)


def who(
    known: bool = False,
    traits: Mapping[str, Any] | None = None,
    consents: Mapping[tuple[str, str], bool] | None = None,
    scores: Mapping[str, Any] | None = None,
    events: Sequence[EventFact] = (),
    **computed: Any,
) -> ProfileFacts:
    return ProfileFacts(
        profile_id=0,
        known=known,
        traits=traits or {},
        computed=computed,
        consents=consents or {},
        scores=scores or {},
        events=tuple(events),
    )


def cart(items: int, changed: str) -> dict[str, Any]:
    """The cart attributes of `items` units of one product, last changed at `changed`."""
    lines = [{"product_id": "p1", "price": 25.0, "quantity": items}] if items else []
    return {"cart": lines, "cart_items_count": items, "cart_value": 25.0 * items,
            "cart_updated_at": changed}  # fmt: skip


def customer(**computed: Any) -> ProfileFacts:
    return who(known=True, traits={"email": "kari@example.no"}, **computed)


IN, OUT = True, False

# key -> (in or out, why, the customer)
# fmt: off
EXAMPLES: dict[str, list[tuple[bool, str, ProfileFacts]]] = {
    "recent-buyers": [
        (IN, "an order of 120 ten days ago",
         customer(orders_count=1, last_order_at=at(10),
                  events=[event("Order Completed", ago(10), revenue=120)])),
        (IN, "no revenue sent: the total of 150 counts",
         customer(orders_count=1, last_order_at=at(10),
                  events=[event("Order Completed", ago(10), total=150)])),
        (OUT, "revenue 80 (with tax and shipping, total 110): revenue decides",
         customer(orders_count=1, last_order_at=at(10),
                  events=[event("Order Completed", ago(10), revenue=80, total=110)])),
        (OUT, "the order of 500 was 100 days ago",
         customer(orders_count=1, last_order_at=at(100),
                  events=[event("Order Completed", ago(100), revenue=500)])),
        (OUT, "the only recent order was cancelled; the last counted one is older",
         customer(orders_count=1, last_order_at=at(200), cancelled_count=1,
                  events=[event("Order Completed", ago(200), revenue=40),
                          event("Order Completed", ago(5), revenue=300)])),
    ],
    "first-time-buyers": [
        (IN, "first order 3 hours ago", customer(orders_count=1, first_order_at=at(hours=3))),
        (OUT, "first order 2 days ago, another today",
         customer(orders_count=2, first_order_at=at(2), last_order_at=at(hours=1))),
        (OUT, "never ordered", customer(orders_count=0)),
    ],
    "repeat-customers": [
        (IN, "two orders", customer(orders_count=2, last_order_at=at(400))),
        (OUT, "one order", customer(orders_count=1, last_order_at=at(1))),
    ],
    "vips": [
        (IN, "spent 1,500 over 3 orders", customer(orders_count=3, total_revenue=1500.0)),
        (IN, "12 small orders", customer(orders_count=12, total_revenue=400.0)),
        (OUT, "spent 999.99 over 9 orders", customer(orders_count=9, total_revenue=999.99)),
    ],
    "cart-abandoners": [
        (IN, "2 items, cart last changed 3 hours ago",
         who(**cart(2, at(hours=3)))),
        (OUT, "cart changed 30 minutes ago: still shopping",
         who(**cart(1, at(minutes=30)))),
        (OUT, "cart last changed 8 days ago: too old",
         who(**cart(1, at(8)))),
        (OUT, "started a checkout 2 hours ago: a checkout abandoner instead",
         who(**cart(1, at(hours=2)), checkout_started_at=at(hours=2))),
        (OUT, "ordered 3 hours ago, which emptied the cart",
         customer(orders_count=1, last_order_at=at(hours=3), **cart(0, at(hours=3)))),
    ],
    "checkout-abandoners": [
        (IN, "started a checkout 2 hours ago", who(checkout_started_at=at(hours=2))),
        (OUT, "started 20 minutes ago: may still pay", who(checkout_started_at=at(minutes=20))),
        (OUT, "started 8 days ago", who(checkout_started_at=at(8))),
        (OUT, "ordered since: the order cleared the started checkout",
         customer(orders_count=1, last_order_at=at(hours=2))),
    ],
    "browse-abandoners": [
        (IN, "viewed a product yesterday and left",
         who(last_seen_at=at(1), events=[event("Product Viewed", ago(1), product_id="p1")])),
        (OUT, "viewed a product 10 minutes ago: still browsing",
         who(last_seen_at=at(minutes=10),
             events=[event("Product Viewed", ago(minutes=10), product_id="p1")])),
        (OUT, "added it to the cart and removed it again yesterday",
         who(last_seen_at=at(1), **cart(0, at(1)),
             events=[event("Product Viewed", ago(1), product_id="p1")])),
        (OUT, "has an older cart with items (a cart matter, not browsing)",
         who(last_seen_at=at(1), **cart(1, at(20)),
             events=[event("Product Viewed", ago(1), product_id="p1")])),
        (OUT, "the last product view was 5 days ago",
         who(last_seen_at=at(5), events=[event("Product Viewed", ago(5), product_id="p1")])),
    ],
    "almost-buyers": [
        (IN, "something on the wishlist, seen 5 days ago, empty cart",
         who(known=True, last_seen_at=at(5), wishlist=[{"product_id": "p2"}])),
        (IN, "viewed products 3 times this week",
         who(last_seen_at=at(2),
             events=[event("Product Viewed", ago(d), product_id="p1") for d in (2, 3, 6)])),
        (OUT, "viewed products only twice",
         who(last_seen_at=at(2),
             events=[event("Product Viewed", ago(d), product_id="p1") for d in (2, 3)])),
        (OUT, "wishlist, but the cart has items",
         who(last_seen_at=at(5), wishlist=[{"product_id": "p2"}], **cart(1, at(4)))),
        (OUT, "wishlist, but ordered 3 days ago",
         customer(last_seen_at=at(3), wishlist=[{"product_id": "p2"}], orders_count=1,
                  last_order_at=at(3))),
        (OUT, "wishlist, but not seen for 60 days",
         who(last_seen_at=at(60), wishlist=[{"product_id": "p2"}])),
    ],
    "lapsing-customers": [
        (IN, "last order 120 days ago", customer(orders_count=3, last_order_at=at(120))),
        (OUT, "last order 60 days ago", customer(orders_count=3, last_order_at=at(60))),
        (OUT, "last order 200 days ago: lapsed", customer(orders_count=1, last_order_at=at(200))),
    ],
    "lapsed-customers": [
        (IN, "last order 200 days ago", customer(orders_count=1, last_order_at=at(200))),
        (OUT, "last order 120 days ago: lapsing",
         customer(orders_count=1, last_order_at=at(120))),
        (OUT, "never ordered", customer(orders_count=0)),
    ],
    "new-anonymous-visitors": [
        (IN, "anonymous, first seen 2 hours ago", who(first_seen_at=at(hours=2))),
        (OUT, "signed up already", customer(first_seen_at=at(hours=2))),
        (OUT, "anonymous, first seen 3 days ago", who(first_seen_at=at(3))),
    ],
    "engaged-leads": [
        (IN, "known, no orders, lead score 35",
         customer(orders_count=0, scores={"lead_score": 35.0})),
        (IN, "known from an import (no events at all), lead score 20",
         who(known=True, traits={"email": "ola@example.no"}, scores={"lead_score": 20.0})),
        (OUT, "lead score 10", customer(orders_count=0, scores={"lead_score": 10.0})),
        (OUT, "already a customer", customer(orders_count=1, scores={"lead_score": 80.0})),
        (OUT, "anonymous, however engaged", who(orders_count=0, scores={"lead_score": 90.0})),
    ],
    "email-reachable": [
        (IN, "email and email consent",
         who(known=True, traits={"email": "a@example.no"},
             consents={("email", "marketing"): True})),
        (IN, "email and a consent for every channel",
         who(known=True, traits={"email": "a@example.no"}, consents={("*", "marketing"): True})),
        (OUT, "email, declined email though it allowed every channel before",
         who(known=True, traits={"email": "a@example.no"},
             consents={("*", "marketing"): True, ("email", "marketing"): False})),
        (OUT, "email consent but no address",
         who(known=True, traits={"email": ""}, consents={("email", "marketing"): True})),
        (OUT, "email, consent only for advertising",
         who(known=True, traits={"email": "a@example.no"},
             consents={("email", "advertising"): True})),
    ],
    "sms-reachable": [
        (IN, "phone and SMS consent",
         who(known=True, traits={"phone": "+4791234567"}, consents={("sms", "marketing"): True})),
        (OUT, "phone, email consent only",
         who(known=True, traits={"phone": "+4791234567"},
             consents={("email", "marketing"): True})),
        (OUT, "SMS consent, no phone", who(known=True, consents={("sms", "marketing"): True})),
    ],
    "push-reachable": [
        (IN, "uses the app and allowed push",
         who(source_kinds=["app", "web"], consents={("push", "marketing"): True})),
        (OUT, "allowed push, only ever on the web shop",
         who(source_kinds=["web"], consents={("push", "marketing"): True})),
        (OUT, "uses the app, turned push off",
         who(source_kinds=["app"], consents={("push", "marketing"): False})),
    ],
}
# fmt: on

OTHER_RFM = {"Champions": "Hibernating"}
for _name in SEGMENT_NAMES:
    _other = OTHER_RFM.get(_name, "Champions")
    EXAMPLES[rfm_key(_name)] = [
        (IN, f"RFM segment {_name}",
         customer(orders_count=2, scores={"rfm_segment": _name, "rfm_recency": 3})),
        (OUT, f"RFM segment {_other}",
         customer(orders_count=2, scores={"rfm_segment": _other, "rfm_recency": 3})),
        (OUT, "no RFM scores yet (not a customer)", who()),
    ]  # fmt: skip


CASES = [
    pytest.param(key, expected, facts, id=f"{key}: {'in' if expected else 'out'}: {why}")
    for key, examples in EXAMPLES.items()
    for expected, why, facts in examples
]


@pytest.mark.parametrize("builtin", BUILTINS, ids=lambda b: b.key)
def test_condition_reads_and_prints_back(builtin: Builtin) -> None:
    tree = parse(builtin.condition)
    assert parse(to_text(tree)) == tree


def test_keys_are_unique_and_well_formed() -> None:
    keys = [b.key for b in BUILTINS]
    assert [key for key, n in Counter(keys).items() if n > 1] == []
    for builtin in BUILTINS:
        assert KEY.match(builtin.key), builtin.key
        assert len(builtin.key) <= 100
        assert builtin.group in GROUPS
        assert builtin.name
        assert builtin.description.endswith(".")
        assert builtin.refresh_minutes > 0
        assert find_builtin(builtin.key) is builtin
    assert find_builtin("no-such-segment") is None


def test_one_builtin_per_rfm_segment() -> None:
    rfm = [b for b in BUILTINS if b.group == "RFM"]
    for name in SEGMENT_NAMES:
        naming = [b for b in rfm if parse(b.condition) == parse(f'rfm_segment = "{name}"')]
        assert len(naming) == 1, name
    assert len(rfm) == len(SEGMENT_NAMES)
    assert find_builtin("rfm-cant-lose") is not None
    assert not any(b.realtime for b in rfm)  # scores change only when recomputed


def test_the_issue_catalogue_is_there() -> None:
    wanted = {"recent-buyers", "first-time-buyers", "repeat-customers", "cart-abandoners",
              "checkout-abandoners", "browse-abandoners", "almost-buyers",
              "lapsing-customers", "lapsed-customers", "vips", "new-anonymous-visitors",
              "engaged-leads", "email-reachable", "sms-reachable", "push-reachable"}  # fmt: skip
    assert wanted <= {b.key for b in BUILTINS}


def test_every_builtin_has_examples_in_and_out() -> None:
    assert set(EXAMPLES) == {b.key for b in BUILTINS}
    for key, examples in EXAMPLES.items():
        assert {expected for expected, _, _ in examples} == {IN, OUT}, key


@pytest.mark.parametrize(("key", "expected", "facts"), CASES)
def test_example(key: str, expected: bool, facts: ProfileFacts) -> None:
    builtin = find_builtin(key)
    assert builtin is not None
    predicate = compile_predicate(parse(builtin.condition))
    assert predicate(facts, NOW) is expected


def test_the_docs_list_every_builtin() -> None:
    docs = Path(__file__).resolve().parents[2] / "docs" / "segments.md"
    section = docs.read_text(encoding="utf-8").split("## Built-in segments", 1)[1]
    rows = {
        line.split("|")[1].strip(" `"): line.split("|")[4].strip()
        for line in section.splitlines()
        if line.startswith("| `")
    }
    assert set(rows) == {b.key for b in BUILTINS}
    for builtin in BUILTINS:
        assert rows[builtin.key].startswith("real-time" if builtin.realtime else "scheduled")
        assert ("every 15 min" in rows[builtin.key]) is (builtin.refresh_minutes == 15)
