"""The tracking API as clients meet it: statuses and error bodies, exactly."""

from __future__ import annotations

import gzip
import json

import pytest
import sqlalchemy as sa

from shopkeeper.ingest.sources import revoke_source
from shopkeeper.storage import tables as t
from shopkeeper.timeutil import ms_to_iso
from tests.harness import NOW, harness


def stored(h, **where):  # type: ignore[no-untyped-def]
    with h.services.db.read() as conn:
        query = sa.select(t.events)
        for name, value in where.items():
            query = query.where(t.events.c[name] == value)
        return conn.execute(query.order_by(t.events.c.seq)).all()


def error(code: str, message: str, field: str | None = None) -> dict:
    return {
        "error": {"code": code, "message": message, "field": field},
        "code": code,
        "message": message,
    }


def test_track_with_basic_auth_is_stored_with_server_fields(db_url: str) -> None:
    with harness(db_url) as h:
        response = h.client.post(
            "/v1/track",
            json={"anonymousId": "a1", "event": "Product Viewed", "messageId": "m1"},
            headers=h.basic,
        )
        assert response.status_code == 200
        assert response.json() == {"success": True}
        (row,) = stored(h)
        assert row.message_id == "m1"
        assert row.type == "track"
        assert row.event == "Product Viewed"
        assert row.anonymous_id == "a1"
        assert row.received_at == NOW
        assert row.timestamp == NOW  # no client time: the server's
        assert row.payload["receivedAt"] == ms_to_iso(NOW)
        assert row.payload["context"]["ip"] == "testclient"
        assert "writeKey" not in row.payload


def test_write_key_in_the_body_works_and_is_not_stored(db_url: str) -> None:
    with harness(db_url) as h:
        response = h.client.post(
            "/v1/identify",
            json={"userId": 7, "traits": {"email": "a@b.co"}, "writeKey": h.write_key},
        )
        assert response.status_code == 200
        (row,) = stored(h)
        assert row.user_id == "7"
        assert row.payload["userId"] == "7"
        assert "writeKey" not in row.payload
        assert row.message_id.startswith("sk-")  # assigned when absent


def test_missing_and_unknown_write_keys_are_401(db_url: str) -> None:
    with harness(db_url) as h:
        missing = h.client.post("/v1/track", json={"anonymousId": "a", "event": "E"})
        assert missing.status_code == 401
        assert missing.json() == error(
            "unauthorized",
            "A write key is required: send it as the HTTP Basic username or as writeKey "
            "in the body.",
        )
        unknown = h.client.post(
            "/v1/track", json={"anonymousId": "a", "event": "E"}, auth=("wk_nope", "")
        )
        assert unknown.status_code == 401
        assert unknown.json() == error("unauthorized", "Unknown or revoked write key.")
        assert stored(h) == []


def test_revoked_key_stops_working(db_url: str) -> None:
    with harness(db_url, write_key_cache_seconds=0) as h:
        h.send("track", {"anonymousId": "a", "event": "E"})
        revoke_source(h.services.db, "web shop", NOW)
        response = h.client.post(
            "/v1/track", json={"anonymousId": "a", "event": "E"}, headers=h.basic
        )
        assert response.status_code == 401


def test_malformed_json_is_400(db_url: str) -> None:
    with harness(db_url) as h:
        response = h.client.post(
            "/v1/track", content=b'{"anonymousId": "a", "event":', headers=h.basic
        )
        assert response.status_code == 400
        body = response.json()
        assert body["error"]["code"] == "invalid_json"
        assert body["error"]["message"].startswith("The body is not valid JSON")


def test_gzip_body_is_accepted(db_url: str) -> None:
    with harness(db_url) as h:
        body = gzip.compress(
            json.dumps({"batch": [{"type": "track", "userId": "u", "event": "E"}]}).encode()
        )
        response = h.client.post(
            "/v1/batch",
            content=body,
            headers={**h.basic, "Content-Encoding": "gzip", "Content-Type": "application/json"},
        )
        assert response.status_code == 200
        assert response.json() == {
            "success": True,
            "accepted": 1,
            "duplicates": 0,
            "rejected": [],
        }


