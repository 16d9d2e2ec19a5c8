"""The official Segment and RudderStack Python clients, unchanged, against a real server.

Each client tells the same story for one customer: an anonymous visit (a page, a product
view, an order), then a login (identify with traits), a second order and a page as the
user, and an alias that links the anonymous id to the user id. After the client's flush
and the pipeline's drain, the profile must hold exactly what the story says.

Client errors cannot pass unnoticed: the clients report failed uploads through
`on_error` (asynchronous mode) or raise (synchronous mode), and every HTTP response the
clients received is recorded from their `requests` sessions and must be a 200.
"""

from __future__ import annotations

import base64
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import rudderstack.analytics as rudderstack
import rudderstack.analytics.request as rudderstack_request
import segment.analytics as segment
import segment.analytics.request as segment_request
import sqlalchemy as sa

from shopkeeper.storage import tables as t
from shopkeeper.storage.db import Database
from tests.live import LiveServer, live_server

pytestmark = pytest.mark.slow


@dataclass
class Sent:
    """What a client was asked to send, what it reported and what the server answered."""

    message_ids: list[str] = field(default_factory=list)
    alias_message_id: str = ""
    errors: list[tuple[Exception, Any]] = field(default_factory=list)
    responses: list[dict[str, Any]] = field(default_factory=list)

    def on_error(self, error: Exception, batch: Any) -> None:
        self.errors.append((error, batch))


@contextmanager
def recording(session: Any, sent: Sent) -> Iterator[None]:
    """Record every response a client library's HTTP session receives."""

    def hook(response: Any, *_args: Any, **_kwargs: Any) -> None:
        request = response.request
        sent.responses.append(
            {
                "status": response.status_code,
                "url": request.url,
                "encoding": request.headers.get("Content-Encoding"),
                "authorization": request.headers.get("Authorization"),
            }
        )

    session.hooks["response"].append(hook)
    try:
        yield
    finally:
        session.hooks["response"].remove(hook)


def tell_story(client: Any, sent: Sent, user: str, anon: str, email: str) -> None:
    """Seven messages: three anonymous, three as the user, one alias linking them."""

    def record(result: tuple[bool, dict[str, Any]]) -> str:
        queued, message = result
        assert queued, message
        sent.message_ids.append(message["messageId"])
        return str(message["messageId"])

    record(client.page(anonymous_id=anon, name="Home", properties={"path": "/"}))
    record(
        client.track(
            anonymous_id=anon,
            event="Product Viewed",
            properties={"product_id": "sofa-1", "name": "Sofa", "price": 499.0},
        )
    )
    record(
        client.track(
            anonymous_id=anon,
            event="Order Completed",
            properties={
                "order_id": f"{user}-o1",
                "revenue": 30.25,
                "currency": "USD",
                "products": [{"product_id": "mug-3", "price": 15.125, "quantity": 2}],
            },
        )
    )
    record(client.identify(user, {"email": email, "firstName": "Ana", "lastName": "Berg"}))
    record(
        client.track(
            user,
            "Order Completed",
            {
                "order_id": f"{user}-o2",
                "revenue": 120.5,
                "currency": "USD",
                "products": [
                    {"product_id": "sofa-1", "price": 100.5, "quantity": 1},
                    {"product_id": "pillow-2", "price": 10, "quantity": 2},
                ],
            },
        )
    )
    record(client.page(user, name="Order Confirmation"))
    sent.alias_message_id = record(client.alias(anon, user))


def check_profile(server: LiveServer, sent: Sent, user: str, anon: str, email: str) -> None:
    status = server.wait_drained()
    assert status["parked"] == 0

    view = server.profile(f"user_id:{user}")
    assert server.profile(f"anonymous_id:{anon}") == view
    assert server.profile(f"email:{email}") == view
    assert {(i["type"], i["value"]) for i in view["identities"]} == {
        ("anonymous_id", anon),
        ("user_id", user),
        ("email", email.lower()),
    }
    assert len(view["identities"]) == 3
    assert view["traits"] == {
        "email": email.lower(),
        "firstName": "Ana",
        "lastName": "Berg",
        "name": "Ana Berg",
    }
    assert view["display_name"] == "Ana Berg"
    assert view["is_known"] is True
    computed = view["computed"]
    assert computed["events_count"] == 7
    assert computed["page_views_count"] == 2
    assert computed["track_count"] == 3
    assert computed["product_views_count"] == 1
    assert computed["orders_count"] == 2
    assert computed["total_revenue"] == 150.75  # 30.25 + 120.5
    assert computed["last_order"]["order_id"] == f"{user}-o2"

    # The anonymous profile came first, so it survives; the user's profile joined it.
    anon_profile = view["profile_id"]
    (user_profile,) = view["absorbed_profile_ids"]
    assert user_profile > anon_profile
    (merge,) = view["merges"]
    assert merge["status"] == "merged"
    assert merge["event_type"] == "alias"
    assert merge["message_id"] == sent.alias_message_id
    assert (merge["survivor_id"], merge["other_id"]) == (anon_profile, user_profile)
    assert merge["identifiers"] == [
        {"type": "anonymous_id", "value": anon},
        {"type": "user_id", "value": user},
    ]

    # Every message the client queued is in the log once, applied to this profile, and
    # nothing else was stored for these identities.
    db = Database(server.database_url)
    try:
        with db.read() as conn:
            rows = conn.execute(
                sa.select(
                    t.events.c.message_id,
                    t.events.c.status,
                    t.events.c.profile_id,
                    t.events.c.payload,
                ).where(
                    sa.or_(t.events.c.user_id == user, t.events.c.anonymous_id == anon),
                )
            ).all()
    finally:
        db.dispose()
    assert sorted(row.message_id for row in rows) == sorted(sent.message_ids)
    assert {(row.status, row.profile_id) for row in rows} == {(t.APPLIED, anon_profile)}
    # They really came from the client library, not from a test shortcut.
    assert {row.payload["context"]["library"]["name"] for row in rows} == {"analytics-python"}


