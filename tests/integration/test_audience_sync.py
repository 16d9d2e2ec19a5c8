"""Audience syncs against a real local HTTP destination, on SQLite and PostgreSQL: the
first sync sends every member, later ones only the net changes; failures back off and
lose nothing; hashed kinds send the platforms' hashes; one process runs a sync at a
time."""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from shopkeeper.segments.audiences import store
from shopkeeper.segments.audiences.sync import SyncOutcome, run_due_syncs
from tests.audience_fixtures import (
    HookServer,
    add_member_without_history,
    create_segment,
    enter,
    history_top,
    hook_server,
    leave,
    person,
)
from tests.harness import NOW, Harness, harness

MINUTE = 60_000

# Published digests (sources in tests/unit/test_audience_hashing.py): Google's Data
# Manager API example member 4, and Meta's customer information parameter examples.
GOOGLE_CLOUDY_EMAIL = "223ebda6f6889b1494551ba902d9d381daf2f642bae055888e96343d53e9f9c4"
GOOGLE_CLOUDY_PHONE = "525c2390a4e2a9766fa8ddc341dd10414603baebefa401f5a5e29f55e176525d"
META_JOHN_EMAIL = "62a14e44f765419d10fea99367361a727c12365e2520f32218d505ed9aa0f62f"
META_PHONE = "e323ec626319ca94ee8bff2e4c87cf613be6ea19919ed1364124e16807ab3176"
META_MARY = "6915771be1c5aa0c886870b6951b03d7eafc121fea0e80a5ea83beb7c449f4ec"
META_US = "79adb2a2fce5c6ba215fe5f27f532d4e7edbac4b6a5e09e1ef3a08084a904621"


@pytest.fixture
def server() -> Iterator[HookServer]:
    with hook_server() as running:
        yield running


@pytest.fixture
def client() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=5) as http:
        yield http


def audience(h: Harness, url: str, **body: Any) -> dict[str, Any]:
    payload = {"segment": "vip", "name": "VIP list", "url": url, **body}
    response = h.client.post("/api/audiences", json=payload, headers=h.admin)
    assert response.status_code == 201, response.text
    return response.json()  # type: ignore[no-any-return]


def run(h: Harness, client: httpx.Client) -> list[SyncOutcome]:
    return run_due_syncs(h.services.db, h.services.settings, h.clock.now_ms(), client)


def get(h: Harness, sync_id: int) -> dict[str, Any]:
    return h.client.get(f"/api/audiences/{sync_id}", headers=h.admin).json()  # type: ignore[no-any-return]


def runs(h: Harness, sync_id: int) -> list[dict[str, Any]]:
    return h.client.get(f"/api/audiences/{sync_id}/runs", headers=h.admin).json()  # type: ignore[no-any-return]


def ids(records: list[dict[str, Any]]) -> list[int]:
    return [record["profile_id"] for record in records]