def test_gzip_bomb_is_refused_without_expanding_it(db_url: str) -> None:
    with harness(db_url) as h:
        bomb = gzip.compress(b"[" + b" " * (50 * 1024 * 1024) + b"]")
        assert len(bomb) < 100 * 1024
        response = h.client.post(
            "/v1/batch", content=bomb, headers={**h.basic, "Content-Encoding": "gzip"}
        )
        assert response.status_code == 413
        assert response.json() == error(
            "request_too_large", "The request expands to more than the 500 KB limit."
        )


def test_broken_gzip_is_400(db_url: str) -> None:
    with harness(db_url) as h:
        response = h.client.post(
            "/v1/track", content=b"not gzip", headers={**h.basic, "Content-Encoding": "gzip"}
        )
        assert response.status_code == 400
        assert response.json() == error(
            "invalid_gzip", "The body is marked gzip but is not valid gzip data."
        )


def test_oversize_request_is_413(db_url: str) -> None:
    with harness(db_url) as h:
        messages = [
            {"type": "track", "userId": "u", "event": "E", "properties": {"x": "y" * 20_000}}
            for _ in range(30)
        ]
        response = h.client.post("/v1/batch", json={"batch": messages}, headers=h.basic)
        assert response.status_code == 413
        assert response.json() == error(
            "request_too_large", "The request is over the 500 KB limit."
        )
        assert stored(h) == []


def test_oversize_single_message_is_413(db_url: str) -> None:
    with harness(db_url) as h:
        message = {"userId": "u", "event": "E", "properties": {"x": "y" * 40_000}}
        response = h.client.post("/v1/track", json=message, headers=h.basic)
        assert response.status_code == 413
        body = response.json()
        assert body["error"]["code"] == "message_too_large"
        assert body["error"]["message"].endswith("the limit is 32 KB per message.")


def test_too_many_messages_in_a_batch_is_400(db_url: str) -> None:
    with harness(db_url) as h:
        messages = [{"type": "track", "userId": "u", "event": "E"} for _ in range(2501)]
        response = h.client.post("/v1/batch", json={"batch": messages}, headers=h.basic)
        assert response.status_code == 400
        assert response.json() == error(
            "batch_too_large", "The batch holds 2501 messages; the limit is 2500.", "batch"
        )


def test_one_invalid_message_in_a_batch_is_rejected_the_rest_kept(db_url: str) -> None:
    with harness(db_url) as h:
        body = h.batch(
            [
                {"type": "track", "userId": "u", "event": "A", "messageId": "ok-1"},
                {"type": "track", "userId": "u", "messageId": "bad-1"},
                {"type": "track", "event": "B", "messageId": "bad-2", "anonymousId": "null"},
                {"type": "teleport", "userId": "u", "messageId": "bad-3"},
                {
                    "type": "track",
                    "userId": "u",
                    "event": "C",
                    "messageId": "bad-4",
                    "properties": {"big": "z" * 33_000},
                },
                {"type": "page", "anonymousId": "a", "messageId": "ok-2", "name": "Home"},
            ]
        )
        assert body["accepted"] == 2
        assert body["duplicates"] == 0
        assert [(r["index"], r["messageId"], r["error"]["code"]) for r in body["rejected"]] == [
            (1, "bad-1", "missing_field"),
            (2, "bad-2", "missing_identity"),
            (3, "bad-3", "invalid_type"),
            (4, "bad-4", "message_too_large"),
        ]
        assert body["rejected"][0]["error"] == {
            "code": "missing_field",
            "message": "track needs an event name.",
            "field": "event",
        }
        assert [row.message_id for row in stored(h)] == ["ok-1", "ok-2"]


