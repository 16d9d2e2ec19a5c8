"""An application on a test database, driven in-process (TestClient) with the pipeline
run by hand, so that tests decide when events are applied."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from fastapi.testclient import TestClient

from shopkeeper.admin.keys import create_admin_key
from shopkeeper.bootstrap import Services, build_services, create_app, make_processor
from shopkeeper.clock import Clock, FixedClock
from shopkeeper.config import Settings
from shopkeeper.ingest.sources import create_source
from shopkeeper.pipeline.processor import Processor
from shopkeeper.storage.db import Database
from shopkeeper.timeutil import parse_iso_ms

NOW = parse_iso_ms("2026-11-23T12:00:00Z")


@dataclass
class Harness:
    client: TestClient
    services: Services
    processor: Processor
    write_key: str
    admin_key: str
    clock: Clock

    @property
    def admin(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.admin_key}"}

    @property
    def basic(self) -> dict[str, str]:
        token = base64.b64encode(f"{self.write_key}:".encode()).decode()
        return {"Authorization": f"Basic {token}"}

    def send(self, kind: str, message: dict[str, Any]) -> Any:
        response = self.client.post(f"/v1/{kind}", json=message, headers=self.basic)
        assert response.status_code == 200, response.text
        return response

    def batch(self, messages: list[dict[str, Any]], **envelope: Any) -> Any:
        response = self.client.post(
            "/v1/batch", json={"batch": messages, **envelope}, headers=self.basic
        )
        assert response.status_code == 200, response.text
        return response.json()

    def drain(self) -> int:
        return self.processor.drain()

    def profile(self, ref: str) -> dict[str, Any]:
        response = self.client.get(f"/api/profiles/{ref}", headers=self.admin)
        assert response.status_code == 200, response.text
        return response.json()  # type: ignore[no-any-return]


@contextmanager
def harness(db_url: str, clock: Clock | None = None, **settings: Any) -> Iterator[Harness]:
    clock = clock or FixedClock(NOW)
    # Segment indexes analyze the tables they index: statistics left in the session's
    # shared PostgreSQL database would change later tests' plans. They are tested on a
    # database of their own (tests/integration/test_segment_indexes.py).
    settings.setdefault("segment_indexes", False)
    config = Settings(database_url=db_url, **settings)
    db = Database(db_url)
    services = build_services(config, clock=clock, db=db, run_worker=False)
    source = create_source(db, "web shop", "web", clock.now_ms())
    admin_key, _ = create_admin_key(db, "tests", clock.now_ms())
    processor = make_processor(db, config, clock, services.metrics)
    with TestClient(create_app(services)) as client:
        yield Harness(client, services, processor, source.write_key, admin_key, clock)
    db.dispose()