def test_first_sync_sends_every_member_then_only_changes(
    db_url: str, server: HookServer, client: httpx.Client
) -> None:
    with harness(db_url, webhook_allow_private=True) as h:
        db = h.services.db
        ana, bob, carl, dave, eve = (
            person(h, f"u-{name}", email=f"{name}@example.com", firstName=name.title())
            for name in ("ana", "bob", "carl", "dave", "eve")
        )
        vip, other = create_segment(db, "vip"), create_segment(db, "other")
        enter(db, vip, ana, bob, dave)
        leave(db, vip, dave)
        # Carl's entry left no history (members rebuilt): the first sync still sends him.
        add_member_without_history(db, vip, carl)
        enter(db, other, eve)
        sync = audience(
            h, server.url, fields=["email", "first_name"], headers={"Authorization": "Bearer t0k"}
        )
        assert sync["full_load_pending"]
        assert sync["next_run_at"] == get(h, sync["id"])["created_at"]

        assert [o.status for o in run(h, client)] == ["ok"]
        [first] = server.received
        assert first.path == "/hooks/audience"
        assert first.headers["authorization"] == "Bearer t0k"
        assert first.headers["content-type"] == "application/json"
        assert first.headers["user-agent"].startswith("Shopkeeper/")
        assert first.body == {
            "audience": {"id": sync["id"], "name": "VIP list", "kind": "webhook"},
            "segment": "vip",
            "full_load": True,
            "added": [
                {"profile_id": ana, "email": "ana@example.com", "first_name": "Ana"},
                {"profile_id": bob, "email": "bob@example.com", "first_name": "Bob"},
                {"profile_id": carl, "email": "carl@example.com", "first_name": "Carl"},
            ],
            "removed": [],
            "cursor": history_top(db),
            "sent_at": "2026-11-23T12:00:00.000Z",
        }
        state = get(h, sync["id"])
        assert not state["full_load_pending"]
        assert state["cursor"] == history_top(db)
        assert state["next_run_at"] == "2026-11-23T13:00:00.000Z"

        assert run(h, client) == []  # not due yet
        enter(db, vip, eve)
        leave(db, vip, bob)
        enter(db, other, ana)
        h.clock.advance(60 * MINUTE)
        assert [o.status for o in run(h, client)] == ["ok"]
        second = server.received[-1].body
        assert second["full_load"] is False
        assert second["added"] == [
            {"profile_id": eve, "email": "eve@example.com", "first_name": "Eve"}
        ]
        # Bob still exists: his removal carries his fields, so a list keyed by email works.
        assert second["removed"] == [
            {"profile_id": bob, "email": "bob@example.com", "first_name": "Bob"}
        ]
        assert second["cursor"] == history_top(db)

        h.clock.advance(60 * MINUTE)
        assert [o.status for o in run(h, client)] == ["up_to_date"]
        assert len(server.received) == 2
        history = runs(h, sync["id"])
        assert [(r["status"], r["full_load"], r["added"], r["removed"]) for r in history] == [
            ("ok", False, 1, 1),
            ("ok", True, 3, 0),
        ]


def test_failures_back_off_and_lose_no_delta(
    db_url: str, server: HookServer, client: httpx.Client
) -> None:
    with harness(db_url, webhook_allow_private=True, audience_sync_retry_seconds=60) as h:
        db = h.services.db
        ana, bob, carl = (
            person(h, f"u-{n}", email=f"{n}@example.com") for n in ("ana", "bob", "carl")
        )
        vip = create_segment(db, "vip")
        enter(db, vip, ana)
        sync = audience(h, server.url, fields=["email"], interval_minutes=30)
        run(h, client)
        cursor = get(h, sync["id"])["cursor"]

        enter(db, vip, bob)
        server.fail_next = 2
        h.clock.advance(30 * MINUTE)
        [outcome] = run(h, client)
        assert outcome.status == "failed"
        assert outcome.error == "the destination answered HTTP 500 Internal Server Error"
        state = get(h, sync["id"])
        assert (state["failures"], state["cursor"]) == (1, cursor)
        assert state["last_error"] == outcome.error
        assert state["next_run_at"] == "2026-11-23T12:31:00.000Z"  # now + 60 s

        enter(db, vip, carl)  # happens while the destination is down
        assert run(h, client) == []  # backing off
        h.clock.advance(MINUTE)
        assert [o.status for o in run(h, client)] == ["failed"]
        assert get(h, sync["id"])["next_run_at"] == "2026-11-23T12:33:00.000Z"  # now + 120 s
        h.clock.advance(2 * MINUTE - 1)
        assert run(h, client) == []
        h.clock.advance(1)
        assert [o.status for o in run(h, client)] == ["ok"]

        bodies = server.bodies()
        assert [ids(body["added"]) for body in bodies] == [[ana], [bob], [bob, carl], [bob, carl]]
        assert bodies[-1]["cursor"] == history_top(db)
        state = get(h, sync["id"])
        assert (state["failures"], state["last_error"], state["cursor"]) == (
            0,
            None,
            history_top(db),
        )
        assert state["next_run_at"] == "2026-11-23T13:03:00.000Z"
        statuses = [(r["status"], r["added"], r["error"]) for r in runs(h, sync["id"])]
        assert statuses == [
            ("ok", 2, None),
            ("failed", 2, "the destination answered HTTP 500 Internal Server Error"),
            ("failed", 1, "the destination answered HTTP 500 Internal Server Error"),
            ("ok", 1, None),
        ]


