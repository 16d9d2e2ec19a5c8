"""Puts the admin UI into the application: its pages, its static files, and the
handlers that turn "not logged in", "bad form token" and "no such page" into pages a
person can act on. The JSON APIs (/api, /v1) keep their JSON errors."""

from __future__ import annotations

import inspect
from typing import Any

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import RedirectResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from shopkeeper.web import (
    pages_auth,
    pages_catalog,
    pages_channels,
    pages_customers,
    pages_dashboard,
    pages_imports,
    pages_journeys,
    pages_messages,
    pages_segments,
    pages_sources,
)
from shopkeeper.web.ui import (
    CsrfRefused,
    LoginRequired,
    PageNotFound,
    UiState,
    current_session,
    is_htmx,
    login_url,
    render,
    ui_state,
)

static_router = APIRouter(include_in_schema=False)

# Paths that belong to programs, not people: their errors stay JSON.
_MACHINE_PREFIXES = ("/api/", "/v1/", "/healthz", "/metrics", "/openapi.json", "/docs", "/redoc")


@static_router.get("/static/{name}")
def static_file(request: Request, name: str) -> Response:
    found = ui_state(request).static.get(name)
    if found is None:
        raise PageNotFound("There is no such file.")
    headers = {
        "ETag": f'"{found.etag}"',
        # Pages link to /static/name?v=<hash>, so a file can be cached for good.
        "Cache-Control": "public, max-age=31536000, immutable",
        "X-Content-Type-Options": "nosniff",
    }
    if request.headers.get("if-none-match") == headers["ETag"]:
        return Response(status_code=304, headers=headers)
    return Response(found.body, media_type=found.media_type, headers=headers)


def install(app: FastAPI) -> None:
    """Add the admin UI to `app` (after the API's error handlers are installed)."""
    app.state.ui = UiState()
    for router in (
        static_router,
        pages_auth.router,
        pages_dashboard.router,
        pages_customers.router,
        pages_segments.router,
        pages_journeys.router,
        pages_messages.router,
        pages_channels.router,
        pages_catalog.router,
        pages_sources.router,
        pages_imports.router,
    ):
        app.include_router(router)

    @app.exception_handler(LoginRequired)
    async def _login_required(request: Request, exc: LoginRequired) -> Response:
        target = login_url(exc.next_url)
        if is_htmx(request):
            # htmx follows HX-Redirect with a full page load.
            return Response(status_code=401, headers={"HX-Redirect": target})
        return RedirectResponse(target, status_code=303)

    @app.exception_handler(CsrfRefused)
    async def _csrf_refused(request: Request, _exc: CsrfRefused) -> Response:
        return render(request, "error.html", _csrf_context(), status=403)

    @app.exception_handler(PageNotFound)
    async def _not_found(request: Request, exc: PageNotFound) -> Response:
        return _error_page(request, 404, "Not found", exc.message)

    api_http_handler = app.exception_handlers.get(StarletteHTTPException)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> Any:
        # A person who mistypes an address gets a page with a way back; programs calling
        # the APIs keep the JSON error body.
        wants_page = "text/html" in request.headers.get("accept", "")
        if wants_page and not request.url.path.startswith(_MACHINE_PREFIXES):
            if exc.status_code == 404:
                return _error_page(request, 404, "Not found", "There is no page at this address.")
            if exc.status_code == 405:
                return _error_page(request, 405, "Not allowed", "This address is not a page.")
        if api_http_handler is None:  # pragma: no cover - errors.py always installs one
            raise exc
        answer = api_http_handler(request, exc)
        return await answer if inspect.isawaitable(answer) else answer


def _csrf_context() -> dict[str, Any]:
    return {
        "title": "Please try again",
        "message": (
            "This form was open for too long, or it was sent from another site. "
            "Go back, reload the page and try again."
        ),
    }


def _error_page(request: Request, status: int, title: str, message: str) -> Response:
    return render(
        request,
        "error.html",
        {"title": title, "message": message},
        session=current_session(request),
        status=status,
    )
