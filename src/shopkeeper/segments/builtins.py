"""The catalogue of built-in segments: ready-made conditions a shop can enable with one
click (recent buyers, cart abandoners, lapsed customers, one per RFM segment...), each
with a description a marketer can read. Pure: no database; enabling one (copying it
into the `segments` table, `builtin` = its key) is the API's job.

Every condition is written in the segment language as it is, so an enabled built-in can
be read and edited like any other segment. The numbers a shop would tune (90 days, 100,
1 hour...) are stated in the descriptions.

`realtime`: re-evaluated for a profile as its events are applied (orders, cart changes,
consents, identification). What changes with the clock alone is left to the scheduled
refresh: cart, checkout and browse abandoners, whom people join by time alone (a cart
becomes abandoned one hour after its last change), refresh every 15 minutes, the others
hourly. The RFM
segments follow the RFM scores, which change only when the scores are recomputed
(hourly), so they are scheduled.
"""

from __future__ import annotations

from dataclasses import dataclass

from shopkeeper.segments.lang.derived import LAPSED_AFTER_DAYS
from shopkeeper.segments.lang.printer import quote
from shopkeeper.segments.scores.rfm import SEGMENT_RULES, SegmentRule

LAPSING_AFTER_DAYS = 90


@dataclass(frozen=True)
class Builtin:
    key: str  # lowercase-with-dashes: "recent-buyers", "rfm-champions"
    name: str
    description: str  # the exact rule in words, with the numbers a shop would tune
    condition: str  # segment language text
    realtime: bool  # follows events as they arrive
    refresh_minutes: int  # the scheduled refresh (the time-dependent part, or all of it)
    group: str  # "Buyers", "Abandoners", "Lifecycle", "Leads", "Reachability", "RFM"


_BUYERS: tuple[Builtin, ...] = (
    Builtin(
        key="recent-buyers",
        name="Recent buyers",
        description=(
            "Customers who placed an order of 100 or more in the last 90 days (the order's "
            "revenue as sent, or its total when it has no revenue). Customers whose only "
            "recent order was cancelled are left out."
        ),
        condition=(
            "last_order_at within 90 days\n"
            'and did "Order Completed" within 90 days\n'
            "  where (revenue >= 100 or (revenue is not set and total >= 100))"
        ),
        realtime=True,
        refresh_minutes=60,
        group="Buyers",
    ),
    Builtin(
        key="first-time-buyers",
        name="First-time buyers",
        description=(
            "Customers whose first order ever was placed in the last 24 hours (cancelled "
            "orders do not count)."
        ),
        condition="first_order_at within 24 hours",
        realtime=True,
        refresh_minutes=60,
        group="Buyers",
    ),
    Builtin(
        key="repeat-customers",
        name="Repeat customers",
        description=(
            "Customers with two or more orders, however long ago (cancelled orders do not count)."
        ),
        condition="orders_count >= 2",
        realtime=True,
        refresh_minutes=60,
        group="Buyers",
    ),
    Builtin(
        key="vips",
        name="VIPs",
        description=(
            "Customers who have spent 1,000 or more in total (net of refunds, in the shop "
            "currency) or placed 10 or more orders."
        ),
        condition="total_revenue >= 1000 or orders_count >= 10",
        realtime=True,
        refresh_minutes=60,
        group="Buyers",
    ),
)

_ABANDONERS: tuple[Builtin, ...] = (
    Builtin(
        key="cart-abandoners",
        name="Cart abandoners",
        description=(
            "People with items in their cart that was last changed between 1 hour and 7 "
            "days ago, who have not started a checkout in the last 7 days (those are "
            "checkout abandoners). An order empties the cart, so buyers leave at once."
        ),
        condition=(
            "cart_items_count > 0\n"
            "and cart_updated_at more than 1 hour ago\n"
            "and cart_updated_at within 7 days\n"
            "and not checkout_started_at within 7 days"
        ),
        realtime=True,
        refresh_minutes=15,
        group="Abandoners",
    ),
    Builtin(
        key="checkout-abandoners",
        name="Checkout abandoners",
        description=(
            "People who started a checkout between 1 hour and 7 days ago and have not "
            "ordered since (an order clears the started checkout)."
        ),
        condition=(
            "checkout_started_at more than 1 hour ago\nand checkout_started_at within 7 days"
        ),
        realtime=True,
        refresh_minutes=15,
        group="Abandoners",
    ),
    Builtin(
        key="browse-abandoners",
        name="Browse abandoners",
        description=(
            "People who viewed a product in the last 3 days and left more than 1 hour "
            "ago without putting anything in the cart: the cart is empty and has not "
            "changed (no add, no order) in those 3 days."
        ),
        condition=(
            'did "Product Viewed" within 3 days\n'
            "and last_seen_at more than 1 hour ago\n"
            "and cart is empty\n"
            "and not cart_updated_at within 3 days  # no add, removal or order"
        ),
        realtime=True,
        refresh_minutes=15,
        group="Abandoners",
    ),
    Builtin(
        key="almost-buyers",
        name="Almost-buyers",
        description=(
            "People showing interest without buying: they viewed products (any) at least 3 "
            "times in the last 14 days or have something on their wishlist, were seen in "
            "the last 30 days, have an empty cart and have not ordered in the last 14 days."
        ),
        condition=(
            '(did "Product Viewed" at least 3 times within 14 days or wishlist is not empty)\n'
            "and last_seen_at within 30 days\n"
            "and cart is empty\n"
            "and not last_order_at within 14 days"
        ),
        realtime=True,
        refresh_minutes=60,
        group="Abandoners",
    ),
)