def test_timeouts_and_unreachable_destinations_are_failures(
    db_url: str, server: HookServer
) -> None:
    with harness(db_url, webhook_allow_private=True) as h:
        db = h.services.db
        vip = create_segment(db, "vip")
        enter(db, vip, person(h, "u-ana", email="ana@example.com"))
        sync = audience(h, server.url)
        server.slow_next, server.slow_seconds = 1, 1.5
        with httpx.Client(timeout=0.3) as impatient:
            [outcome] = run(h, impatient)
        assert (outcome.status, outcome.error) == (
            "failed",
            "the destination did not answer in time",
        )
        assert get(h, sync["id"])["full_load_pending"]

        closed = audience(h, "http://127.0.0.1:9/nothing-listens-here")
        h.clock.advance(MINUTE)
        with httpx.Client(timeout=2) as http:
            outcomes = {o.sync_id: o for o in run(h, http)}
        assert outcomes[sync["id"]].status == "ok"
        assert outcomes[closed["id"]].status == "failed"
        assert (outcomes[closed["id"]].error or "").startswith("could not reach the destination")


def test_changes_collapse_to_the_net_change(
    db_url: str, server: HookServer, client: httpx.Client
) -> None:
    with harness(db_url, webhook_allow_private=True) as h:
        db = h.services.db
        ana, bob, carl, dave = (
            person(h, f"u-{n}", email=f"{n}@example.com") for n in ("ana", "bob", "carl", "dave")
        )
        vip = create_segment(db, "vip")
        enter(db, vip, bob, dave)
        sync = audience(h, server.url, fields=["email"], interval_minutes=1)
        run(h, client)

        enter(db, vip, ana)
        leave(db, vip, ana)  # entered then exited: nothing
        leave(db, vip, bob)
        enter(db, vip, bob)  # exited then entered: nothing
        h.clock.advance(MINUTE)
        assert [o.status for o in run(h, client)] == ["up_to_date"]
        assert len(server.received) == 1
        assert get(h, sync["id"])["cursor"] == history_top(db)  # moved past, quietly

        enter(db, vip, carl)
        leave(db, vip, carl)
        enter(db, vip, carl)  # in, out, in: added
        leave(db, vip, dave)
        enter(db, vip, ana)
        leave(db, vip, ana)
        h.clock.advance(MINUTE)
        run(h, client)
        body = server.received[-1].body
        assert (ids(body["added"]), ids(body["removed"])) == ([carl], [dave])