def basic(write_key: str) -> str:
    return "Basic " + base64.b64encode(f"{write_key}:".encode()).decode()


def check_responses(
    server: LiveServer, sent: Sent, *, gzip: bool, requests: int | None = None
) -> None:
    assert sent.errors == []
    assert sent.responses, "the client sent nothing"
    if requests is not None:
        assert len(sent.responses) == requests
    for response in sent.responses:
        assert response == {
            "status": 200,
            "url": f"{server.url}/v1/batch",
            "encoding": "gzip" if gzip else None,
            "authorization": basic(server.write_key),
        }


# How long the asynchronous clients wait to fill a batch (default 0.5 s): shorter keeps
# the tests quick and changes nothing in what is sent.
UPLOAD_INTERVAL = 0.1

SEGMENT_MODES = [
    pytest.param({"sync_mode": False, "gzip": False}, id="async"),
    pytest.param({"sync_mode": True, "gzip": False}, id="sync"),
    pytest.param({"sync_mode": False, "gzip": True}, id="async-gzip"),
]


@pytest.mark.parametrize("options", SEGMENT_MODES)
def test_segment_client(db_url: str, tmp_path: Path, options: dict[str, Any]) -> None:
    name = ("sync" if options["sync_mode"] else "async") + ("-gzip" if options["gzip"] else "")
    user, anon = f"seg-{name}-user", f"seg-{name}-anon"
    email = f"Ana.Berg+Seg-{name}@Example.com"
    sent = Sent()
    with live_server(db_url, tmp_path) as server, recording(segment_request._session, sent):
        client = segment.Client(
            server.write_key,
            host=server.url,
            on_error=sent.on_error,
            max_retries=1,
            timeout=10,
            upload_interval=UPLOAD_INTERVAL,
            **options,
        )
        tell_story(client, sent, user, anon, email)
        if options["sync_mode"]:
            # Synchronous mode posts each call before returning and raises on failure.
            check_responses(server, sent, gzip=options["gzip"], requests=7)
        else:
            client.shutdown()  # flush (waits for every upload to finish), then join
            check_responses(server, sent, gzip=options["gzip"])
        check_profile(server, sent, user, anon, email)


RUDDERSTACK_MODES = [
    pytest.param({"sync_mode": False}, id="async"),
    pytest.param({"sync_mode": True}, id="sync"),
]


@pytest.mark.parametrize("options", RUDDERSTACK_MODES)
def test_rudderstack_client(db_url: str, tmp_path: Path, options: dict[str, Any]) -> None:
    """RudderStack gzips by default, authenticates with Basic auth only and puts an
    identify's traits in context.traits."""
    name = "sync" if options["sync_mode"] else "async"
    user, anon = f"rs-{name}-user", f"rs-{name}-anon"
    email = f"Ana.Berg+RS-{name}@Example.com"
    sent = Sent()
    with live_server(db_url, tmp_path) as server, recording(rudderstack_request._session, sent):
        client = rudderstack.Client(
            server.write_key,
            host=server.url,
            on_error=sent.on_error,
            max_retries=1,
            timeout=10,
            upload_interval=UPLOAD_INTERVAL,
            **options,
        )
        tell_story(client, sent, user, anon, email)
        if options["sync_mode"]:
            check_responses(server, sent, gzip=True, requests=7)
        else:
            client.shutdown()
            check_responses(server, sent, gzip=True)
        check_profile(server, sent, user, anon, email)


def test_clients_report_a_rejected_upload(db_url: str, tmp_path: Path) -> None:
    """The error capture above works: a wrong write key reaches on_error as a 401."""
    with live_server(db_url, tmp_path) as server:
        for library, session in (
            (segment, segment_request._session),
            (rudderstack, rudderstack_request._session),
        ):
            sent = Sent()
            with recording(session, sent):
                client = library.Client(
                    "wk_not_a_key",
                    host=server.url,
                    on_error=sent.on_error,
                    max_retries=1,
                    upload_interval=UPLOAD_INTERVAL,
                )
                client.track("someone", "Product Viewed", {"product_id": "p"})
                client.shutdown()
            ((error, batch),) = sent.errors
            assert (error.status, error.code, error.message) == (
                401,
                "unauthorized",
                "Unknown or revoked write key.",
            )
            assert [message["event"] for message in batch] == ["Product Viewed"]
            assert [response["status"] for response in sent.responses] == [401]
        status = server.wait_drained()
        assert (status["pending"], status["parked"]) == (0, 0)
        db = Database(server.database_url)
        try:
            with db.read() as conn:
                assert conn.execute(sa.select(sa.func.count()).select_from(t.events)).scalar() == 0
        finally:
            db.dispose()