_LIFECYCLE: tuple[Builtin, ...] = (
    Builtin(
        key="lapsing-customers",
        name="Lapsing customers",
        description=(
            f"Customers whose last order was between {LAPSING_AFTER_DAYS} and "
            f"{LAPSED_AFTER_DAYS} days ago: still worth a nudge before they are lapsed."
        ),
        condition=(
            f"last_order_at more than {LAPSING_AFTER_DAYS} days ago\n"
            f"and last_order_at within {LAPSED_AFTER_DAYS} days"
        ),
        realtime=True,
        refresh_minutes=60,
        group="Lifecycle",
    ),
    Builtin(
        key="lapsed-customers",
        name="Lapsed customers",
        description=(
            f"Customers whose last order was more than {LAPSED_AFTER_DAYS} days ago (the "
            'same as the funnel stage "lapsed").'
        ),
        condition=f"last_order_at more than {LAPSED_AFTER_DAYS} days ago",
        realtime=True,
        refresh_minutes=60,
        group="Lifecycle",
    ),
    Builtin(
        key="new-anonymous-visitors",
        name="New anonymous visitors",
        description=(
            "Visitors first seen in the last 24 hours whom we cannot reach yet: no user "
            "id, email or phone."
        ),
        condition="not known and first_seen_at within 24 hours",
        realtime=True,
        refresh_minutes=60,
        group="Lifecycle",
    ),
)

_LEADS: tuple[Builtin, ...] = (
    Builtin(
        key="engaged-leads",
        name="Engaged leads",
        description=(
            "People we know (user id, email or phone) who have not ordered yet and have a "
            "lead score of 20 or more (about a sign-up and a few product views recently)."
        ),
        condition="known and not orders_count >= 1 and lead_score >= 20",
        realtime=True,
        refresh_minutes=60,
        group="Leads",
    ),
)

_REACHABILITY: tuple[Builtin, ...] = (
    Builtin(
        key="email-reachable",
        name="Email-reachable",
        description=(
            "People with an email address who consented to marketing by email (or to "
            "marketing on every channel)."
        ),
        condition="email is not empty and consent.email",
        realtime=True,
        refresh_minutes=60,
        group="Reachability",
    ),
    Builtin(
        key="sms-reachable",
        name="SMS-reachable",
        description=(
            "People with a phone number who consented to marketing by SMS (or to "
            "marketing on every channel)."
        ),
        condition="phone is not empty and consent.sms",
        realtime=True,
        refresh_minutes=60,
        group="Reachability",
    ),
    Builtin(
        key="push-reachable",
        name="Push-reachable",
        description=(
            "People who have used your app and consented to marketing push notifications "
            "(or to marketing on every channel)."
        ),
        condition='consent.push and source_kinds contains "app"',
        realtime=True,
        refresh_minutes=60,
        group="Reachability",
    ),
)


def rfm_key(segment_name: str) -> str:
    """ "Can't Lose" -> "rfm-cant-lose"."""
    words = "".join(c for c in segment_name.lower() if c.isalnum() or c == " ").split()
    return "rfm-" + "-".join(words)


def _scores(span: tuple[int, int]) -> str:
    low, high = span
    return str(low) if low == high else f"{low}-{high}"


def _rfm(rule: SegmentRule) -> Builtin:
    return Builtin(
        key=rfm_key(rule.name),
        name=f"{rule.name} (RFM)",
        description=(
            f"{rule.description}. Customers with an RFM recency score of "
            f"{_scores(rule.recency)} and a frequency score of {_scores(rule.frequency)} at "
            "the last (hourly) recompute of the scores."
        ),
        condition=f"rfm_segment = {quote(rule.name)}",
        realtime=False,
        refresh_minutes=60,
        group="RFM",
    )


BUILTINS: tuple[Builtin, ...] = (
    *_BUYERS,
    *_ABANDONERS,
    *_LIFECYCLE,
    *_LEADS,
    *_REACHABILITY,
    *(_rfm(rule) for rule in SEGMENT_RULES),
)

_BY_KEY = {builtin.key: builtin for builtin in BUILTINS}


def find_builtin(key: str) -> Builtin | None:
    return _BY_KEY.get(key)
