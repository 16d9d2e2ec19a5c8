"""Real local servers standing in for messaging providers: an SMTP server (aiosmtpd)
that records every message it accepts and can be told to refuse, and an HTTP server
(Starlette under uvicorn, on a free loopback port in a thread) that records every
request and answers what the test scripted."""

from __future__ import annotations

import asyncio
import email
import json
import socket
import threading
import time
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from email.message import EmailMessage
from email.policy import default as default_policy
from typing import Any
from urllib.parse import parse_qsl

import pytest
import uvicorn
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from shopkeeper.messaging.channels.base import Channel, Outgoing, ProviderError


def free_port() -> int:
    """A loopback port nobody listens on (for aiosmtpd, and for "no server" tests).
    Not tests.live's: that module imports the whole application."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def outgoing(channel: str, recipient: str, content: dict[str, Any], **more: Any) -> Outgoing:
    """A message as delivery hands it to an adapter (message 7, a fixed key)."""
    key = more.pop("key", "message-7-attempt-independent")
    return Outgoing(7, key, channel, recipient, content, **more)


def refusal(channel: Channel, message: Outgoing) -> ProviderError:
    """The ProviderError `channel` raises for `message`."""
    with pytest.raises(ProviderError) as caught:
        channel.send(message)
    return caught.value


# -- SMTP ----------------------------------------------------------------------------------


@dataclass
class ReceivedMail:
    peer: tuple[str, int]
    mail_from: str
    rcpt_tos: list[str]
    raw: bytes

    @property
    def message(self) -> EmailMessage:
        parsed = email.message_from_bytes(self.raw, policy=default_policy)
        assert isinstance(parsed, EmailMessage)
        return parsed


@dataclass
class MailRecorder:
    """An aiosmtpd handler. `rcpt_replies` answers RCPT for an address with a reply of
    its own ("550 5.1.1 No such user"); `data_reply` answers every DATA that way."""

    received: list[ReceivedMail] = field(default_factory=list)
    rcpt_replies: dict[str, str] = field(default_factory=dict)
    data_reply: str | None = None

    async def handle_RCPT(  # aiosmtpd calls hooks by these names
        self, server: Any, session: Any, envelope: Any, address: str, rcpt_options: Any
    ) -> str:
        reply = self.rcpt_replies.get(address)
        if reply is not None:
            return reply
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(  # aiosmtpd calls hooks by these names
        self, server: Any, session: Any, envelope: Any
    ) -> str:
        if self.data_reply is not None:
            return self.data_reply
        self.received.append(
            ReceivedMail(
                peer=tuple(session.peer),
                mail_from=envelope.mail_from,
                rcpt_tos=list(envelope.rcpt_tos),
                raw=envelope.content,
            )
        )
        return "250 Message accepted for delivery"


@dataclass
class SmtpServer:
    host: str
    port: int
    recorder: MailRecorder


@contextmanager
def smtp_server(
    *, login: tuple[str, str] | None = None, idle_timeout: float = 300.0
) -> Iterator[SmtpServer]:
    """aiosmtpd on a free loopback port; with `login`, AUTH is required (over plain
    text: there is no TLS on loopback here)."""
    recorder = MailRecorder()
    options: dict[str, Any] = {"timeout": idle_timeout}
    if login is not None:

        def authenticate(
            server: Any, session: Any, envelope: Any, mechanism: str, data: Any
        ) -> AuthResult:
            ok = (
                isinstance(data, LoginPassword)
                and (
                    data.login.decode(),
                    data.password.decode(),
                )
                == login
            )
            # handled=False: aiosmtpd answers the refusal (535) itself.
            return AuthResult(success=ok, handled=False)

        options |= {
            "authenticator": authenticate,
            "auth_required": True,
            "auth_require_tls": False,
        }
    port = free_port()
    controller = Controller(recorder, hostname="127.0.0.1", port=port, **options)
    controller.start()
    try:
        yield SmtpServer("127.0.0.1", port, recorder)
    finally:
        controller.stop()


# -- HTTP providers ------------------------------------------------------------------------


@dataclass
class RecordedRequest:
    method: str
    path: str
    headers: dict[str, str]  # names in lower case
    body: bytes

    def form(self) -> dict[str, str]:
        return dict(parse_qsl(self.body.decode()))

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Scripted:
    status: int
    body: Any = None  # JSON-encoded unless bytes
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0


class ProviderServer:
    """Answers requests in the order scripted with `reply`; an unscripted request gets
    599, so a test that sends more than it expects fails."""

    def __init__(self) -> None:
        self.url = ""
        self.requests: list[RecordedRequest] = []
        self._script: deque[Scripted] = deque()
        self._lock = threading.Lock()
        self.app = Starlette(
            routes=[Route("/{path:path}", self._answer, methods=["GET", "POST", "PUT"])]
        )

    def reply(
        self,
        status: int,
        body: Any = None,
        *,
        headers: dict[str, str] | None = None,
        delay: float = 0.0,
    ) -> None:
        with self._lock:
            self._script.append(Scripted(status, body, headers or {}, delay))

    def reset(self) -> None:
        with self._lock:
            self.requests.clear()
            self._script.clear()

    async def _answer(self, request: Request) -> Response:
        body = await request.body()
        with self._lock:
            self.requests.append(
                RecordedRequest(
                    request.method,
                    request.url.path,
                    {name.lower(): value for name, value in request.headers.items()},
                    body,
                )
            )
            scripted = self._script.popleft() if self._script else Scripted(599, "unscripted")
        if scripted.delay:
            await asyncio.sleep(scripted.delay)
        if isinstance(scripted.body, bytes):
            content = scripted.body
            media_type = "application/octet-stream"
        else:
            content = json.dumps(scripted.body).encode() if scripted.body is not None else b""
            media_type = "application/json"
        return Response(
            content, status_code=scripted.status, headers=scripted.headers, media_type=media_type
        )


@contextmanager
def provider_server() -> Iterator[ProviderServer]:
    provider = ProviderServer()
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    config = uvicorn.Config(
        provider.app,
        log_level="warning",
        lifespan="off",
        access_log=False,
        timeout_graceful_shutdown=1,
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the provider server did not start")
        time.sleep(0.01)
    provider.url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    try:
        yield provider
    finally:
        server.should_exit = True
        thread.join(timeout=5)
        sock.close()
