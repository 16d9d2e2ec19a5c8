"""Journeys through the admin API and the real pipeline, on SQLite and PostgreSQL:
validation errors, versions (enrollments in flight keep theirs), re-entry rules,
archiving, merges, and the outbox channel."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from shopkeeper.clock import FixedClock
from shopkeeper.storage import tables as t
from tests.harness import NOW, Harness, harness

HOUR = 3_600_000

NURTURE = {
    "name": "Nurture",
    "entry": {"event": "Signed Up"},
    "reentry": {"mode": "cooldown", "cooldown": "1d"},
    "steps": [
        {"id": "hello", "type": "send", "channel": "email", "template": "hello"},
        {"id": "wait", "type": "wait", "duration": "2h"},
        {"id": "again", "type": "send", "channel": "email", "template": "hello"},
    ],
}


def template(h: Harness) -> None:
    response = h.client.put(
        "/api/templates/hello/email",
        json={"parts": {"subject": "Hello {{ profile.first_name }}", "text": "Hi"}},
        headers=h.admin,
    )
    assert response.status_code == 200, response.text


def create(h: Harness, definition: Any, status: str = "active", key: str = "nurture") -> Any:
    return h.client.post(
        "/api/journeys",
        json={"key": key, "definition": definition, "status": status},
        headers=h.admin,
    )


def sign_up(h: Harness, user: str, consent: bool = True) -> None:
    h.send("identify", {"userId": user, "traits": {"email": f"{user}@example.com",
                                                  "firstName": user.title(),
                                                  "consent": {"email": consent}}})  # fmt: skip
    h.send("track", {"userId": user, "event": "Signed Up"})
    h.drain()


def enrollments(h: Harness) -> list[Any]:
    with h.services.db.read() as conn:
        return conn.execute(sa.select(t.enrollments).order_by(t.enrollments.c.id)).all()


def tick(h: Harness, clock: FixedClock, ms: int) -> None:
    clock.advance(ms)
    assert h.services.journeys is not None
    assert h.services.deliverer is not None
    h.services.journeys.fire_due(clock.now_ms())
    h.services.deliverer.drain(clock.now_ms())
    h.drain()


def test_invalid_definitions_get_422_with_the_field(db_url: str) -> None:
    with harness(db_url) as h:
        bad = {**NURTURE, "steps": [{"id": "hello", "type": "send", "channel": "email"}]}
        response = create(h, bad, status="draft")
        assert response.status_code == 422
        assert response.json()["error"] == {
            "code": "invalid_journey",
            "message": "template is required.",
            "field": "steps[0].template",
        }
        response = create(h, "name: x\nentry: [", status="draft")
        assert response.status_code == 422
        assert "YAML" in response.json()["error"]["message"]
        response = create(h, {**NURTURE, "entry": {"segment": "nope"}}, status="draft")
        assert response.status_code == 422
        assert response.json()["error"]["message"] == 'There is no segment "nope".'
        # Switching on needs the templates.
        assert create(h, NURTURE, status="draft").status_code == 201
        response = h.client.post(
            "/api/journeys/nurture/status", json={"status": "active"}, headers=h.admin
        )
        assert response.status_code == 422
        assert 'no template "hello"' in response.json()["error"]["message"]
        assert create(h, NURTURE, status="draft").status_code == 409
        assert h.client.get("/api/journeys/none", headers=h.admin).status_code == 404
        check = h.client.post(
            "/api/journeys/validate", json={"definition": bad}, headers=h.admin
        ).json()
        assert check == {
            "valid": False,
            "error": {"message": "template is required.", "field": "steps[0].template"},
        }


def test_versions_leave_enrollments_in_flight_alone(db_url: str) -> None:
    clock = FixedClock(NOW)
    with harness(db_url, clock=clock, quiet_hours_start=0, quiet_hours_end=0) as h:
        template(h)
        assert create(h, NURTURE).status_code == 201
        sign_up(h, "ana")
        # Version 2 drops the second message; Ana entered on version 1 and keeps it.
        two = {**NURTURE, "steps": NURTURE["steps"][:1]}
        response = h.client.put("/api/journeys/nurture", json={"definition": two}, headers=h.admin)
        assert response.json()["version"] == 2
        sign_up(h, "bo")
        tick(h, clock, 2 * HOUR)
        rows = enrollments(h)
        assert [(r.version, r.status) for r in rows] == [(1, "completed"), (2, "completed")]
        sent = h.client.get("/api/messages", params={"status": "sent"}, headers=h.admin)
        by_person = sorted(m["recipient"] for m in sent.json()["messages"])
        assert by_person == ["ana@example.com", "ana@example.com", "bo@example.com"]
        detail = h.client.get("/api/journeys/nurture", headers=h.admin).json()
        assert [v["version"] for v in detail["versions"]] == [2, 1]


def test_cooldown_reentry_and_one_enrollment_per_entry_event(db_url: str) -> None:
    clock = FixedClock(NOW)
    with harness(db_url, clock=clock, quiet_hours_start=0, quiet_hours_end=0) as h:
        template(h)
        create(h, {**NURTURE, "steps": NURTURE["steps"][:1]})
        sign_up(h, "ana")
        sign_up(h, "ana")  # within the cooldown: no second enrollment
        assert len(enrollments(h)) == 1
        tick(h, clock, 25 * HOUR)
        sign_up(h, "ana")
        assert len(enrollments(h)) == 2
        # Replaying the pipeline's hook for the same event enters nobody again.
        assert h.services.journeys is not None
        with h.services.db.write() as conn:
            rows = conn.execute(sa.select(t.enrollments.c.entry_key)).scalars().all()
        assert len(set(rows)) == 2


def test_archiving_stops_enrollments_in_flight(db_url: str) -> None:
    clock = FixedClock(NOW)
    with harness(db_url, clock=clock, quiet_hours_start=0, quiet_hours_end=0) as h:
        template(h)
        create(h, NURTURE)
        sign_up(h, "ana")
        response = h.client.post(
            "/api/journeys/nurture/status", json={"status": "archived"}, headers=h.admin
        )
        assert response.json()["stopped"] == 1
        tick(h, clock, 3 * HOUR)
        assert [r.status for r in enrollments(h)] == ["stopped"]
        sent = h.client.get("/api/messages", headers=h.admin).json()["messages"]
        assert [m["step"] for m in sent] == ["hello"]  # not "again"
        response = h.client.post(
            "/api/journeys/nurture/status", json={"status": "active"}, headers=h.admin
        )
        assert response.status_code == 409


def test_a_merge_carries_the_enrollment_to_the_survivor(db_url: str) -> None:
    clock = FixedClock(NOW)
    with harness(db_url, clock=clock, quiet_hours_start=0, quiet_hours_end=0) as h:
        template(h)
        create(h, {**NURTURE, "entry": {"event": "Signed Up"}, "steps": NURTURE["steps"][1:]})
        h.send("track", {"anonymousId": "anon-9", "event": "Signed Up"})
        h.drain()
        h.send("identify", {"userId": "cy", "traits": {"email": "cy@example.com",
                                                      "consent": {"email": True}}})  # fmt: skip
        h.drain()
        h.send("alias", {"userId": "cy", "previousId": "anon-9"})
        h.send("identify", {"userId": "cy", "anonymousId": "anon-9"})
        h.drain()
        tick(h, clock, 2 * HOUR)
        [row] = enrollments(h)
        survivor = h.profile("user_id:cy")["profile_id"]
        assert row.profile_id == survivor
        sent = h.client.get("/api/messages", params={"profile": "user_id:cy"}, headers=h.admin)
        assert [m["recipient"] for m in sent.json()["messages"]] == ["cy@example.com"]


def test_api_entry_is_idempotent_per_key(db_url: str) -> None:
    with harness(db_url, quiet_hours_start=0, quiet_hours_end=0) as h:
        template(h)
        create(h, {**NURTURE, "entry": {"api": True}, "reentry": "every_time",
                   "max_concurrent": 5})  # fmt: skip
        sign_up(h, "di")
        body = {"profile": "user_id:di", "properties": {"reason": "test"}, "key": "k-1"}
        first = h.client.post("/api/journeys/nurture/enrollments", json=body, headers=h.admin)
        again = h.client.post("/api/journeys/nurture/enrollments", json=body, headers=h.admin)
        assert first.json()["entered"] is True
        assert again.json() == {
            "entered": False, "reason": "entered on this already", "enrollment_id": None
        }  # fmt: skip
        unknown = h.client.post(
            "/api/journeys/nurture/enrollments",
            json={"profile": "user_id:nobody"},
            headers=h.admin,
        )
        assert unknown.status_code == 404


def test_a_message_queued_before_a_merge_goes_to_the_survivor(db_url: str) -> None:
    from shopkeeper.messaging import messages

    with harness(db_url, quiet_hours_start=0, quiet_hours_end=0) as h:
        template(h)
        sign_up(h, "eve")
        h.send("track", {"anonymousId": "anon-7", "event": "Product Viewed"})
        h.drain()
        ids = {
            h.profile("user_id:eve")["profile_id"],
            h.profile("anonymous_id:anon-7")["profile_id"],
        }
        h.send("identify", {"userId": "eve", "anonymousId": "anon-7"})
        h.drain()
        survivor = h.profile("user_id:eve")["profile_id"]
        [absorbed] = ids - {survivor}
        # A message queued for the profile that has since been absorbed (as one queued
        # just before the merge would be).
        with h.services.db.write() as conn:
            queued = messages.queue(
                conn, h.services.db, key="test:merge", profile_id=absorbed, channel="email",
                template="hello", transactional=False, variables={}, send_at=NOW, now_ms=NOW,
            )  # fmt: skip
        assert queued is not None
        assert h.services.deliverer is not None
        h.services.deliverer.drain(NOW)
        with h.services.db.read() as conn:
            sent = messages.get(conn, queued)
        assert sent is not None
        assert (sent.status, sent.recipient) == ("sent", "eve@example.com")
