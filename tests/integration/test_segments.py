"""Saved segments end to end, on SQLite and PostgreSQL: saving through the API with clear
errors, real-time entries and exits as events arrive through /v1, the history stream,
time windows left by the scheduled refresh, merges, preview, explain, members, sizes,
a profile's segments and scores, deletion rules and the audit log."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from shopkeeper.config import Settings
from shopkeeper.segments.jobs import record_sizes, refresh_due_segments
from shopkeeper.storage import tables as t
from shopkeeper.timeutil import ms_to_iso
from tests.harness import NOW, Harness, harness

HOUR = 3_600_000
DAY = 24 * HOUR


def track(
    h: Harness, mid: str, event: str, props: Any = None, at: int | None = None, **ids: Any
) -> None:
    h.send(
        "track",
        {
            "event": event,
            "messageId": mid,
            "timestamp": ms_to_iso(at if at is not None else h.clock.now_ms()),
            "properties": props or {},
            **ids,
        },
    )


def save(h: Harness, key: str, condition: Any, **extra: Any) -> dict[str, Any]:
    response = h.client.post(
        "/api/segments",
        json={"key": key, "name": key.title(), "condition": condition, **extra},
        headers=h.admin,
    )
    assert response.status_code == 201, response.text
    return response.json()  # type: ignore[no-any-return]


def member_keys(h: Harness, ref: str) -> set[str]:
    response = h.client.get(f"/api/profiles/{ref}/segments", headers=h.admin)
    assert response.status_code == 200, response.text
    return {s["key"] for s in response.json()["segments"]}


def history(h: Harness, key: str) -> list[tuple[str, int]]:
    response = h.client.get(f"/api/segments/{key}/history?limit=1000", headers=h.admin)
    assert response.status_code == 200, response.text
    return [(c["event"], c["profile_id"]) for c in reversed(response.json()["changes"])]


def test_people_enter_and_leave_a_realtime_segment_as_events_arrive(db_url: str) -> None:
    with harness(db_url) as h:
        created = save(h, "carts", "cart_items_count > 0")
        assert created["size"] == 0
        assert created["realtime"] is True
        product = {"product_id": "p1", "price": 10, "quantity": 1}
        track(h, "a1", "Product Added", product, userId="ana")
        track(h, "b1", "Product Viewed", {"product_id": "p1"}, userId="bo")
        h.drain()
        ana = h.profile("user_id:ana")["profile_id"]
        assert member_keys(h, "user_id:ana") == {"carts"}
        assert member_keys(h, "user_id:bo") == set()
        assert history(h, "carts") == [("Segment Entered", ana)]

        track(h, "a2", "Product Removed", product, userId="ana")
        h.drain()
        assert member_keys(h, "user_id:ana") == set()
        assert history(h, "carts") == [("Segment Entered", ana), ("Segment Exited", ana)]
        # Entering again is a second entry, not a correction of the first.
        track(h, "a3", "Product Added", product, userId="ana")
        h.drain()
        assert [e for e, _ in history(h, "carts")] == [
            "Segment Entered", "Segment Exited", "Segment Entered",
        ]  # fmt: skip
        metrics = h.client.get("/metrics").text
        assert 'shopkeeper_segment_changes_total{change="entered"} 2.0' in metrics
        assert 'shopkeeper_segment_changes_total{change="exited"} 1.0' in metrics
        detail = h.client.get("/api/segments/carts", headers=h.admin).json()
        assert detail["size"] == 1
        assert detail["entered_7_days"] == 2
        assert detail["exited_7_days"] == 1


def test_event_conditions_with_windows_and_product_filters(db_url: str) -> None:
    with harness(db_url) as h:
        put = h.client.put(
            "/api/products/sofa-1",
            json={"name": "Sofa", "category": "Sofas", "price": 900},
            headers=h.admin,
        )
        assert put.status_code in (200, 201), put.text
        save(
            h,
            "sofa-lookers",
            'did "Product Viewed" at least 3 times within 7 days where product.category = "Sofas"'
            ' and not did "Product Added" where product.category = "Sofas"',
        )
        for n in range(3):
            track(h, f"v{n}", "Product Viewed", {"product_id": "sofa-1"}, userId="ana",
                  at=NOW - n * DAY)  # fmt: skip
        # Two views inside the window and one 10 days ago: not enough.
        for n, days in enumerate((0, 1, 10)):
            track(h, f"w{n}", "Product Viewed", {"product_id": "sofa-1"}, userId="bo",
                  at=NOW - days * DAY)  # fmt: skip
        h.drain()
        assert member_keys(h, "user_id:ana") == {"sofa-lookers"}
        assert member_keys(h, "user_id:bo") == set()
        track(h, "x", "Product Added", {"product_id": "sofa-1"}, userId="ana")
        h.drain()
        assert member_keys(h, "user_id:ana") == set()


def test_time_windows_are_left_by_the_scheduled_refresh(db_url: str) -> None:
    with harness(db_url) as h:
        save(h, "active", "last_seen_at within 1 hour")
        track(h, "a", "Signed In", userId="ana")
        h.drain()
        assert member_keys(h, "user_id:ana") == {"active"}
        settings = h.services.settings
        # Nothing is due before the configured delay.
        h.clock.advance(2 * 60_000)  # type: ignore[attr-defined]
        assert refresh_due_segments(h.services.db, settings, h.clock.now_ms()) == []
        h.clock.advance(HOUR)  # type: ignore[attr-defined]
        done = refresh_due_segments(h.services.db, settings, h.clock.now_ms())
        assert [(r.key, r.exited, r.size) for r in done] == [("active", 1, 0)]
        assert member_keys(h, "user_id:ana") == set()


def test_scheduled_segments_refresh_at_their_interval(db_url: str) -> None:
    with harness(db_url) as h:
        save(h, "buyers", "orders_count >= 1", realtime=False, refresh_minutes=60)
        track(h, "o", "Order Completed", {"order_id": "o1", "revenue": 50}, userId="ana")
        h.drain()
        # Not real time: nobody enters until the refresh.
        assert member_keys(h, "user_id:ana") == set()
        settings = h.services.settings
        h.clock.advance(30 * 60_000)  # type: ignore[attr-defined]
        assert refresh_due_segments(h.services.db, settings, h.clock.now_ms()) == []
        h.clock.advance(31 * 60_000)  # type: ignore[attr-defined]
        assert [
            r.entered for r in refresh_due_segments(h.services.db, settings, h.clock.now_ms())
        ] == [1]
        assert member_keys(h, "user_id:ana") == {"buyers"}


def test_a_merge_moves_membership_to_the_survivor(db_url: str) -> None:
    with harness(db_url) as h:
        save(h, "viewers", 'did "Product Viewed"')
        track(h, "v", "Product Viewed", {"product_id": "p"}, anonymousId="anon-1")
        h.drain()
        anon = h.profile("anonymous_id:anon-1")["profile_id"]
        track(h, "s", "Signed In", userId="ana")
        h.drain()
        ana = h.profile("user_id:ana")["profile_id"]
        assert anon != ana
        track(h, "link", "Signed In", userId="ana", anonymousId="anon-1")
        h.drain()
        survivor = h.profile("user_id:ana")["profile_id"]
        absorbed = ({anon, ana} - {survivor}).pop()
        with h.services.db.read() as conn:
            members = set(conn.execute(sa.select(t.segment_members.c.profile_id)).scalars())
        assert members == {survivor}
        if absorbed == anon:
            assert history(h, "viewers") == [
                ("Segment Entered", anon), ("Segment Exited", anon), ("Segment Entered", ana),
            ]  # fmt: skip
        else:
            assert history(h, "viewers") == [("Segment Entered", anon)]


def test_saving_refuses_what_cannot_work_with_clear_errors(db_url: str) -> None:
    with harness(db_url) as h:

        def post(body: dict[str, Any]) -> Any:
            return h.client.post("/api/segments", json=body, headers=h.admin)

        bad = post({"key": "x", "name": "X", "condition": "orders_count >="})
        assert bad.status_code == 422
        error = bad.json()
        assert error["error"]["field"] == "condition"
        assert error["line"] == 1
        assert error["column"] == 16
        bad = post(
            {
                "key": "x",
                "name": "X",
                "condition": "orders_count >= 1\nand lats_seen_at within 1 day",
            }
        )
        assert bad.status_code == 422
        assert bad.json()["line"] == 2
        bad = post({"key": "x", "name": "X", "condition": 'in segment "nope"'})
        assert bad.status_code == 422
        assert bad.json()["error"]["code"] == "unknown_segment"
        bad = post({"key": "Bad Key", "name": "X", "condition": "known"})
        assert bad.status_code == 422
        assert bad.json()["error"]["field"] == "key"
        bad = post({"key": "x", "name": "", "condition": "known"})
        assert bad.status_code == 422
        assert bad.json()["error"]["field"] == "name"
        bad = post({"key": "x", "name": "X", "condition": "known", "refresh_minutes": 0})
        assert bad.status_code == 422
        assert bad.json()["error"]["field"] == "refresh_minutes"
        bad = post({"key": "x", "name": "X", "condition": {"all": "nonsense"}})
        assert bad.status_code == 422
        assert "pointer" in bad.json()
        for huge in ("last_seen_at within 999999999999 days",
                     'did "Order Completed" at least 99999999999999999999 times'):  # fmt: skip
            bad = post({"key": "x", "name": "X", "condition": huge})
            assert bad.status_code == 422, huge
            preview = h.client.post(
                "/api/segments/preview", json={"condition": huge}, headers=h.admin
            )
            assert preview.status_code == 422, huge
        bad = post({"key": "x", "name": "X", "condition": 42})
        assert bad.status_code == 422

        save(h, "a", "known")
        save(h, "b", 'in segment "a" and orders_count >= 1')
        assert post({"key": "a", "name": "A", "condition": "known"}).status_code == 409
        # a -> b -> a: refused, and "a" is unchanged.
        cycle = h.client.patch(
            "/api/segments/a", json={"condition": 'in segment "b"'}, headers=h.admin
        )
        assert cycle.status_code == 422
        assert cycle.json()["error"]["code"] == "segment_cycle"
        assert h.client.get("/api/segments/a", headers=h.admin).json()["condition"] == "known"
        # Deleting a segment another one uses is refused, with the user named.
        refused = h.client.delete("/api/segments/a", headers=h.admin)
        assert refused.status_code == 409
        assert '"b"' in refused.json()["error"]["message"]
        assert h.client.delete("/api/segments/b", headers=h.admin).status_code == 204
        assert h.client.delete("/api/segments/a", headers=h.admin).status_code == 204
        assert h.client.get("/api/segments/a", headers=h.admin).status_code == 404
        actions = [
            e["action"] for e in h.client.get("/api/audit", headers=h.admin).json()["entries"]
        ]
        assert actions.count("segment.create") == 2
        assert actions.count("segment.delete") == 2


def test_json_conditions_are_stored_as_readable_text(db_url: str) -> None:
    with harness(db_url) as h:
        preview = h.client.post(
            "/api/segments/preview", json={"condition": "orders_count >= 2"}, headers=h.admin
        ).json()
        created = save(h, "repeat", preview["condition_json"])
        assert created["condition"] == "orders_count >= 2"
        assert created["condition_json"] == preview["condition_json"]


def test_preview_counts_and_samples_an_unsaved_condition(db_url: str) -> None:
    with harness(db_url) as h:
        for n in range(12):
            h.send(
                "identify",
                {"userId": f"u{n}", "traits": {"plan": "gold" if n % 3 == 0 else "free"}},
            )
        h.drain()
        response = h.client.post(
            "/api/segments/preview",
            json={"condition": 'plan = "gold"', "sample": 3},
            headers=h.admin,
        )
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["count"] == 4
        assert len(body["sample"]) == 3
        # Previewing saves nothing.
        assert h.client.get("/api/segments", headers=h.admin).json()["segments"] == []
        bad = h.client.post("/api/segments/preview", json={"condition": "plan ="}, headers=h.admin)
        assert bad.status_code == 422
        assert bad.json()["column"] == 7


def test_explain_names_the_clause_that_keeps_a_profile_out(db_url: str) -> None:
    with harness(db_url) as h:
        save(h, "big-buyers", "orders_count >= 1 and total_revenue >= 100")
        track(h, "o", "Order Completed", {"order_id": "o1", "revenue": 40}, userId="ana")
        h.drain()
        response = h.client.post(
            "/api/segments/explain",
            json={"key": "big-buyers", "profile": "user_id:ana"},
            headers=h.admin,
        )
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["holds"] is False
        assert body["member"] is False
        assert body["kept_out_by"] == [
            {"clause": "total_revenue >= 100", "seen": "total_revenue is 40"}
        ]
        ok = h.client.post(
            "/api/segments/explain",
            json={"condition": "orders_count >= 1", "profile": "user_id:ana"},
            headers=h.admin,
        ).json()
        assert ok["holds"] is True
        assert ok["kept_out_by"] == []
        missing = h.client.post(
            "/api/segments/explain", json={"key": "big-buyers", "profile": "user_id:nobody"},
            headers=h.admin,
        )  # fmt: skip
        assert missing.status_code == 404


def test_members_pages_sizes_and_trend(db_url: str) -> None:
    with harness(db_url) as h:
        save(h, "everyone", "known")
        for n in range(7):
            h.send("identify", {"userId": f"u{n}", "traits": {"email": f"u{n}@example.com"}})
        h.drain()
        seen: list[int] = []
        offset: int | None = 0
        while offset is not None:
            page = h.client.get(
                f"/api/segments/everyone/members?limit=3&offset={offset}", headers=h.admin
            ).json()
            assert page["total"] == 7
            seen += [m["profile_id"] for m in page["members"]]
            offset = page["next_offset"]
        assert len(seen) == len(set(seen)) == 7
        record_sizes(h.services.db, h.services.settings, h.clock.now_ms())
        listed = h.client.get("/api/segments", headers=h.admin).json()["segments"]
        assert [(s["key"], s["size"]) for s in listed] == [("everyone", 7)]
        detail = h.client.get("/api/segments/everyone", headers=h.admin).json()
        assert detail["sizes"][-1]["size"] == 7


def test_a_profile_lists_its_segments_and_scores(db_url: str) -> None:
    with harness(db_url) as h:
        save(h, "buyers", "orders_count >= 1")
        save(h, "lookers", 'did "Product Viewed"')
        track(h, "o", "Order Completed", {"order_id": "o1", "revenue": 40}, userId="ana")
        h.drain()
        body = h.client.get("/api/profiles/user_id:ana/segments", headers=h.admin).json()
        assert [s["key"] for s in body["segments"]] == ["buyers"]
        assert body["scores"]["funnel_stage"] == "customer"
        assert (
            h.client.get("/api/profiles/user_id:nobody/segments", headers=h.admin).status_code
            == 404
        )


def test_nested_segments_follow_their_parts(db_url: str) -> None:
    with harness(db_url) as h:
        save(h, "buyers", "orders_count >= 1")
        save(h, "staff", 'email starts with "staff"')
        save(h, "real-buyers", 'in segment "buyers" and not in segment "staff"')
        h.send("identify", {"userId": "s", "traits": {"email": "staff1@shop.example"}})
        track(h, "o1", "Order Completed", {"order_id": "o1", "revenue": 5}, userId="s")
        track(h, "o2", "Order Completed", {"order_id": "o2", "revenue": 5}, userId="c")
        h.drain()
        assert member_keys(h, "user_id:s") == {"buyers", "staff"}
        assert member_keys(h, "user_id:c") == {"buyers", "real-buyers"}


def test_no_segments_means_no_work_and_settings_default(db_url: str) -> None:
    assert Settings(database_url=db_url).segment_time_refresh_minutes == 5
    with harness(db_url) as h:
        track(h, "a", "Signed In", userId="ana")
        h.drain()
        with h.services.db.read() as conn:
            assert (
                conn.execute(sa.select(sa.func.count()).select_from(t.segment_history)).scalar()
                == 0
            )