def test_a_batch_with_no_valid_message_is_400(db_url: str) -> None:
    with harness(db_url) as h:
        response = h.client.post(
            "/v1/batch", json={"batch": [{"type": "track", "event": "E"}]}, headers=h.basic
        )
        assert response.status_code == 400
        body = response.json()
        assert body["error"]["code"] == "invalid_batch"
        assert body["rejected"][0]["error"]["code"] == "missing_identity"


def test_batch_must_be_a_list(db_url: str) -> None:
    with harness(db_url) as h:
        response = h.client.post("/v1/batch", json={"batch": {"a": 1}}, headers=h.basic)
        assert response.status_code == 400
        assert response.json()["error"]["code"] == "invalid_batch"


@pytest.mark.parametrize(
    ("message", "code", "field"),
    [
        ({"event": "E"}, "missing_identity", "userId"),
        ({"userId": "u"}, "missing_field", "event"),
        ({"userId": "u", "event": "E", "properties": [1]}, "invalid_field", "properties"),
        ({"userId": {"x": 1}, "event": "E"}, "invalid_field", "userId"),
        ({"userId": "u", "event": "E", "timestamp": "yesterday"}, "invalid_timestamp", "timestamp"),
        (
            {"userId": "u", "event": "E", "timestamp": "1970-01-02T00:00:00Z"},
            "invalid_timestamp",
            "timestamp",
        ),
        ({"userId": "u", "event": "E", "messageId": "m" * 201}, "invalid_field", "messageId"),
    ],
)
def test_invalid_single_messages_are_400_naming_the_field(
    db_url: str, message: dict, code: str, field: str
) -> None:
    with harness(db_url) as h:
        response = h.client.post("/v1/track", json=message, headers=h.basic)
        assert response.status_code == 400
        assert response.json()["error"]["code"] == code
        assert response.json()["error"]["field"] == field


def test_alias_and_group_need_their_ids(db_url: str) -> None:
    with harness(db_url) as h:
        alias = h.client.post("/v1/alias", json={"userId": "u"}, headers=h.basic)
        assert alias.json()["error"] == {
            "code": "missing_field",
            "message": "alias needs a previousId.",
            "field": "previousId",
        }
        group = h.client.post("/v1/group", json={"userId": "u"}, headers=h.basic)
        assert group.json()["error"]["field"] == "groupId"


def test_duplicate_message_ids_are_acknowledged_and_stored_once(db_url: str) -> None:
    with harness(db_url) as h:
        message = {"type": "track", "userId": "u", "event": "E", "messageId": "same"}
        assert h.batch([message])["accepted"] == 1
        again = h.batch([message, message])
        assert again["accepted"] == 0
        assert again["duplicates"] == 2
        h.send("track", message)
        assert len(stored(h, message_id="same")) == 1
        h.drain()
        assert h.profile("user_id:u")["computed"]["events_count"] == 1


def test_clock_skew_is_corrected(db_url: str) -> None:
    with harness(db_url) as h:
        hour = 3_600_000
        # The device's clock runs an hour fast; the event happened 10 s before sending.
        h.batch(
            [
                {
                    "type": "track",
                    "userId": "u",
                    "event": "E",
                    "timestamp": ms_to_iso(NOW + hour - 10_000),
                    "messageId": "skewed",
                }
            ],
            sentAt=ms_to_iso(NOW + hour),
        )
        (row,) = stored(h)
        assert row.timestamp == NOW - 10_000
        assert row.payload["originalTimestamp"] == ms_to_iso(NOW + hour - 10_000)
        assert row.payload["timestamp"] == ms_to_iso(NOW - 10_000)


def test_historical_timestamps_survive_without_sent_at(db_url: str) -> None:
    with harness(db_url) as h:
        h.send("track", {"userId": "u", "event": "E", "timestamp": "2025-01-02T03:04:05.678Z"})
        (row,) = stored(h)
        assert row.payload["timestamp"] == "2025-01-02T03:04:05.678Z"


