"""The audiences admin API: validation with clear errors, pause and resume, resync,
sync now, the run history, private destinations refused, and the audit log."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from shopkeeper.segments.audiences.sync import run_due_syncs
from shopkeeper.storage import tables as t
from tests.audience_fixtures import HookServer, create_segment, enter, hook_server, person
from tests.harness import Harness, harness

MINUTE = 60_000


@pytest.fixture
def server() -> Iterator[HookServer]:
    with hook_server() as running:
        yield running


def post(h: Harness, **body: Any) -> Any:
    payload = {"segment": "vip", "name": "VIP", "url": "https://93.184.216.34/hook", **body}
    return h.client.post("/api/audiences", json=payload, headers=h.admin)


def run(h: Harness, **settings: Any) -> list[str]:
    config = h.services.settings.model_copy(update=settings)
    with httpx.Client(timeout=5) as client:
        return [o.status for o in run_due_syncs(h.services.db, config, h.clock.now_ms(), client)]


def error(response: Any) -> tuple[int, str, str | None]:
    body = response.json()["error"]
    return response.status_code, body["code"], body["field"]


def test_create_validates_with_clear_errors(db_url: str) -> None:
    with harness(db_url) as h:
        create_segment(h.services.db, "vip")
        assert error(post(h, segment="nope")) == (422, "unknown_segment", "segment")
        assert error(post(h, fields=["email", "frist_name"])) == (422, "unknown_field", "fields")
        assert (
            "Did you mean first_name?" in post(h, fields=["frist_name"]).json()["error"]["message"]
        )
        assert error(post(h, kind="google", fields=["email", "city"])) == (
            422,
            "unknown_field",
            "fields",
        )
        assert post(h, kind="tiktok").status_code == 422
        assert post(h, interval_minutes=0).status_code == 422
        assert post(h, colour="blue").status_code == 422
        for headers in (
            {"Content-Type": "text/plain"},
            {"Bad Header": "x"},
            {"X-A": "1\r\nX-B: 2"},
        ):
            assert error(post(h, headers=headers)) == (422, "invalid_headers", "headers")

        # Private, loopback and link-local destinations (the default refuses them).
        for url in (
            "http://127.0.0.1:8000/api/profiles",
            "http://localhost/hook",
            "http://10.0.0.7/hook",
            "http://169.254.169.254/latest/meta-data/",
            "http://[::1]/hook",
        ):
            refused = post(h, url=url)
            assert error(refused) == (422, "url_refused", "url"), url
            assert "SHOPKEEPER_WEBHOOK_ALLOW_PRIVATE" in refused.json()["error"]["message"]
        assert error(post(h, url="ftp://93.184.216.34/x")) == (422, "url_refused", "url")

        created = post(h, headers={"Authorization": "Bearer secret-token"}, kind="meta")
        assert created.status_code == 201
        body = created.json()
        assert body["header_names"] == ["Authorization"]
        assert "secret-token" not in created.text
        assert body["fields"] == [
            "email",
            "phone",
            "first_name",
            "last_name",
            "city",
            "country",
            "postal_code",
        ]
        assert (body["segment"], body["kind"], body["interval_minutes"]) == ("vip", "meta", 60)
        assert h.client.get("/api/audiences").status_code == 401


def test_private_destinations_are_refused_unless_allowed(db_url: str, server: HookServer) -> None:
    with harness(db_url, webhook_allow_private=True) as h:
        db = h.services.db
        enter(db, create_segment(db, "vip"), person(h, "u-ana", email="ana@example.com"))
        sync = post(h, url=server.url).json()
        # The operator turns private destinations off again: the next run refuses to call.
        [status] = run(h, webhook_allow_private=False)
        assert status == "failed"
        assert server.received == []
        state = h.client.get(f"/api/audiences/{sync['id']}", headers=h.admin).json()
        assert "a loopback address" in state["last_error"]
        assert state["failures"] == 1
        h.clock.advance(MINUTE)
        assert run(h) == ["ok"]
        assert len(server.received) == 1


def test_pause_resume_resync_and_sync_now(db_url: str, server: HookServer) -> None:
    with harness(db_url, webhook_allow_private=True) as h:
        db = h.services.db
        vip = create_segment(db, "vip")
        ana, bob = (person(h, f"u-{n}", email=f"{n}@example.com") for n in ("ana", "bob"))
        enter(db, vip, ana)
        sync = post(h, url=server.url, active=False, fields=["email"]).json()
        assert run(h) == []  # paused
        now = h.client.post(f"/api/audiences/{sync['id']}/run", headers=h.admin)
        assert error(now) == (409, "conflict", None)

        resumed = h.client.patch(
            f"/api/audiences/{sync['id']}", json={"active": True}, headers=h.admin
        )
        assert resumed.status_code == 200
        assert resumed.json()["active"]
        now = h.client.post(f"/api/audiences/{sync['id']}/run", headers=h.admin)
        assert now.status_code == 200
        assert now.json()["status"] == "ok"
        assert [(r["full_load"], r["added"]) for r in now.json()["runs"]] == [(True, 1)]
        again = h.client.post(f"/api/audiences/{sync['id']}/run", headers=h.admin).json()
        assert again == {"status": "up_to_date", "error": None, "runs": []}

        enter(db, vip, bob)
        resync = h.client.patch(
            f"/api/audiences/{sync['id']}",
            json={"resync": True, "interval_minutes": 5, "headers": {"X-Token": "t"}},
            headers=h.admin,
        )
        assert resync.json()["full_load_pending"]
        assert resync.json()["header_names"] == ["X-Token"]
        assert run(h) == ["ok"]
        last = server.received[-1]
        assert last.body["full_load"]
        assert [r["profile_id"] for r in last.body["added"]] == [ana, bob]
        assert last.headers["x-token"] == "t"
        assert (
            h.client.get(f"/api/audiences/{sync['id']}", headers=h.admin).json()["next_run_at"]
            == "2026-11-23T12:05:00.000Z"
        )

        moved = h.client.patch(
            f"/api/audiences/{sync['id']}", json={"url": "http://10.0.0.1/"}, headers=h.admin
        )
        assert moved.status_code == 200  # private destinations are allowed in this harness
        assert (
            error(
                h.client.patch(
                    f"/api/audiences/{sync['id']}", json={"kind": "google"}, headers=h.admin
                )
            )[0]
            == 422
        )
        assert h.client.patch("/api/audiences/999", json={}, headers=h.admin).status_code == 404


def test_runs_list_delete_and_the_audit_log(db_url: str, server: HookServer) -> None:
    with harness(db_url, webhook_allow_private=True) as h:
        db = h.services.db
        vip = create_segment(db, "vip")
        create_segment(db, "other")
        people = [person(h, f"u-{n}", email=f"{n}@example.com") for n in range(3)]
        enter(db, vip, people[0])
        sync = post(h, url=server.url).json()
        other_sync = post(h, url=server.url, segment="other", name="Other").json()
        for profile_id in people[1:]:
            run(h)
            enter(db, vip, profile_id)
            h.clock.advance(60 * MINUTE)
        run(h)
        runs = h.client.get(f"/api/audiences/{sync['id']}/runs", headers=h.admin).json()
        assert [r["added"] for r in runs] == [1, 1, 1]
        assert runs[0]["id"] > runs[1]["id"]
        page = h.client.get(
            f"/api/audiences/{sync['id']}/runs?limit=1&offset=1", headers=h.admin
        ).json()
        assert page == [runs[1]]
        listed = h.client.get("/api/audiences?segment=other", headers=h.admin).json()
        assert [a["id"] for a in listed] == [other_sync["id"]]
        assert h.client.get("/api/audiences?segment=nope", headers=h.admin).status_code == 404
        assert len(h.client.get("/api/audiences", headers=h.admin).json()) == 2

        assert h.client.delete(f"/api/audiences/{sync['id']}", headers=h.admin).status_code == 204
        assert h.client.get(f"/api/audiences/{sync['id']}", headers=h.admin).status_code == 404
        assert h.client.delete(f"/api/audiences/{sync['id']}", headers=h.admin).status_code == 404
        with db.read() as conn:
            left = conn.execute(
                sa.select(sa.func.count())
                .select_from(t.audience_sync_runs)
                .where(t.audience_sync_runs.c.sync_id == sync["id"])
            ).scalar()
            entries = conn.execute(
                sa.select(t.audit_log.c.action, t.audit_log.c.target).where(
                    t.audit_log.c.action.startswith("audience.")
                )
            ).all()
        assert left == 0
        assert sorted(entries) == sorted(
            [
                ("audience.create", f"audience {sync['id']}"),
                ("audience.create", f"audience {other_sync['id']}"),
                ("audience.delete", f"audience {sync['id']}"),
            ]
        )


def test_a_deleted_segment_stops_its_audiences(db_url: str, server: HookServer) -> None:
    with harness(db_url, webhook_allow_private=True) as h:
        db = h.services.db
        vip = create_segment(db, "vip")
        sync = post(h, url=server.url).json()
        with db.write() as conn:
            conn.execute(t.segments.delete().where(t.segments.c.id == vip))
        assert run(h) == ["failed"]
        state = h.client.get(f"/api/audiences/{sync['id']}", headers=h.admin).json()
        assert (state["segment"], state["active"]) == (None, False)
        assert state["last_error"] == "the segment was deleted"
        assert server.received == []
