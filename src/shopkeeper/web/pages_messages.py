"""Messages: the outbox (every message, newest first, like a mail catcher), one message
as it was rendered with what happened to it, and the template editor with a live preview
for a real customer (the same code path as POST /api/templates/{channel}/preview).

An email's HTML is shown in a sandboxed iframe (srcdoc, no scripts, no same origin,
links inert, the open pixel removed so that looking at it records no open). A srcdoc
document inherits the page's content security policy, so these pages allow inline
styles, which emails are made of; everything else on them is escaped as on every page.
"""

from __future__ import annotations

import re
from typing import Any

import sqlalchemy as sa
from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response
from starlette.datastructures import FormData

from shopkeeper.admin import audit
from shopkeeper.messaging import content as content_mod
from shopkeeper.messaging import messages, template_store, templates
from shopkeeper.messaging.channels import base
from shopkeeper.storage import tables as t
from shopkeeper.web.pages_segments import find_profile
from shopkeeper.web.ui import (
    SECURITY_HEADERS,
    CsrfForm,
    PageNotFound,
    Session,
    form_text,
    int_param,
    now_ms,
    render,
    services,
)

router = APIRouter(include_in_schema=False)

PAGE = 50
STATUSES = (*messages.STATUSES, "held_out")
# Pages that show rendered emails: a srcdoc frame inherits this policy.
FRAME_HEADERS = {
    "Content-Security-Policy": SECURITY_HEADERS["Content-Security-Policy"].replace(
        "style-src 'self'", "style-src 'self' 'unsafe-inline'"
    )
}
# The parts each channel's editor offers: (name, one line or many).
PARTS: dict[str, tuple[tuple[str, bool], ...]] = {
    base.EMAIL: (("subject", True), ("html", False), ("text", False)),
    base.SMS: (("body", False),),
    base.WHATSAPP: (("body", False),),
    base.WEB_PUSH: (
        ("title", True),
        ("body", False),
        ("url", True),
        ("icon", True),
        ("image", True),
    ),
    base.MOBILE_PUSH: (("title", True), ("body", False), ("url", True), ("image", True)),
    base.IN_APP: (("title", True), ("body", False), ("url", True), ("image", True)),
    base.ONSITE: (("title", True), ("body", False), ("url", True), ("image", True)),
    base.WEBHOOK: (("payload", False),),
}
_OPEN_PIXEL = re.compile(r"<img\b[^>]*/t/o/[^>]*>", re.IGNORECASE)


def email_frame(html: str) -> str:
    """An email's HTML for a sandboxed srcdoc frame: without the open pixel, and with
    links opening a new window, which the sandbox forbids, so a click goes nowhere."""
    return '<base target="_blank">' + _OPEN_PIXEL.sub("", html)


def _channel_or_404(channel: str) -> str:
    if channel not in base.CHANNELS:
        raise PageNotFound(f"There is no channel “{channel}”.")
    return channel


# -- the outbox --------------------------------------------------------------------------


def _headline(content: Any) -> str:
    if not isinstance(content, dict):
        return ""
    for key in ("subject", "title", "body"):
        value = content.get(key)
        if isinstance(value, str) and value.strip():
            return value.strip()[:160]
    return ""


def _journey_keys(conn: sa.Connection, ids: set[int]) -> dict[int, str]:
    if not ids:
        return {}
    j = t.journeys
    return {
        int(r.id): r.key for r in conn.execute(sa.select(j.c.id, j.c.key).where(j.c.id.in_(ids)))
    }


@router.get("/messages")
def outbox(
    request: Request,
    session: Session,
    channel: str | None = None,
    status: str | None = None,
    page: str | None = None,
) -> Response:
    channel, status = (channel or "").strip(), (status or "").strip()
    problems = []
    if channel and channel not in base.CHANNELS:
        problems.append(
            f"There is no channel “{channel[:40]}”; channels are {', '.join(base.CHANNELS)}."
        )
    if status and status not in STATUSES:
        problems.append(f"There is no status “{status[:40]}”; statuses are {', '.join(STATUSES)}.")
    page_no = int_param(page, 1, low=1, high=100_000)
    m = t.messages
    query = sa.select(
        m.c.id, m.c.channel, m.c.recipient, m.c.status, m.c.reason, m.c.content,
        m.c.template, m.c.journey_id, m.c.step, m.c.profile_id, m.c.created_at, m.c.sent_at,
    )  # fmt: skip
    counting = sa.select(m.c.status, sa.func.count()).group_by(m.c.status)
    if channel and not problems:
        query = query.where(m.c.channel == channel)
        counting = counting.where(m.c.channel == channel)
    if status and not problems:
        query = query.where(m.c.status == status)
    with services(request).db.read() as conn:
        rows = conn.execute(
            query.order_by(m.c.created_at.desc(), m.c.id.desc())
            .limit(PAGE + 1)
            .offset((page_no - 1) * PAGE)
        ).all()
        counts = {str(s): int(n) for s, n in conn.execute(counting)}
        keys = _journey_keys(conn, {int(r.journey_id) for r in rows if r.journey_id is not None})
    shown = [
        {**r._asdict(), "headline": _headline(r.content), "journey": keys.get(r.journey_id or 0)}
        for r in rows[:PAGE]
    ]
    return render(
        request,
        "outbox.html",
        {
            "title": "Outbox",
            "messages": shown,
            "counts": counts,
            "channel": channel,
            "status": status,
            "channels": base.CHANNELS,
            "statuses": STATUSES,
            "page": page_no,
            "more": len(rows) > PAGE,
            "error": " ".join(problems) or None,
        },
        session=session,
        status=400 if problems else 200,
    )


