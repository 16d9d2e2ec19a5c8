"""What operators rely on: /healthz, /metrics, the OpenAPI document, and the pipeline's
parked-event API (a poison event is isolated, shown with its error, and retried)."""

from __future__ import annotations

import re
from typing import Any

import fastapi.routing
import sqlalchemy as sa
from fastapi.routing import APIRoute
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy.engine import Connection

from shopkeeper import __version__
from shopkeeper.config import Settings
from shopkeeper.pipeline.processor import BatchChanges, Processor
from shopkeeper.storage import tables as t
from shopkeeper.timeutil import ms_to_iso
from tests.harness import NOW, Harness, harness


def dialect(db_url: str) -> str:
    return "sqlite" if db_url.startswith("sqlite") else "postgresql"


def samples(h: Harness) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    response = h.client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/plain; version=0.0.4; charset=utf-8"
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def track(anon: str, event: str, message_id: str, **extra: Any) -> dict[str, Any]:
    return {"type": "track", "anonymousId": anon, "event": event, "messageId": message_id, **extra}


def test_healthz_reports_the_database_and_the_pipeline(db_url: str) -> None:
    with harness(db_url) as h:
        h.batch([track("a1", "Product Viewed", "m1"), track("a2", "Product Viewed", "m2")])
        response = h.client.get("/healthz")
        assert response.status_code == 200
        assert response.json() == {
            "status": "ok",
            "version": __version__,
            "database": dialect(db_url),
            "pipeline": {"pending": 2, "parked": 0},
        }
        assert h.drain() == 2
        assert h.client.get("/healthz").json()["pipeline"] == {"pending": 0, "parked": 0}


def test_metrics_count_received_rejected_pending_and_lag(db_url: str) -> None:
    with harness(db_url) as h:
        h.send("track", track("a1", "Product Viewed", "m1"))
        h.send("page", {"anonymousId": "a1", "name": "Home", "messageId": "m2"})
        answer = h.batch(
            [
                track("a2", "Product Viewed", "m3"),
                {"type": "track", "anonymousId": "a2", "messageId": "m4"},  # no event name
            ]
        )
        assert (answer["accepted"], len(answer["rejected"])) == (1, 1)
        h.send("track", track("a1", "Product Viewed", "m1"))  # a duplicate
        unknown_key = h.client.post(
            "/v1/track", json=track("a3", "E", "m5"), auth=("wk_unknown", "")
        )
        assert unknown_key.status_code == 401
        h.clock.advance(90_000)  # type: ignore[attr-defined]

        before = samples(h)
        assert before[("shopkeeper_events_received_total", (("source", "web shop"),))] == 3
        assert before[("shopkeeper_events_duplicate_total", ())] == 1
        assert before[("shopkeeper_events_rejected_total", (("reason", "missing_field"),))] == 1
        assert before[("shopkeeper_events_rejected_total", (("reason", "unauthorized"),))] == 1
        assert before[("shopkeeper_pipeline_pending", ())] == 3
        assert before[("shopkeeper_pipeline_parked", ())] == 0
        # The oldest pending event was received 90 s ago by the test's clock.
        assert before[("shopkeeper_pipeline_lag_seconds", ())] == 90.0
        assert before[("shopkeeper_events_processed_total", ())] == 0

        assert h.drain() == 3
        after = samples(h)
        assert after[("shopkeeper_pipeline_pending", ())] == 0
        assert after[("shopkeeper_pipeline_lag_seconds", ())] == 0.0
        assert after[("shopkeeper_events_processed_total", ())] == 3
        assert after[("shopkeeper_events_received_total", (("source", "web shop"),))] == 3


def served_routes(app: Any) -> list[tuple[str, set[str], Any]]:
    """(path, methods, route) for every route the application serves. FastAPI 0.16x keeps
    included routers as one entry each in app.routes; iter_route_contexts walks them."""
    iter_contexts = getattr(fastapi.routing, "iter_route_contexts", None)
    if iter_contexts is None:  # older FastAPI: app.routes is already flat
        return [(r.path, set(r.methods or ()), r) for r in app.routes]
    return [(c.path, set(c.methods or ()), c.original_route) for c in iter_contexts(app.routes)]


def test_openapi_documents_every_route(db_url: str) -> None:
    with harness(db_url) as h:
        app: Any = h.client.app
        document = h.client.get("/openapi.json").json()
        paths = document["paths"]
        docs_routes = {
            app.openapi_url,
            app.docs_url,
            app.redoc_url,
            app.swagger_ui_oauth2_redirect_url,
        }

        routes = [r for r in served_routes(app) if r[0] not in docs_routes]
        assert len(routes) >= 20
        seen = set()
        for served, methods, route in routes:
            # OpenAPI writes a path parameter without its converter ({id:path} -> {id}).
            path = re.sub(r"\{(\w+):\w+\}", r"{\1}", served)
            assert isinstance(route, APIRoute), path
            if not route.include_in_schema:
                # The admin UI's pages are for people, not part of the API document; the
                # APIs themselves must all be documented.
                assert not path.startswith(("/api", "/v1")), path
                continue
            assert path in paths, path
            assert methods - {"HEAD"}, path
            for method in methods - {"HEAD"}:
                assert method.lower() in paths[path], (method, path)
                seen.add((path, method.lower()))
        # Nothing documented that the app does not serve.
        documented = {(path, method) for path, item in paths.items() for method in item}
        assert documented == seen

        schemes = document["components"]["securitySchemes"]
        assert schemes["HTTPBearer"]["type"] == "http"
        assert schemes["HTTPBearer"]["scheme"] == "bearer"
        v1_posts = 0
        for path, method in sorted(seen):
            operation = paths[path][method]
            if path.startswith("/api/"):
                assert operation.get("security") == [{"HTTPBearer": []}], (method, path)
            if path.startswith("/v1/") and method == "post":
                v1_posts += 1
                assert operation["requestBody"]["required"] is True, path
                assert "application/json" in operation["requestBody"]["content"], path
                assert {"200", "400", "401", "413"} <= set(operation["responses"]), path
            if not path.startswith("/api/"):
                assert "security" not in operation, (method, path)
        # identify, track, page, screen, group, alias, batch and import, and the
        # one-letter paths analytics.js uses for all but import.
        assert v1_posts == 15


