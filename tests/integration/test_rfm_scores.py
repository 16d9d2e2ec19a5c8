"""RFM scores end to end, on SQLite and PostgreSQL: orders sent through /v1, applied by
the pipeline, scored by the recompute (through the admin API and the function), the grid,
customers who stop being customers, merges, and the audit log."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from shopkeeper.segments.scores.rfm_job import recompute_rfm, rfm_grid
from shopkeeper.storage import tables as t
from shopkeeper.timeutil import ms_to_iso
from tests.harness import NOW, Harness, harness

DAY = 86_400_000

# user id -> (days since each order, oldest first; revenue of each order)
CUSTOMERS: dict[str, tuple[list[int], float]] = {
    "u1": ([2], 50.0),
    "u2": ([40, 30, 20, 10, 3], 100.0),
    "u3": ([200], 20.0),
    "u4": ([300, 200, 100], 100.0),
    "u5": ([400, 350, 300, 250, 200, 150], 150.0),
    "u6": ([30, 10], 40.0),
    "u7": ([1], 30.0),
}
# Worked out by hand from the rule in rfm.py (seven customers: positions 0-6 get
# 1, 2, 2, 3, 4, 4, 5). Recency by last order, oldest first: u3 u5 u4 u6 u2 u1 u7.
# Frequency (1 1 1 2 3 5 6 orders), ties by profile id: u1 u3 u7 u6 u4 u2 u5.
# Monetary (20 30 50 80 300 500 900): u3 u7 u1 u6 u4 u2 u5.
EXPECTED: dict[str, tuple[int, int, int, str]] = {
    "u1": (4, 1, 2, "Promising"),
    "u2": (4, 4, 4, "Loyal Customers"),
    "u3": (1, 2, 1, "Hibernating"),
    "u4": (2, 4, 4, "At Risk"),
    "u5": (2, 5, 5, "Can't Lose"),
    "u6": (3, 3, 3, "Need Attention"),
    "u7": (5, 2, 2, "Potential Loyalists"),
}


def order(user: str, order_id: str, days_ago: float, revenue: float, **ids: Any) -> dict[str, Any]:
    return {
        "type": "track",
        "event": "Order Completed",
        **(ids or {"userId": user}),
        "messageId": f"order-{order_id}",
        "timestamp": ms_to_iso(NOW - int(days_ago * DAY)),
        "properties": {"order_id": order_id, "revenue": revenue, "currency": "USD"},
    }


def setup_customers(h: Harness) -> dict[str, int]:
    """Each customer's profile is created in turn (profile ids in user order), then a
    visitor who never ordered (and so has a lead score, not RFM scores). Returns user id
    (and "visitor") -> profile id."""
    ids: dict[str, int] = {}
    for user, (days, revenue) in CUSTOMERS.items():
        h.batch([order(user, f"{user}-{n}", d, revenue) for n, d in enumerate(days)])
        h.drain()
        ids[user] = h.profile(f"user_id:{user}")["profile_id"]
    h.send("page", {"anonymousId": "anon-visitor-1", "name": "Home", "messageId": "visit-1"})
    h.drain()
    ids["visitor"] = h.profile("anonymous_id:anon-visitor-1")["profile_id"]
    assert list(ids.values()) == sorted(ids.values())
    return ids


def rfm_rows(h: Harness) -> dict[int, tuple[Any, ...]]:
    s = t.profile_scores
    with h.services.db.read() as conn:
        rows = conn.execute(
            sa.select(
                s.c.profile_id,
                s.c.rfm_recency,
                s.c.rfm_frequency,
                s.c.rfm_monetary,
                s.c.rfm_segment,
                s.c.rfm_at,
            )
        ).all()
    return {int(row[0]): tuple(row[1:]) for row in rows}


def recompute(h: Harness) -> dict[str, Any]:
    response = h.client.post("/api/scores/rfm/recompute", headers=h.admin)
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


def test_recompute_scores_customers_by_quintiles_and_names_their_segment(db_url: str) -> None:
    with harness(db_url) as h:
        ids = setup_customers(h)
        summary = recompute(h)
        assert summary["computed_at"] == ms_to_iso(NOW)
        assert (summary["customers"], summary["changed"], summary["cleared"]) == (7, 7, 0)
        assert {s["name"]: s["customers"] for s in summary["segments"] if s["customers"]} == {
            "Promising": 1,
            "Loyal Customers": 1,
            "Hibernating": 1,
            "At Risk": 1,
            "Can't Lose": 1,
            "Need Attention": 1,
            "Potential Loyalists": 1,
        }
        rows = rfm_rows(h)
        assert rows == {
            **{ids[u]: (*EXPECTED[u], NOW) for u in CUSTOMERS},
            ids["visitor"]: (None, None, None, None, None),  # its lead score's row
        }

        # Nothing changed: nothing is written, rfm_at stays when the scores were set.
        h.clock.advance(3_600_000)  # type: ignore[attr-defined]
        again = recompute(h)
        assert (again["customers"], again["changed"], again["cleared"]) == (7, 0, 0)
        assert rfm_rows(h) == rows


def test_grid_counts_customers_and_revenue_per_cell_and_segment(db_url: str) -> None:
    with harness(db_url, shop_currency="USD") as h:
        setup_customers(h)
        empty = h.client.get("/api/scores/rfm", headers=h.admin).json()
        assert empty["customers"] == 0
        assert empty["last_change_at"] is None
        assert len(empty["cells"]) == 25
        recompute(h)
        grid = h.client.get("/api/scores/rfm", headers=h.admin).json()
        assert grid["customers"] == 7
        assert grid["revenue"] == 1880.0
        assert grid["currency"] == "USD"
        assert grid["last_change_at"] == ms_to_iso(NOW)
        assert [(c["recency"], c["frequency"]) for c in grid["cells"][:6]] == [
            (5, 1),
            (5, 2),
            (5, 3),
            (5, 4),
            (5, 5),
            (4, 1),
        ]
        filled = {
            (c["recency"], c["frequency"]): (c["segment"], c["customers"], c["revenue"])
            for c in grid["cells"]
            if c["customers"]
        }
        assert filled == {
            (4, 1): ("Promising", 1, 50.0),
            (4, 4): ("Loyal Customers", 1, 500.0),
            (1, 2): ("Hibernating", 1, 20.0),
            (2, 4): ("At Risk", 1, 300.0),
            (2, 5): ("Can't Lose", 1, 900.0),
            (3, 3): ("Need Attention", 1, 80.0),
            (5, 2): ("Potential Loyalists", 1, 30.0),
        }
        champions = next(s for s in grid["segments"] if s["name"] == "Champions")
        assert champions == {
            "name": "Champions",
            "description": "Bought recently, buy often",
            "recency": "5",
            "frequency": "4-5",
            "customers": 0,
            "revenue": 0.0,
        }
        assert sum(s["customers"] for s in grid["segments"]) == 7
        with h.services.db.read() as conn:
            assert rfm_grid(conn).customers == 7


def test_former_customers_lose_their_scores_and_merges_keep_one_row(db_url: str) -> None:
    with harness(db_url) as h:
        ids = setup_customers(h)
        # A customer known only by a browser, who later signs in as u7.
        h.batch(
            [
                order("", "anon-1", 5, 70.0, anonymousId="browser-9"),
            ]
        )
        h.drain()
        browser = h.profile("anonymous_id:browser-9")["profile_id"]
        changes: list[int] = []
        first = recompute_rfm(
            h.services.db, NOW, chunk_size=3, on_change=lambda _c, pids: changes.extend(pids)
        )
        assert (first.customers, first.changed) == (8, 8)
        assert sorted(changes) == sorted([*(ids[u] for u in CUSTOMERS), browser])

        # u3 cancels their only order; the browser turns out to be u7.
        h.send(
            "track",
            {
                "userId": "u3",
                "event": "Order Cancelled",
                "messageId": "cancel-1",
                "properties": {"order_id": "u3-0"},
            },
        )
        h.send("identify", {"userId": "u7", "anonymousId": "browser-9", "messageId": "link-1"})
        h.drain()
        assert h.profile("user_id:u7")["profile_id"] == ids["u7"]
        rows = rfm_rows(h)
        assert browser not in rows  # the merge deleted the absorbed profile's row
        assert ids["u3"] in rows

        h.clock.advance(DAY)  # type: ignore[attr-defined]
        changes.clear()
        second = recompute_rfm(
            h.services.db, NOW + DAY, on_change=lambda _c, pids: changes.extend(pids)
        )
        assert second.customers == 6
        assert second.cleared == 1
        rows = rfm_rows(h)
        assert ids["u3"] not in rows  # no RFM and no lead score left: the row is gone
        assert set(rows) == {pid for user, pid in ids.items() if user != "u3"}
        assert ids["u3"] in changes
        # u7 now has 2 orders (1 and 5 days ago): the most recent buyer still.
        assert rows[ids["u7"]][0] == 5


def test_cleared_rows_keep_their_lead_score(db_url: str) -> None:
    with harness(db_url) as h:
        ids = setup_customers(h)
        h.send("page", {"userId": "u3", "name": "Home", "messageId": "u3-visit"})
        h.drain()
        recompute_rfm(h.services.db, NOW)
        h.send(
            "track",
            {
                "userId": "u3",
                "event": "Order Cancelled",
                "messageId": "cancel-1",
                "properties": {"order_id": "u3-0"},
            },
        )
        h.drain()
        assert recompute_rfm(h.services.db, NOW + 1).cleared == 1
        s = t.profile_scores
        with h.services.db.read() as conn:
            row = conn.execute(sa.select(s).where(s.c.profile_id == ids["u3"])).one()
        assert (row.rfm_segment, row.rfm_recency, row.rfm_at) == (None, None, None)
        assert row.lead_score == 1.0


def test_an_older_run_does_not_overwrite_a_newer_one(db_url: str) -> None:
    with harness(db_url) as h:
        ids = setup_customers(h)
        recompute_rfm(h.services.db, NOW + 10)
        s = t.profile_scores
        with h.services.db.write() as conn:
            conn.execute(
                s.update()
                .where(s.c.profile_id == ids["u1"])
                .values(rfm_recency=1, rfm_segment="Hibernating")
            )
        # A run that started earlier finishing late leaves the newer row alone.
        late = recompute_rfm(h.services.db, NOW + 5)
        assert late.changed == 1  # it differed, but the write was refused
        assert rfm_rows(h)[ids["u1"]] == (1, 1, 2, "Hibernating", NOW + 10)


def test_recompute_needs_an_admin_key_and_is_audited(db_url: str) -> None:
    with harness(db_url) as h:
        setup_customers(h)
        assert h.client.post("/api/scores/rfm/recompute").status_code == 401
        assert h.client.get("/api/scores/rfm").status_code == 401
        recompute(h)
        with h.services.db.read() as conn:
            entries = conn.execute(
                sa.select(t.audit_log.c.action, t.audit_log.c.target, t.audit_log.c.details).where(
                    t.audit_log.c.action.like("scores.%")
                )
            ).all()
        assert [tuple(e) for e in entries] == [
            ("scores.rfm_recompute", None, {"customers": 7, "changed": 7, "cleared": 0})
        ]
