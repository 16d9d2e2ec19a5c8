"""Lead scores end to end, on SQLite and PostgreSQL: events sent through /v1 earn points
by the default rules and by rules added through the admin API; decay with the clock
advanced; late events; the cap; merges; the refresh; validation and the audit log."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from shopkeeper.segments.scores.lead_job import refresh_lead_scores_task
from shopkeeper.storage import tables as t
from shopkeeper.timeutil import ms_to_iso
from tests.harness import NOW, Harness, harness

DAY = 86_400_000
MONTH = 30 * DAY


def track(h: Harness, mid: str, event: str, at: int, props: Any = None, **ids: Any) -> None:
    h.send(
        "track",
        {
            "event": event,
            "messageId": mid,
            "timestamp": ms_to_iso(at),
            "properties": props or {},
            **ids,
        },
    )


def page(h: Harness, mid: str, at: int, name: str = "Home", **ids: Any) -> None:
    h.send("page", {"name": name, "messageId": mid, "timestamp": ms_to_iso(at), **ids})


def score(h: Harness, ref: str) -> tuple[float, int] | None:
    pid = h.profile(ref)["profile_id"]
    s = t.profile_scores
    with h.services.db.read() as conn:
        row = conn.execute(
            sa.select(s.c.lead_score, s.c.lead_score_at).where(s.c.profile_id == pid)
        ).first()
    return None if row is None else (float(row[0]), int(row[1]))


def now(h: Harness) -> int:
    return h.clock.now_ms()


def advance(h: Harness, ms: int) -> None:
    h.clock.advance(ms)  # type: ignore[attr-defined]


def test_default_rules_earn_points_that_halve_every_half_life(db_url: str) -> None:
    with harness(db_url) as h:
        page(h, "m1", NOW, anonymousId="anon-1")  # 1
        track(h, "m2", "Product Viewed", NOW, {"product_id": "p1"}, anonymousId="anon-1")  # 2
        track(h, "m3", "Order Completed", NOW, {"revenue": 10}, anonymousId="anon-1")  # 0
        h.send("identify", {"anonymousId": "anon-1", "messageId": "m4", "traits": {"x": 1}})
        h.drain()
        assert score(h, "anonymous_id:anon-1") == (3.0, NOW)

        advance(h, MONTH)
        track(h, "m5", "Product Added", now(h), {"product_id": "p1"}, anonymousId="anon-1")
        h.drain()
        assert score(h, "anonymous_id:anon-1") == (3.0 * 0.5 + 5.0, NOW + MONTH)

        # A sign-up stamped a month ago arrives only now: it adds what it would have
        # added on time (10 points, halved once since).
        track(h, "m6", "Signed Up", NOW, anonymousId="anon-1")
        h.drain()
        assert score(h, "anonymous_id:anon-1") == (6.5 + 5.0, NOW + MONTH)

        # From a device clock a day ahead: counts as now, never more than its points.
        track(h, "m7", "Email Opened", now(h) + DAY, anonymousId="anon-1")
        h.drain()
        assert score(h, "anonymous_id:anon-1") == (13.5, NOW + MONTH)

        # The refresh decays every stored score to now.
        advance(h, 2 * MONTH)
        updated = refresh_lead_scores_task(h.services.db, h.services.settings, now(h))
        assert updated == 1
        assert score(h, "anonymous_id:anon-1") == (13.5 * 0.25, NOW + 3 * MONTH)
        assert refresh_lead_scores_task(h.services.db, h.services.settings, now(h)) == 0


def test_half_life_and_cap_come_from_settings(db_url: str) -> None:
    with harness(db_url, lead_score_half_life_days=10, lead_score_cap=25) as h:
        for n in range(3):
            track(h, f"s{n}", "Signed Up", NOW, userId="u1")
        h.drain()
        assert score(h, "user_id:u1") == (25.0, NOW)  # 30 points, capped
        advance(h, 10 * DAY)
        refresh_lead_scores_task(h.services.db, h.services.settings, now(h))
        assert score(h, "user_id:u1") == (12.5, NOW + 10 * DAY)  # excess not banked
        rules = h.client.get("/api/scores/lead-rules", headers=h.admin).json()
        assert (rules["half_life_days"], rules["cap"]) == (10.0, 25.0)


def test_merged_profiles_fold_their_scores_into_the_survivor(db_url: str) -> None:
    with harness(db_url) as h:
        track(h, "a1", "Signed Up", NOW, userId="u1")  # 10, the older profile
        h.drain()
        page(h, "b1", NOW, anonymousId="anon-2")
        track(h, "b2", "Product Added", NOW, {"product_id": "p"}, anonymousId="anon-2")  # 6
        h.drain()
        survivor = h.profile("user_id:u1")["profile_id"]
        absorbed = h.profile("anonymous_id:anon-2")["profile_id"]
        advance(h, MONTH)
        # The event that links them also earns points (2, now).
        track(h, "c1", "Email Opened", now(h), userId="u1", anonymousId="anon-2")
        h.drain()
        assert h.profile("anonymous_id:anon-2")["profile_id"] == survivor
        assert score(h, "user_id:u1") == ((10.0 + 6.0) * 0.5 + 2.0, NOW + MONTH)
        with h.services.db.read() as conn:
            ids = conn.execute(sa.select(t.profile_scores.c.profile_id)).scalars().all()
        assert ids == [survivor]
        assert absorbed != survivor


def test_rules_added_through_the_api_replace_the_defaults(db_url: str) -> None:
    with harness(db_url) as h:
        listed = h.client.get("/api/scores/lead-rules", headers=h.admin).json()
        assert listed["using_defaults"] is True
        assert [(r["event"], r["points"]) for r in listed["rules"]] == [
            ("Page Viewed", 1.0),
            ("Product Viewed", 2.0),
            ("Product Added", 5.0),
            ("Email Opened", 2.0),
            ("Email Link Clicked", 3.0),
            ("Signed Up", 10.0),
        ]
        response = h.client.post(
            "/api/scores/lead-rules",
            json={
                "name": "Viewed a sofa",
                "event": "Product Viewed",
                "where": {"category": "Sofas"},
                "points": 5,
            },
            headers=h.admin,
        )
        assert response.status_code == 201, response.text
        sofa = response.json()
        assert sofa == {
            "id": sofa["id"],
            "name": "Viewed a sofa",
            "event": "Product Viewed",
            "where": {"category": "Sofas"},
            "condition": None,
            "points": 5.0,
            "created_at": ms_to_iso(NOW),
        }
        chosen = h.client.post(
            "/api/scores/lead-rules",
            json={
                "name": "Chosen products",
                "event": "Product Viewed",
                "where": {"product_id": ["p1", "p2"]},
                "points": 3,
            },
            headers=h.admin,
        ).json()
        listed = h.client.get("/api/scores/lead-rules", headers=h.admin).json()
        assert listed["using_defaults"] is False
        assert [r["id"] for r in listed["rules"]] == [sofa["id"], chosen["id"]]

        page(h, "v0", NOW, anonymousId="anon-3")  # no rule for pages any more
        track(h, "v1", "Product Viewed", NOW, {"category": "Sofas"}, anonymousId="anon-3")
        track(h, "v2", "Product Viewed", NOW, {"category": "Lamps"}, anonymousId="anon-3")
        track(
            h,
            "v3",
            "Product Viewed",
            NOW,
            {"category": "Sofas", "product_id": "p2"},
            anonymousId="anon-3",
        )
        h.drain()
        assert score(h, "anonymous_id:anon-3") == (5.0 + 5.0 + 3.0, NOW)

        deleted = h.client.delete(f"/api/scores/lead-rules/{sofa['id']}", headers=h.admin)
        assert deleted.status_code == 200
        assert deleted.json()["name"] == "Viewed a sofa"
        track(h, "v4", "Product Viewed", NOW, {"category": "Sofas"}, anonymousId="anon-3")
        h.drain()
        assert score(h, "anonymous_id:anon-3") == (13.0, NOW)  # the rule is gone

        missing = h.client.delete(f"/api/scores/lead-rules/{sofa['id']}", headers=h.admin)
        assert missing.status_code == 404
        assert missing.json()["error"]["code"] == "not_found"

        with h.services.db.read() as conn:
            entries = conn.execute(
                sa.select(t.audit_log.c.action, t.audit_log.c.target, t.audit_log.c.details)
                .where(t.audit_log.c.action.like("lead_rule.%"))
                .order_by(t.audit_log.c.id)
            ).all()
        assert [tuple(e) for e in entries] == [
            (
                "lead_rule.create",
                f"lead rule {sofa['id']}",
                {"event": "Product Viewed", "points": 5.0},
            ),
            (
                "lead_rule.create",
                f"lead rule {chosen['id']}",
                {"event": "Product Viewed", "points": 3.0},
            ),
            (
                "lead_rule.delete",
                f"lead rule {sofa['id']}",
                {"event": "Product Viewed", "points": 5.0},
            ),
        ]


def test_bad_rules_get_clear_errors(db_url: str) -> None:
    with harness(db_url) as h:

        def post(body: Any) -> tuple[int, dict[str, Any]]:
            response = h.client.post("/api/scores/lead-rules", json=body, headers=h.admin)
            return response.status_code, response.json()

        good = {"name": "R", "event": "Signed Up", "points": 3}
        status, body = post({**good, "points": 0})
        assert status == 422
        assert body["error"]["code"] == "invalid_rule"
        assert body["error"]["field"] == "points"
        status, body = post({**good, "where": {"category": []}})
        assert (status, body["error"]["field"]) == (422, "where.category")
        status, body = post({**good, "where": "category = Sofas"})
        assert (status, body["error"]["field"]) == (422, "where")
        status, body = post({"name": "R", "points": 3})
        assert (status, body["error"]["field"]) == (422, "event")
        status, body = post({**good, "colour": "red"})
        assert (status, body["error"]["field"]) == (422, "colour")
        status, body = post([1, 2])
        assert status == 422
        for bad_id in ("abc", "0", str(2**70)):
            response = h.client.delete(f"/api/scores/lead-rules/{bad_id}", headers=h.admin)
            assert response.status_code == 422, bad_id
        assert h.client.post("/api/scores/lead-rules", json=good).status_code == 401
        # Nothing was stored: the defaults still apply.
        listed = h.client.get("/api/scores/lead-rules", headers=h.admin).json()
        assert listed["using_defaults"] is True


def test_profile_condition_rules_award_points_once_per_coming_to_satisfy(db_url: str) -> None:
    with harness(db_url) as h:

        def post(body: Any) -> Any:
            return h.client.post("/api/scores/lead-rules", json=body, headers=h.admin)

        made = post({"name": "Manager in Norway", "points": 15,
                     "condition": 'job_title contains "Manager" and country = "NO"'})  # fmt: skip
        assert made.status_code == 201, made.text
        assert made.json()["event"] is None
        assert made.json()["condition"] == 'job_title contains "Manager" and country = "NO"'
        # Mistakes in the condition are answered where they are.
        bad = post({"name": "x", "points": 1, "condition": "job_title contains"})
        assert bad.status_code == 422
        assert bad.json()["error"]["field"] == "condition"
        assert bad.json()["column"] == 19
        both = post({"name": "x", "points": 1, "event": "Signed Up", "condition": "known"})
        assert both.status_code == 422
        unknown = post({"name": "x", "points": 1, "condition": 'in segment "nope"'})
        assert unknown.status_code == 422

        def identify(mid: str, traits: dict[str, Any], at: int) -> None:
            message = {"userId": "ana", "messageId": mid, "traits": traits,
                       "timestamp": ms_to_iso(at), "context": {"locale": "nb-NO"}}  # fmt: skip
            h.send("identify", message)
            h.drain()

        identify("i1", {"job_title": "Sales Manager", "country": "NO"}, NOW)
        assert score(h, "user_id:ana") == (15.0, NOW)
        # Still satisfied: nothing more.
        identify("i2", {"plan": "gold"}, NOW)
        assert score(h, "user_id:ana") == (15.0, NOW)
        # Stops, then comes to satisfy it again: earned again.
        identify("i3", {"job_title": "Engineer"}, NOW)
        identify("i4", {"job_title": "Engineering Manager"}, NOW)
        stored = score(h, "user_id:ana")
        assert stored is not None
        assert stored[0] == 30.0
        # Deleting the rule forgets who satisfied it.
        rule_id = made.json()["id"]
        assert (
            h.client.delete(f"/api/scores/lead-rules/{rule_id}", headers=h.admin).status_code == 200
        )
        with h.services.db.read() as conn:
            left = conn.execute(
                sa.select(sa.func.count()).select_from(t.lead_rule_matches)
            ).scalar()
        assert left == 0