@router.get("/messages/{raw_id}")
def message_page(request: Request, session: Session, raw_id: str) -> Response:
    if not raw_id.isdigit() or len(raw_id) > 18:
        raise PageNotFound("There is no such message.")
    message_id = int(raw_id)
    m, e = t.messages, t.message_events
    with services(request).db.read() as conn:
        row = conn.execute(sa.select(m).where(m.c.id == message_id)).first()
        if row is None:
            raise PageNotFound(f"There is no message {message_id}.")
        events = conn.execute(
            sa.select(e.c.kind, e.c.at, e.c.detail)
            .where(e.c.message_id == message_id)
            .order_by(e.c.id)
        ).all()
        journey = _journey_keys(conn, {int(row.journey_id)} if row.journey_id else set())
    content = row.content if isinstance(row.content, dict) else None
    settings = services(request).settings
    return render(
        request,
        "message.html",
        {
            "title": f"Message {message_id}",
            "m": row,
            "content": content,
            "frame": email_frame(str(content["html"])) if content and content.get("html") else None,
            "extra_parts": {
                k: v
                for k, v in (content or {}).items()
                if k not in ("subject", "html", "text", "title", "body", "url", "image", "icon")
            },
            "events": events,
            "journey": journey.get(row.journey_id or 0),
            "sender": settings.email_from if row.channel == base.EMAIL else None,
        },
        session=session,
        headers=FRAME_HEADERS,
    )


# -- templates ---------------------------------------------------------------------------------


@router.get("/templates")
def templates_page(request: Request, session: Session) -> Response:
    return _templates_list(request, session)


def _templates_list(
    request: Request, session: Session, *, error: str | None = None,
    values: dict[str, str] | None = None, status: int = 200,
) -> Response:  # fmt: skip
    with services(request).db.read() as conn:
        found = template_store.list_templates(conn)
    return render(
        request,
        "templates_list.html",
        {
            "title": "Message templates",
            "templates": found,
            "channels": base.CHANNELS,
            "error": error,
            "values": values or {"key": "", "channel": base.EMAIL},
        },
        session=session,
        status=status,
    )


@router.get("/templates/new")
def new_template(request: Request, session: Session, key: str = "", channel: str = "") -> Response:
    values = {"key": key.strip()[:200], "channel": channel.strip()[:40]}
    if not template_store.KEY_PATTERN.match(values["key"]):
        error = "A template key is 1 to 100 lower-case letters, digits, _ or -."
        return _templates_list(request, session, error=error, values=values, status=400)
    if values["channel"] not in base.CHANNELS:
        error = f"Choose a channel: {', '.join(base.CHANNELS)}."
        return _templates_list(request, session, error=error, values=values, status=400)
    return RedirectResponse(
        f"/templates/{values['key']}/{values['channel']}?new=1", status_code=303
    )


def _fields(channel: str, parts: dict[str, str]) -> list[dict[str, Any]]:
    known = PARTS[channel]
    names = [name for name, _ in known] + [k for k in parts if k not in dict(known)]
    single = dict(known)
    return [{"name": n, "line": single.get(n, False), "value": parts.get(n, "")} for n in names]


def _editor(
    request: Request, session: Session, key: str, channel: str, *, locale: str = "",
    new: bool = False, parts: dict[str, str] | None = None, error: dict[str, Any] | None = None,
    notice: str | None = None, status: int = 200,
) -> Response:  # fmt: skip
    _channel_or_404(channel)
    with services(request).db.read() as conn:
        variants = template_store.get_variants(conn, key, channel)
    if not variants and not new:
        raise PageNotFound(f"There is no {channel} template “{key}”.")
    if parts is None:
        # A new language starts from the default variant's text, to translate.
        parts = dict(variants.get(locale) or variants.get("") or {})
    return render(
        request,
        "templates_edit.html",
        {
            "title": f"Template {key} ({channel})",
            "key": key,
            "channel": channel,
            "locale": locale,
            "locales": list(variants),
            "is_new_variant": locale not in variants,
            "fields": _fields(channel, parts),
            "error": error,
            "notice": notice,
            "shop_locale": services(request).settings.default_locale,
        },
        session=session,
        status=status,
        headers=FRAME_HEADERS,
    )