def test_hashed_kinds_send_the_platforms_hashes(
    db_url: str, server: HookServer, client: httpx.Client
) -> None:
    with harness(db_url, webhook_allow_private=True) as h:
        db = h.services.db
        cloudy = person(
            h, "u-cloudy", email="cloudySanFrancisco@GMAIL.com", phone="+1-800-555-0110"
        )
        john = person(
            h,
            "u-john",
            email="John_Smith@gmail.com",
            phone="+1 (650) 555-1212",
            firstName="Mary",
            address={"country": "US"},
        )
        vip = create_segment(db, "vip")
        enter(db, vip, cloudy, john)
        google = audience(h, server.url, kind="google", name="Google list")
        meta = audience(
            h,
            server.url,
            kind="meta",
            name="Meta list",
            fields=["email", "phone", "first_name", "country"],
        )
        assert google["fields"] == [
            "email",
            "phone",
            "first_name",
            "last_name",
            "country",
            "postal_code",
        ]
        run(h, client)
        by_kind = {body["audience"]["kind"]: body for body in server.bodies()}
        john_google_phone = by_kind["google"]["added"][1]["hashed_phone_number"]
        assert by_kind["google"]["added"] == [
            {
                "profile_id": cloudy,
                "hashed_email": GOOGLE_CLOUDY_EMAIL,
                "hashed_phone_number": GOOGLE_CLOUDY_PHONE,
            },
            {
                "profile_id": john,
                "hashed_email": META_JOHN_EMAIL,
                # Google hashes "+16505551212" (with the plus), Meta "16505551212".
                "hashed_phone_number": john_google_phone,
                "hashed_first_name": META_MARY,
                "country_code": "US",
            },
        ]
        assert by_kind["meta"]["added"][1] == {
            "profile_id": john,
            "EMAIL": META_JOHN_EMAIL,
            "PHONE": META_PHONE,
            "FN": META_MARY,
            "COUNTRY": META_US,
        }
        # No published Google digest for this number: computed from the documented form.
        assert john_google_phone == hashlib.sha256(b"+16505551212").hexdigest()
        assert john_google_phone != META_PHONE
        assert "cloudy" not in str(server.bodies()).lower()
        assert meta["kind"] == "meta"


def test_an_erased_member_is_removed_by_profile_id_only(
    db_url: str, server: HookServer, client: httpx.Client
) -> None:
    with harness(db_url, webhook_allow_private=True) as h:
        db = h.services.db
        ana = person(h, "u-ana", email="ana@example.com", firstName="Ana")
        vip = create_segment(db, "vip")
        enter(db, vip, ana)
        audience(h, server.url, fields=["email", "first_name"], interval_minutes=1)
        audience(h, server.url, kind="meta", name="Meta list", interval_minutes=1)
        run(h, client)
        assert h.client.delete("/api/profiles/user_id:u-ana", headers=h.admin).status_code == 200
        leave(db, vip, ana)
        h.clock.advance(MINUTE)
        run(h, client)
        removals = {b["audience"]["kind"]: b["removed"] for b in server.bodies()[2:]}
        assert removals == {
            "webhook": [{"profile_id": ana, "email": None, "first_name": None}],
            "meta": [{"profile_id": ana}],
        }


def test_one_process_at_a_time(db_url: str, server: HookServer, client: httpx.Client) -> None:
    with harness(db_url, webhook_allow_private=True) as h:
        db = h.services.db
        vip = create_segment(db, "vip")
        enter(db, vip, person(h, "u-ana", email="ana@example.com"))
        sync = audience(h, server.url)
        # Another process holds it.
        with db.write() as conn:
            assert store.claim(conn, sync["id"], NOW, 15 * MINUTE, due_only=True) is not None
        with db.write() as conn:
            assert store.claim(conn, sync["id"], NOW, 15 * MINUTE, due_only=True) is None
        assert run(h, client) == []
        assert get(h, sync["id"])["running"]
        assert h.client.post(f"/api/audiences/{sync['id']}/run", headers=h.admin).status_code == 409
        patched = h.client.patch(
            f"/api/audiences/{sync['id']}", json={"name": "x"}, headers=h.admin
        )
        assert patched.status_code == 409
        assert server.received == []
        # Its lease runs out (it crashed): the sync is taken over.
        h.clock.advance(15 * MINUTE)
        assert [o.status for o in run(h, client)] == ["ok"]

        # Two schedulers at the same moment: exactly one sends.
        enter(db, vip, person(h, "u-bob", email="bob@example.com"))
        h.clock.advance(60 * MINUTE)
        start = threading.Barrier(2)
        results: list[list[SyncOutcome]] = []

        def scheduler() -> None:
            with httpx.Client(timeout=5) as own:
                start.wait()
                results.append(run(h, own))

        threads = [threading.Thread(target=scheduler) for _ in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=30)
        assert sorted(len(r) for r in results) == [0, 1]
        assert len(server.received) == 2