class RefuseBoom:
    """A step after identity and profiles that fails on events named "Boom", as a buggy
    segment or journey step would."""

    def __init__(self) -> None:
        self.armed = True

    def after_batch(self, conn: Connection, changes: BatchChanges, now_ms: int) -> None:
        for applied in changes.applied:
            if self.armed and applied.event.event == "Boom":
                raise ValueError(f"cannot handle Boom (message {applied.event.message_id})")


def test_a_poison_event_is_parked_shown_and_retried(db_url: str) -> None:
    with harness(db_url) as h:
        hook = RefuseBoom()
        processor = Processor(
            h.services.db, Settings(database_url=db_url), h.clock, h.services.metrics, [hook]
        )
        h.batch(
            [
                track("a1", "Product Viewed", "m1"),
                track("a1", "Boom", "m2", properties={"why": "poison"}),
                {"type": "page", "anonymousId": "a2", "name": "Home", "messageId": "m3"},
                {"type": "identify", "anonymousId": "a1", "userId": "u1", "messageId": "m4"},
            ]
        )
        assert processor.drain() == 4  # three applied, one parked

        with h.services.db.read() as conn:
            rows = conn.execute(
                sa.select(t.events.c.message_id, t.events.c.status, t.events.c.seq).order_by(
                    t.events.c.seq
                )
            ).all()
        assert [(r.message_id, r.status) for r in rows] == [
            ("m1", t.APPLIED),
            ("m2", t.PARKED),
            ("m3", t.APPLIED),
            ("m4", t.APPLIED),
        ]
        boom_seq = rows[1].seq
        assert h.profile("user_id:u1")["computed"]["events_count"] == 2  # m1, m4
        assert h.profile("anonymous_id:a2")["computed"]["events_count"] == 1

        parked = h.client.get("/api/pipeline/parked", headers=h.admin)
        assert parked.status_code == 200
        (shown,) = parked.json()["parked"]
        payload = shown.pop("payload")
        assert shown == {
            "seq": boom_seq,
            "message_id": "m2",
            "type": "track",
            "event": "Boom",
            "user_id": None,
            "anonymous_id": "a1",
            "received_at": ms_to_iso(NOW),
            "parked_at": ms_to_iso(NOW),
            "error": "ValueError: cannot handle Boom (message m2)",
        }
        assert (payload["event"], payload["properties"]) == ("Boom", {"why": "poison"})
        status = h.client.get("/api/pipeline/status", headers=h.admin).json()
        assert status == {
            "pending": 0,
            "parked": 1,
            "lag_seconds": 0.0,
            "in_process_worker": False,
            "suppressed": 0,
        }
        assert h.client.get("/healthz").json()["pipeline"] == {"pending": 0, "parked": 1}
        metrics = samples(h)
        assert metrics[("shopkeeper_pipeline_parked", ())] == 1
        assert metrics[("shopkeeper_events_parked_total", ())] == 1

        assert h.client.get("/api/pipeline/parked").status_code == 401
        unknown = h.client.post("/api/pipeline/parked/999999/retry", headers=h.admin)
        assert unknown.status_code == 404
        assert unknown.json() == {
            "error": {
                "code": "not_found",
                "message": "No parked event with seq 999999.",
                "field": "seq",
            }
        }
        applied_seq = rows[0].seq
        not_parked = h.client.post(f"/api/pipeline/parked/{applied_seq}/retry", headers=h.admin)
        assert not_parked.status_code == 404
        assert not_parked.json()["error"]["message"] == (f"No parked event with seq {applied_seq}.")
        not_a_seq = h.client.post("/api/pipeline/parked/boom/retry", headers=h.admin)
        assert not_a_seq.status_code == 422
        assert (not_a_seq.json()["error"]["code"], not_a_seq.json()["error"]["field"]) == (
            "invalid_request",
            "seq",
        )

        # The bug is fixed: retry it.
        hook.armed = False
        retried = h.client.post(f"/api/pipeline/parked/{boom_seq}/retry", headers=h.admin)
        assert retried.status_code == 200
        assert retried.json() == {"requeued": 1}
        status = h.client.get("/api/pipeline/status", headers=h.admin).json()
        assert (status["pending"], status["parked"]) == (1, 0)
        assert h.client.get("/api/pipeline/parked", headers=h.admin).json() == {"parked": []}
        assert processor.drain() == 1
        view = h.profile("user_id:u1")
        assert view["computed"]["events_count"] == 3
        assert view["computed"]["track_count"] == 2
        with h.services.db.read() as conn:
            row = conn.execute(
                sa.select(t.events.c.status, t.events.c.error, t.events.c.profile_id).where(
                    t.events.c.seq == boom_seq
                )
            ).one()
        assert tuple(row) == (t.APPLIED, None, view["profile_id"])
        again = h.client.post(f"/api/pipeline/parked/{boom_seq}/retry", headers=h.admin)
        assert again.status_code == 404
