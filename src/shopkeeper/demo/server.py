"""The demo's server: a real `shopkeeper serve` process on the demo database. A process
of its own rather than a thread, so that generating the shop and serving it run on two
cores instead of taking turns at one interpreter lock.
"""

from __future__ import annotations

import collections
import contextlib
import http.client
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

from rich.console import Console
from rich.markup import escape


class DemoError(RuntimeError):
    """What the person running the demo can fix (a busy port, a file in the way)."""


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def port_is_free(host: str, port: int) -> bool:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family) as sock:
        # As uvicorn binds: a port in TIME_WAIT is usable, one with a listener is not.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


class ServerProcess:
    def __init__(
        self, database_url: str, host: str, port: int, env: dict[str, str], console: Console
    ) -> None:
        self.command = [
            sys.executable,
            "-m",
            "shopkeeper",
            "serve",
            "--database-url",
            database_url,
            "--host",
            host,
            "--port",
            str(port),
            "--log-level",
            "warning",
        ]
        self.env = {**os.environ, **env}
        self.console = console
        self.process: subprocess.Popen[str] | None = None
        self.lines: collections.deque[str] = collections.deque(maxlen=30)
        self._reader: threading.Thread | None = None

    def start(self) -> None:
        # Our own interpreter and arguments: nothing here comes from outside.
        self.process = subprocess.Popen(  # noqa: S603
            self.command,
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            text=True,
        )
        self._reader = threading.Thread(target=self._read, name="demo-server-log", daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process is not None
        assert self.process.stdout is not None
        for line in self.process.stdout:
            line = line.rstrip()
            self.lines.append(line)
            # The serve banner repeats what the demo prints; warnings and errors show.
            if line and not line.startswith("Shopkeeper "):
                self.console.print(f"[dim]server |[/dim] {escape(line)}", highlight=False)

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process else None

    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def tail(self) -> str:
        text = "\n".join(self.lines)
        return f"\nserver output:\n{text}" if text else ""

    def wait_ready(self, base_url: str, timeout: float = 60.0) -> None:
        host, _, port = base_url.removeprefix("http://").rpartition(":")
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.running():
                time.sleep(0.1)  # let the reader catch the last lines
                raise DemoError(f"the server did not start{self.tail()}")
            conn = http.client.HTTPConnection(host, int(port), timeout=2)
            try:
                conn.request("GET", "/healthz")
                if conn.getresponse().status == 200:
                    return
            except OSError:
                pass
            finally:
                conn.close()
            time.sleep(0.1)
        raise DemoError(f"the server did not answer within {timeout:.0f} s{self.tail()}")

    def peak_kb(self) -> int | None:
        """The server's peak resident memory (Linux: VmHWM), while it runs."""
        if self.pid is None:
            return None
        try:
            for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
        except OSError:
            return None
        return None

    def serve_until_interrupted(self) -> None:
        assert self.process is not None
        try:
            self.process.wait()
        except KeyboardInterrupt:
            # Ctrl-C in a terminal reaches the server too (same process group): give it a
            # moment to stop cleanly before asking again.
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(timeout=3)

    def stop(self, timeout: float = 30.0) -> None:
        process = self.process
        if process is None:
            return
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
            try:
                process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        if self._reader is not None:
            self._reader.join(timeout=5)
        self.process = None
