"""The shop's sending rules (frequency caps, quiet hours) changed through the API, on
SQLite and PostgreSQL: validation that names the field, and delivery that follows the
saved rules from its next batch on, without a restart."""

from __future__ import annotations

from typing import Any

import pytest

from shopkeeper.messaging import messages
from tests.harness import NOW, Harness, harness


def template(h: Harness) -> None:
    response = h.client.put(
        "/api/templates/hello/email",
        json={"parts": {"subject": "Hello", "text": "Hi"}},
        headers=h.admin,
    )
    assert response.status_code == 200, response.text


def queue(h: Harness, key: str, profile_id: int) -> int:
    with h.services.db.write() as conn:
        queued = messages.queue(
            conn, h.services.db, key=key, profile_id=profile_id, channel="email",
            template="hello", transactional=False, variables={}, send_at=NOW, now_ms=NOW,
        )  # fmt: skip
    assert queued is not None
    return queued


def fate(h: Harness, message_id: int) -> tuple[str, str | None]:
    with h.services.db.read() as conn:
        found = messages.get(conn, message_id)
    assert found is not None
    return found.status, found.reason


@pytest.mark.parametrize(
    ("body", "field", "message"),
    [
        ({"cap_all_day": -1}, "cap_all_day", "Give a whole number from 0 to 1000."),
        ({"cap_all_week": 1001}, "cap_all_week", "Give a whole number from 0 to 1000."),
        ({"cap_per_channel_day": True}, "cap_per_channel_day", "Give a whole number"),
        ({"quiet_hours_start": 24}, "quiet_hours_start", "Give a whole number from 0 to 23."),
        ({"quiet_hours_action": "drop"}, "quiet_hours_action", "Say defer or skip."),
        ({"caps": 1}, "caps", "There is no rule 'caps'."),
    ],
)
def test_bad_rules_are_refused_with_their_field(
    db_url: str, body: dict[str, Any], field: str, message: str
) -> None:
    with harness(db_url) as h:
        response = h.client.put("/api/messaging/rules", json=body, headers=h.admin)
        assert response.status_code == 422, response.text
        error = response.json()["error"]
        assert error["field"] == field
        assert message in error["message"]
        assert h.client.get("/api/messaging/rules", headers=h.admin).json()["saved"] is False


def test_rules_need_an_object_and_an_admin_key(db_url: str) -> None:
    with harness(db_url) as h:
        assert h.client.put("/api/messaging/rules", json=[1], headers=h.admin).status_code == 422
        assert h.client.put("/api/messaging/rules", json={"cap_all_day": 1}).status_code == 401
        assert h.client.get("/api/messaging/rules").status_code == 401


def test_delivery_follows_the_saved_rules(db_url: str) -> None:
    # The server says: no caps, no quiet hours.
    with harness(
        db_url, cap_per_channel_day=0, cap_per_channel_week=0, cap_all_day=0, cap_all_week=0,
        quiet_hours_start=0, quiet_hours_end=0,
    ) as h:  # fmt: skip
        template(h)
        h.send("identify", {"userId": "kari", "traits": {"email": "kari@example.com",
                                                          "consent": {"email": True}}})  # fmt: skip
        h.drain()
        person = h.profile("user_id:kari")["profile_id"]
        deliverer = h.services.deliverer
        assert deliverer is not None
        first = queue(h, "rules:1", person)
        deliverer.drain(NOW)
        assert fate(h, first)[0] == "sent"

        # One marketing message a day, on any channel: the next one is skipped.
        put = h.client.put("/api/messaging/rules", json={"cap_all_day": 1}, headers=h.admin)
        assert put.status_code == 200, put.text
        assert put.json()["cap_all_day"] == 1
        second = queue(h, "rules:2", person)
        deliverer.drain(NOW)
        assert fate(h, second) == ("skipped", "frequency cap: 1 messages today (limit 1)")

        # Quiet hours around NOW (12:00 UTC, the person's zone is the default UTC):
        # deferred to their end.
        rules = {"cap_all_day": 0, "quiet_hours_start": 11, "quiet_hours_end": 13}
        assert h.client.put("/api/messaging/rules", json=rules, headers=h.admin).status_code == 200
        third = queue(h, "rules:3", person)
        deliverer.drain(NOW)
        assert fate(h, third) == ("queued", "deferred: quiet hours")
        rules = {"quiet_hours_action": "skip"}
        assert h.client.put("/api/messaging/rules", json=rules, headers=h.admin).status_code == 200
        fourth = queue(h, "rules:4", person)
        deliverer.drain(NOW)
        assert fate(h, fourth) == ("skipped", "quiet hours")

        # Back to the server's settings: nothing holds the next message back.
        assert h.client.delete("/api/messaging/rules", headers=h.admin).status_code == 200
        fifth = queue(h, "rules:5", person)
        deliverer.drain(NOW)
        assert fate(h, fifth)[0] == "sent"