def test_batch_envelope_context_merges_into_each_message(db_url: str) -> None:
    with harness(db_url) as h:
        h.batch(
            [
                {"type": "track", "userId": "u", "event": "E", "context": {"locale": "nb-NO"}},
                {"type": "track", "userId": "u", "event": "F", "context": {"ip": "10.0.0.9"}},
            ],
            context={"library": {"name": "lib"}, "locale": "en-US"},
            integrations={"All": True},
        )
        first, second = stored(h)
        assert first.payload["context"]["library"] == {"name": "lib"}
        assert first.payload["context"]["locale"] == "nb-NO"  # the message's own wins
        assert second.payload["context"]["locale"] == "en-US"
        assert second.payload["context"]["ip"] == "10.0.0.9"  # not overwritten
        assert first.payload["integrations"] == {"All": True}


def test_text_plain_beacon_bodies_are_accepted(db_url: str) -> None:
    with harness(db_url) as h:
        response = h.client.post(
            "/v1/page",
            content=json.dumps({"anonymousId": "a", "writeKey": h.write_key}).encode(),
            headers={"Content-Type": "text/plain"},
        )
        assert response.status_code == 200


def test_import_is_an_alias_of_batch(db_url: str) -> None:
    with harness(db_url) as h:
        response = h.client.post(
            "/v1/import",
            json={"batch": [{"type": "identify", "userId": "u"}]},
            headers=h.basic,
        )
        assert response.status_code == 200
        assert response.json()["accepted"] == 1


def test_cors_for_browsers_on_v1_only(db_url: str) -> None:
    with harness(db_url) as h:
        preflight = h.client.options(
            "/v1/track",
            headers={
                "Origin": "https://shop.example",
                "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": "content-type",
            },
        )
        assert preflight.status_code == 204
        assert preflight.headers["access-control-allow-origin"] == "*"
        assert "POST" in preflight.headers["access-control-allow-methods"]
        posted = h.client.post(
            "/v1/track",
            json={"anonymousId": "a", "event": "E"},
            headers={**h.basic, "Origin": "https://shop.example"},
        )
        assert posted.headers["access-control-allow-origin"] == "*"
        admin = h.client.get("/api/pipeline/status", headers={**h.admin, "Origin": "https://x"})
        assert "access-control-allow-origin" not in admin.headers


def test_write_keys_never_open_the_admin_api(db_url: str) -> None:
    with harness(db_url) as h:
        response = h.client.get(
            "/api/pipeline/status", headers={"Authorization": f"Bearer {h.write_key}"}
        )
        assert response.status_code == 401
        assert response.json()["error"]["code"] == "unauthorized"
        assert h.client.get("/api/pipeline/status", headers=h.basic).status_code == 401
        assert h.client.get("/api/pipeline/status").status_code == 401
        ok = h.client.get("/api/pipeline/status", headers=h.admin)
        assert ok.status_code == 200


def test_nul_characters_are_stored_without_breaking_the_log(db_url: str) -> None:
    with harness(db_url) as h:
        h.send("track", {"userId": "u", "event": "E", "properties": {"q": "a\u0000b"}})
        (row,) = stored(h)
        assert row.payload["properties"]["q"] == "ab"


def test_analytics_js_short_paths(db_url: str) -> None:
    with harness(db_url) as h:
        for path, body in (
            ("t", {"anonymousId": "a", "event": "E"}),
            ("p", {"anonymousId": "a", "name": "Home"}),
            ("i", {"anonymousId": "a", "userId": "u"}),
            ("s", {"anonymousId": "a"}),
            ("g", {"anonymousId": "a", "groupId": "g"}),
            ("a", {"userId": "u", "previousId": "a"}),
            ("b", {"batch": [{"type": "track", "anonymousId": "a", "event": "F"}]}),
        ):
            response = h.client.post(
                f"/v1/{path}",
                content=json.dumps({**body, "writeKey": h.write_key}).encode(),
                headers={"Content-Type": "text/plain"},
            )
            assert response.status_code == 200, (path, response.text)
        assert [row.type for row in stored(h)] == [
            "track",
            "page",
            "identify",
            "screen",
            "group",
            "alias",
            "track",
        ]
