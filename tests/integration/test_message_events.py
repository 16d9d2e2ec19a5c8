"""What providers report after a message was handed over: delivered, bounced,
complained, through POST /api/messages/events, on SQLite and PostgreSQL."""

from __future__ import annotations

from shopkeeper.messaging import messages
from tests.harness import NOW, Harness, harness


def queue_and_deliver(h: Harness, key: str, profile_id: int) -> int:
    with h.services.db.write() as conn:
        queued = messages.queue(
            conn, h.services.db, key=key, profile_id=profile_id, channel="email",
            template="hello", transactional=False, variables={}, send_at=NOW, now_ms=NOW,
        )  # fmt: skip
    assert queued is not None
    assert h.services.deliverer is not None
    h.services.deliverer.drain(NOW)
    return queued


def test_a_bounce_suppresses_the_address_and_delivery_is_recorded(db_url: str) -> None:
    with harness(db_url, quiet_hours_start=0, quiet_hours_end=0) as h:
        response = h.client.put(
            "/api/templates/hello/email",
            json={"parts": {"subject": "Hello", "text": "Hi"}},
            headers=h.admin,
        )
        assert response.status_code == 200
        h.send("identify", {"userId": "fay", "traits": {"email": "fay@example.com",
                                                       "consent": {"email": True}}})  # fmt: skip
        h.drain()
        fay = h.profile("user_id:fay")["profile_id"]
        first = queue_and_deliver(h, "t:1", fay)
        second = queue_and_deliver(h, "t:2", fay)

        delivered = h.client.post(
            "/api/messages/events",
            json={"provider_id": f"outbox:{first}", "kind": "delivered"},
            headers=h.admin,
        )
        assert delivered.json() == {"message_id": first, "kind": "delivered"}
        bounced = h.client.post(
            "/api/messages/events",
            json={"message_id": second, "kind": "bounced", "reason": "550 no such user"},
            headers=h.admin,
        )
        assert bounced.status_code == 200
        third = queue_and_deliver(h, "t:3", fay)
        with h.services.db.read() as conn:
            states = [messages.get(conn, i) for i in (first, second, third)]
        assert [(m.status, m.reason) for m in states if m is not None] == [
            ("delivered", None),
            ("failed", "550 no such user"),
            ("skipped", "suppressed: bounced"),
        ]
        detail = h.client.get(f"/api/messages/{second}", headers=h.admin).json()
        assert [e["kind"] for e in detail["events"]] == ["sent", "bounced"]

        missing = h.client.post(
            "/api/messages/events", json={"message_id": 999_999, "kind": "delivered"},
            headers=h.admin,
        )  # fmt: skip
        assert missing.status_code == 404
        both = h.client.post(
            "/api/messages/events",
            json={"message_id": first, "provider_id": "x", "kind": "delivered"},
            headers=h.admin,
        )
        assert both.status_code == 422
        odd = h.client.post(
            "/api/messages/events", json={"message_id": first, "kind": "exploded"},
            headers=h.admin,
        )  # fmt: skip
        assert odd.status_code == 422
