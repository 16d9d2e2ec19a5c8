"""A real `shopkeeper serve` process on a free loopback port, for end-to-end tests."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from shopkeeper.admin.keys import create_admin_key
from shopkeeper.bootstrap import ensure_schema
from shopkeeper.clock import SystemClock
from shopkeeper.ingest.sources import create_source
from shopkeeper.storage.db import Database


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class LiveServer:
    database_url: str
    write_key: str
    admin_key: str
    port: int
    log_path: Path
    env: dict[str, str] = field(default_factory=dict)
    worker: bool = True
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def admin(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.admin_key}"}

    def start(self, timeout: float = 30.0) -> None:
        command = [
            sys.executable,
            "-m",
            "shopkeeper",
            "serve",
            "--port",
            str(self.port),
            "--log-level",
            "warning",
            "--worker" if self.worker else "--no-worker",
        ]
        env = {
            **os.environ,
            "SHOPKEEPER_DATABASE_URL": self.database_url,
            "SHOPKEEPER_PIPELINE_IDLE_SECONDS": "0.05",
            **self.env,
        }
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited: {self.log_path.read_text()[-3000:]}")
            try:
                if httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.05)
        raise RuntimeError(f"server did not start: {self.log_path.read_text()[-3000:]}")

    def kill(self) -> None:
        """SIGKILL: no shutdown hook runs."""
        if self.process is not None:
            self.process.kill()
            self.process.wait()
            self.process = None

    def interrupt(self, timeout: float = 60.0) -> int:
        """Ctrl-C (SIGINT): a clean stop. Returns the exit code."""
        assert self.process is not None
        self.process.send_signal(signal.SIGINT)
        code = self.process.wait(timeout=timeout)
        self.process = None
        return code

    def wait_drained(self, timeout: float = 60.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            status = httpx.get(f"{self.url}/api/pipeline/status", headers=self.admin).json()
            if status["pending"] == 0:
                return status  # type: ignore[no-any-return]
            if time.monotonic() > deadline:
                raise TimeoutError(f"pipeline not drained: {status}")
            time.sleep(0.05)

    def profile(self, ref: str) -> dict[str, Any]:
        response = httpx.get(f"{self.url}/api/profiles/{ref}", headers=self.admin)
        assert response.status_code == 200, response.text
        return response.json()  # type: ignore[no-any-return]


@contextmanager
def live_server(db_url: str, tmp_path: Path, **options: Any) -> Iterator[LiveServer]:
    """A migrated database with a source and an admin key, and a server process on it."""
    db = Database(db_url)
    ensure_schema(db, create_if_empty=True)
    now = SystemClock().now_ms()
    source = create_source(db, "test source", "server", now)
    admin_key, _ = create_admin_key(db, "e2e", now)
    db.dispose()
    server = LiveServer(
        database_url=db_url,
        write_key=source.write_key,
        admin_key=admin_key,
        port=free_port(),
        log_path=tmp_path / "server.log",
        **options,
    )
    server.start()
    try:
        yield server
    finally:
        if server.process is not None:
            server.kill()
