"""A small shop's events, worked out by hand, for the admin UI's tests: a few known
customers with visits and orders over the last days, and anonymous visitors."""

from __future__ import annotations

from typing import Any

from shopkeeper.timeutil import ms_to_iso

MINUTE = 60_000
HOUR = 60 * MINUTE
DAY = 24 * HOUR

SOFA = {"product_id": "sofa-1", "name": "Oslo sofa", "category": "Home > Living > Sofas"}
LAMP = {"product_id": "lamp-2", "name": "Bergen lamp", "category": "Home > Lighting"}
MUG = {"product_id": "mug-3", "name": "Fjord mug", "category": "Kitchen > Mugs"}


def _msg(kind: str, mid: str, at: int, **fields: Any) -> dict[str, Any]:
    return {"type": kind, "messageId": mid, "timestamp": ms_to_iso(at), **fields}


def shop_events(now_ms: int) -> list[dict[str, Any]]:
    """Ana: two visits 3 hours apart today (views, cart, an order of 1,250.00) and an
    order 10 days ago (80.00). Ben: one visit 2 days ago, an order of 40.00. Three
    anonymous visitors browse today. So: 2 known and 3 anonymous customers, 3 orders
    worth 1,370.00 in the last 30 days, 2 of the 5 people active bought (40%)."""
    ana = {"userId": "cust-ana", "context": {"userAgent": "Mozilla/5.0 (Windows NT 10.0)"}}
    out = [
        # Ana's first visit, 3 hours ago: she signs in, looks, adds the sofa, buys it.
        _msg("identify", "ana-1", now_ms - 3 * HOUR, **ana,
             traits={"email": "ana.lima@example.com", "firstName": "Ana", "lastName": "Lima"}),
        _msg("page", "ana-2", now_ms - 3 * HOUR + MINUTE, **ana, name="Home"),
        _msg("track", "ana-3", now_ms - 3 * HOUR + 2 * MINUTE, **ana, event="Product Viewed",
             properties={**SOFA, "price": 1250}),
        _msg("track", "ana-4", now_ms - 3 * HOUR + 4 * MINUTE, **ana, event="Product Added",
             properties={**SOFA, "price": 1250, "quantity": 1}),
        _msg("track", "ana-5", now_ms - 3 * HOUR + 9 * MINUTE, **ana, event="Order Completed",
             properties={"order_id": "A-100", "revenue": 1250, "currency": "USD",
                         "products": [{**SOFA, "price": 1250, "quantity": 1}]}),
        # Her second visit, 1 hour ago (a 2h50m gap: a new visit): a lamp into the cart.
        _msg("track", "ana-6", now_ms - HOUR, **ana, event="Products Searched",
             properties={"query": "lamp"}),
        _msg("track", "ana-7", now_ms - HOUR + MINUTE, **ana, event="Product Viewed",
             properties={**LAMP, "price": 89}),
        _msg("track", "ana-8", now_ms - HOUR + 2 * MINUTE, **ana, event="Product Added",
             properties={**LAMP, "price": 89, "quantity": 2}),
        # An older order, 10 days ago.
        _msg("track", "ana-9", now_ms - 10 * DAY, **ana, event="Order Completed",
             properties={"order_id": "A-050", "revenue": 80, "currency": "USD",
                         "products": [{**MUG, "price": 20, "quantity": 4}]}),
        # Ben: 2 days ago.
        _msg("identify", "ben-1", now_ms - 2 * DAY, userId="cust-ben",
             traits={"email": "ben@example.com", "name": "Ben Okafor"}),
        _msg("track", "ben-2", now_ms - 2 * DAY + MINUTE, userId="cust-ben",
             event="Order Completed",
             properties={"order_id": "B-7", "total": 40, "products": [{**MUG, "price": 40}]}),
    ]  # fmt: skip
    for n in range(3):
        anon = {"anonymousId": f"anon-{n}"}
        out.append(_msg("page", f"anon-{n}-1", now_ms - (n + 1) * 20 * MINUTE, **anon, name="Home"))
        out.append(
            _msg("track", f"anon-{n}-2", now_ms - (n + 1) * 20 * MINUTE + MINUTE, **anon,
                 event="Product Viewed", properties={**MUG, "price": 20})
        )  # fmt: skip
    return out
