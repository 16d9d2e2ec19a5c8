"""What people do with messages, seen by this server: the open pixel, tracked clicks
(a redirect that only goes where the signed link says), and unsubscribing (a page with a
button, and RFC 8058 one-click POSTs from mail clients). Public: no key, the signed
token is the authority."""

from __future__ import annotations

import base64
from typing import TYPE_CHECKING, Annotated

import sqlalchemy as sa
from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from shopkeeper.messaging import internal_events, links, messages
from shopkeeper.messaging.delivery import timeline
from shopkeeper.messaging.reach import CONSENT_CHANNEL
from shopkeeper.storage import tables as t

if TYPE_CHECKING:
    from shopkeeper.bootstrap import Services

router = APIRouter(tags=["Message tracking"], include_in_schema=True)

# A transparent 1x1 GIF.
PIXEL = base64.b64decode("R0lGODlhAQABAIAAAAAAAP///yH5BAEAAAAALAAAAAABAAEAAAIBRAA7")
_NO_CACHE = {"Cache-Control": "no-store, private", "Pragma": "no-cache"}


def _services(request: Request) -> Services:
    return request.app.state.services  # type: ignore[no-any-return]


def _page(title: str, body: str, status: int = 200) -> HTMLResponse:
    html = (
        "<!doctype html><html><head><meta charset='utf-8'>"
        "<meta name='viewport' content='width=device-width, initial-scale=1'>"
        f"<title>{title}</title><style>body{{font-family:system-ui,sans-serif;max-width:32rem;"
        "margin:4rem auto;padding:0 1rem;color:#222}button{font-size:1rem;padding:.6rem 1.2rem}"
        f"</style></head><body>{body}</body></html>"
    )
    return HTMLResponse(html, status_code=status, headers=_NO_CACHE)


def _mark(services: Services, message_id: int, kind: str, **extra: str) -> bool:
    """Record an open or click once per message (the first one), with its timeline event."""
    now = services.clock.now_ms()
    m = t.messages
    column = m.c.opened_at if kind == "opened" else m.c.clicked_at
    with services.db.write() as conn:
        found = messages.get(conn, message_id)
        if found is None:
            return False
        result = conn.execute(
            m.update().where(m.c.id == message_id, column.is_(None)).values({column.key: now})
        )
        messages.record_event(conn, message_id, kind, now, dict(extra))
        if result.rowcount:
            timeline(conn, services.db, found, kind, now, **extra)
        if kind == "clicked":
            # A click is also proof of an open (images are often blocked).
            conn.execute(
                m.update()
                .where(m.c.id == message_id, m.c.opened_at.is_(None))
                .values(opened_at=now)
            )
    return True


@router.get("/t/o/{token}.gif", summary="Open pixel")
def open_pixel(request: Request, token: str) -> Response:
    services = _services(request)
    verified = links.verify(token, secret=services.settings.link_secret)
    if verified is not None and verified[0] == links.OPEN:
        _mark(services, verified[1], "opened")
    return Response(PIXEL, media_type="image/gif", headers=_NO_CACHE)


@router.get("/t/c/{token}", summary="Tracked click: records it and redirects")
def click(request: Request, token: str, u: Annotated[str, Query(max_length=4000)] = "") -> Response:
    services = _services(request)
    verified = links.verify(token, secret=services.settings.link_secret, extra=u)
    if verified is None or verified[0] != links.CLICK or not u.startswith(("http://", "https://")):
        return _page("Link not valid", "<h1>This link is not valid</h1>", status=404)
    _mark(services, verified[1], "clicked", url=u)
    return RedirectResponse(u, status_code=302, headers=_NO_CACHE)


def _unsubscribe_target(services: Services, token: str) -> messages.Message | None:
    verified = links.verify(token, secret=services.settings.link_secret)
    if verified is None or verified[0] != links.UNSUBSCRIBE:
        return None
    with services.db.read() as conn:
        return messages.get(conn, verified[1])


@router.get("/u/{token}", summary="Unsubscribe page", response_class=HTMLResponse)
def unsubscribe_page(request: Request, token: str) -> HTMLResponse:
    services = _services(request)
    message = _unsubscribe_target(services, token)
    if message is None:
        return _page("Link not valid", "<h1>This link is not valid</h1>", status=404)
    channel = message.channel.replace("_", " ")
    shop = services.settings.shop_name
    return _page(
        "Unsubscribe",
        f"<h1>Unsubscribe</h1><p>Stop {channel} messages from {shop}?</p>"
        f"<form method='post'><button type='submit'>Unsubscribe</button></form>",
    )


@router.post("/u/{token}", summary="Unsubscribe (the page's button, or RFC 8058 one-click)")
def unsubscribe(request: Request, token: str) -> HTMLResponse:
    services = _services(request)
    message = _unsubscribe_target(services, token)
    if message is None:
        return _page("Link not valid", "<h1>This link is not valid</h1>", status=404)
    now = services.clock.now_ms()
    consent_channel = CONSENT_CHANNEL.get(message.channel, message.channel)
    with services.db.write() as conn:
        # The withdrawal goes through the pipeline like any consent change (the consent
        # record says where it came from); it is applied within moments.
        internal_events.append(
            conn,
            services.db,
            message.profile_id,
            {"type": "identify", "traits": {"consent": {consent_channel: False}}},
            message_id=f"unsubscribe-{message.id}",
            now_ms=now,
        )
        e = t.message_events
        already = conn.execute(
            sa.select(e.c.id).where(e.c.message_id == message.id, e.c.kind == "unsubscribed")
        ).first()
        if already is None:
            messages.record_event(conn, message.id, "unsubscribed", now, {})
            timeline(conn, services.db, message, "unsubscribed", now)
    return _page(
        "Unsubscribed",
        f"<h1>You are unsubscribed</h1><p>{services.settings.shop_name} will send you no "
        f"more {message.channel.replace('_', ' ')} marketing messages.</p>",
    )