@router.get("/templates/{key}/{channel}")
def template_page(
    request: Request, session: Session, key: str, channel: str, locale: str = "", new: str = "",
    notice: str = "",
) -> Response:  # fmt: skip
    try:
        tag = template_store.normalize_locale(locale)
    except template_store.TemplateInvalid as exc:
        error = {"message": exc.message, "field": "locale"}
        return _editor(request, session, key, channel, error=error, status=400)
    saved = "Saved. Messages rendered from now on use this text." if notice == "saved" else None
    return _editor(request, session, key, channel, locale=tag, new=new == "1", notice=saved)


def _posted_parts(form: FormData) -> dict[str, str]:
    return {
        name.removeprefix("part_"): value.replace("\r\n", "\n")
        for name, value in form.multi_items()
        if name.startswith("part_") and isinstance(value, str)
    }


@router.post("/templates/{key}/{channel}")
def save_template(
    request: Request, session: Session, form: CsrfForm, key: str, channel: str
) -> Response:
    _channel_or_404(channel)
    locale = form_text(form, "locale", 100)
    parts = _posted_parts(form)
    svc = services(request)
    now = now_ms(request)
    try:
        with svc.db.write() as conn:
            saved = template_store.save_template(conn, key, channel, locale, parts, now)
            audit.record(
                conn, at_ms=now, actor=session.actor, action="template.save",
                target=f"template {key}/{channel}", details={"locale": saved["locale"]},
            )  # fmt: skip
    except template_store.TemplateInvalid as exc:
        error = {"message": exc.message, "field": exc.field}
        return _editor(
            request, session, key, channel, locale=locale, new=True, parts=parts, error=error,
            status=400,
        )  # fmt: skip
    target = f"/templates/{key}/{channel}?notice=saved"
    return RedirectResponse(target + (f"&locale={saved['locale']}" if saved["locale"] else ""), 303)


def render_preview(
    request: Request, channel: str, parts: dict[str, str], profile_id: int, locale: str | None
) -> tuple[str, dict[str, str]]:
    """As POST /api/templates/{channel}/preview renders unsaved parts: the reader's
    context, the variant picked, every part rendered. Raises RenderError, LookupError."""
    svc = services(request)
    settings = svc.settings
    with svc.db.read() as conn:
        context = content_mod.message_context(
            conn, profile_id, settings=settings, variables={}, now_ms=now_ms(request),
            channel=channel, journey_key="preview",
        )  # fmt: skip
    wanted = locale or context.get("locale")
    _picked, chosen = templates.pick_variant({"": parts}, wanted, settings.default_locale)
    rendered = templates.render(
        chosen,
        context,
        locale=str(wanted or settings.default_locale),
        currency=str(context.get("currency") or settings.shop_currency),
        timezone=str(context.get("timezone") or settings.default_timezone),
    )
    return str(wanted or settings.default_locale), rendered


@router.post("/templates/{key}/{channel}/preview")
def preview(request: Request, session: Session, form: CsrfForm, key: str, channel: str) -> Response:
    """The editor's live preview (an htmx fragment, always 200: a template being typed
    is often broken for a moment)."""
    _channel_or_404(channel)
    typed = form_text(form, "profile", 500)
    out: dict[str, Any] = {"channel": channel, "typed": typed}
    profile_id = find_profile(request, typed) if typed else None
    raw_locale = form_text(form, "render_locale", 100)
    try:
        locale = template_store.normalize_locale(raw_locale) or None
    except template_store.TemplateInvalid as exc:
        out["problem"] = exc.message
        locale = None
    if not typed:
        out["problem"] = (
            "Type a customer (email:ana@example.com, user_id:42) to see the message as they would."
        )
    elif profile_id is None:
        out["problem"] = f"No customer is known by “{typed}”."
    if "problem" not in out and profile_id is not None:
        try:
            out["locale"], out["rendered"] = render_preview(
                request, channel, _posted_parts(form), profile_id, locale
            )
        except templates.RenderError as exc:
            out["render_error"] = {"part": exc.part, "line": exc.line, "message": exc.message}
        except LookupError as exc:
            out["problem"] = str(exc)
    rendered = out.get("rendered") or {}
    out["frame"] = email_frame(rendered["html"]) if rendered.get("html") else None
    return render(request, "templates_preview.html", out, session=session)
