"""Sources and keys: where events come from (each with a write key), the code to paste
into a shop, and the admin API keys for programs."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response

from shopkeeper.admin import keys
from shopkeeper.ingest import sources
from shopkeeper.web.snippets import snippets
from shopkeeper.web.ui import CsrfForm, Session, form_text, now_ms, render, services

router = APIRouter(include_in_schema=False)

KIND_LABELS = {
    "web": "Website",
    "app": "Mobile app",
    "server": "Server or backend",
    "email": "Email tool",
    "pos": "Shop till (point of sale)",
    "crm": "CRM",
    "catalog": "Catalog feed",
    "import": "File imports",
    "other": "Something else",
}

_NOTICES = {
    "created": ("good", "Source created. Its write key and the code for your shop are below."),
    "revoked": ("good", "Write key revoked. Events sent with it are refused within seconds."),
    "key_revoked": ("good", "Admin key revoked. Programs using it can no longer get in."),
}


def _page(
    request: Request,
    session: Session,
    *,
    selected: str | None = None,
    notice: tuple[str, str] | None = None,
    new_key: str | None = None,
    error: str | None = None,
    form: dict[str, str] | None = None,
    status: int = 200,
) -> Response:
    db = services(request).db
    all_sources = sources.list_sources(db)
    active = [s for s in all_sources if s.active]
    chosen = next((s for s in active if str(s.id) == selected), active[0] if active else None)
    context: dict[str, Any] = {
        "title": "Sources & keys",
        "sources": all_sources,
        "chosen": chosen,
        "snippets": snippets(chosen.write_key, str(request.base_url)) if chosen else None,
        "admin_keys": keys.list_admin_keys(db),
        "kinds": KIND_LABELS,
        "notice": notice,
        "new_key": new_key,
        "error": error,
        "form": form or {},
    }
    return render(request, "sources.html", context, session=session, status=status)


@router.get("/sources")
def sources_page(
    request: Request, session: Session, source: str | None = None, notice: str | None = None
) -> Response:
    return _page(request, session, selected=source, notice=_NOTICES.get(notice or ""))


@router.post("/sources")
def create_source(request: Request, session: Session, form: CsrfForm) -> Response:
    name = form_text(form, "name", 300)
    kind = form_text(form, "kind", 40)
    try:
        created = sources.create_source(
            services(request).db, name, kind, now_ms(request), session.actor
        )
    except sources.SourceError as exc:
        return _page(
            request, session, error=str(exc), form={"name": name, "kind": kind}, status=400
        )
    return RedirectResponse(f"/sources?source={created.id}&notice=created", status_code=303)


@router.post("/sources/revoke")
def revoke_source(request: Request, session: Session, form: CsrfForm) -> Response:
    name = form_text(form, "name", 300)
    try:
        sources.revoke_source(services(request).db, name, now_ms(request), session.actor)
    except sources.SourceError as exc:
        return _page(request, session, error=str(exc), status=404)
    return RedirectResponse("/sources?notice=revoked", status_code=303)


@router.post("/sources/keys")
def create_key(request: Request, session: Session, form: CsrfForm) -> Response:
    name = form_text(form, "name", 300)
    try:
        key, _record = keys.create_admin_key(
            services(request).db, name, now_ms(request), session.actor
        )
    except keys.AdminKeyError as exc:
        return _page(request, session, error=str(exc), form={"key_name": name}, status=400)
    # Shown on this response only: it is stored hashed and cannot be shown again.
    return _page(request, session, new_key=key)


@router.post("/sources/keys/{key_id}/revoke")
def revoke_key(request: Request, session: Session, _form: CsrfForm, key_id: str) -> Response:
    if not key_id.isdigit() or len(key_id) > 18:
        return _page(request, session, error="There is no such admin key.", status=404)
    try:
        keys.revoke_admin_key(services(request).db, int(key_id), now_ms(request), session.actor)
    except keys.AdminKeyError as exc:
        return _page(request, session, error=str(exc), status=404)
    return RedirectResponse("/sources?notice=key_revoked#admin-keys", status_code=303)
