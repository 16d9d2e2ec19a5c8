"""What every page shares: the template environment, rendering with the security headers,
the logged-in user (a FastAPI dependency), the CSRF check on every POST, and the
exceptions that become the login redirect, the "form expired" page and the 404 page."""

from __future__ import annotations

import hashlib
import hmac
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import resources
from typing import TYPE_CHECKING, Annotated, Any, TypeVar
from urllib.parse import quote, urlsplit

from fastapi import Depends, Request
from fastapi.responses import HTMLResponse
from jinja2 import Environment, PackageLoader, select_autoescape
from starlette.datastructures import FormData

from shopkeeper import __version__
from shopkeeper.web import format as fmt
from shopkeeper.web.sessions import COOKIE, LoginThrottle, UiSession, load_session

if TYPE_CHECKING:
    from shopkeeper.bootstrap import Services

T = TypeVar("T")

# Pages hold personal data: never cached, never framed, scripts and styles from here only
# (event data is shown on these pages; a policy stops any script that slipped into it).
SECURITY_HEADERS = {
    "Cache-Control": "no-store",
    "Content-Security-Policy": (
        "default-src 'self'; img-src 'self' data: https:; style-src 'self'; "
        "script-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
}


class LoginRequired(Exception):
    def __init__(self, next_url: str) -> None:
        super().__init__("login required")
        self.next_url = next_url


class CsrfRefused(Exception):
    pass


class PageNotFound(Exception):
    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class TtlCache:
    """Values kept for a few seconds, for dashboard numbers that scan whole tables: many
    people polling the dashboard cost one query per period, not one each. Ages are
    measured on the injected clock, like every other time."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._values: dict[str, tuple[int, Any]] = {}

    def get(self, key: str, ttl_ms: int, now_ms: int, compute: Callable[[], T]) -> T:
        with self._lock:
            hit = self._values.get(key)
        if hit is not None and 0 <= now_ms - hit[0] < ttl_ms:
            return hit[1]  # type: ignore[no-any-return]
        value = compute()
        with self._lock:
            self._values[key] = (now_ms, value)
        return value

    def clear(self) -> None:
        with self._lock:
            self._values.clear()


@dataclass(frozen=True)
class StaticFile:
    body: bytes
    media_type: str
    etag: str


def _load_static() -> dict[str, StaticFile]:
    types = {".js": "text/javascript", ".css": "text/css", ".svg": "image/svg+xml"}
    files = {}
    for entry in resources.files("shopkeeper.web").joinpath("static").iterdir():
        suffix = "." + entry.name.rsplit(".", 1)[-1]
        if entry.is_file() and suffix in types:
            body = entry.read_bytes()
            digest = hashlib.sha256(body).hexdigest()[:12]
            files[entry.name] = StaticFile(body, f"{types[suffix]}; charset=utf-8", digest)
    return files


def _environment(static: dict[str, StaticFile]) -> Environment:
    env = Environment(
        loader=PackageLoader("shopkeeper.web", "templates"),
        autoescape=select_autoescape(["html", "svg"]),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(
        money=fmt.money,
        number=fmt.number,
        percent=fmt.percent,
        when=fmt.when,
        day=fmt.day,
        clock=fmt.clock,
        iso=fmt.iso,
        ago=fmt.ago,
        duration=fmt.duration,
        label=fmt.label,
        plain=fmt.plain,
        attribute=fmt.attribute,
    )

    def static_url(name: str) -> str:
        found = static.get(name)
        return f"/static/{name}?v={found.etag}" if found else f"/static/{name}"

    env.globals.update(static_url=static_url, version=__version__)
    return env


@dataclass
class UiState:
    static: dict[str, StaticFile] = field(default_factory=_load_static)
    throttle: LoginThrottle = field(default_factory=LoginThrottle)
    cache: TtlCache = field(default_factory=TtlCache)
    env: Environment = field(init=False)

    def __post_init__(self) -> None:
        self.env = _environment(self.static)


def ui_state(request: Request) -> UiState:
    return request.app.state.ui  # type: ignore[no-any-return]


def services(request: Request) -> Services:
    return request.app.state.services  # type: ignore[no-any-return]


def now_ms(request: Request) -> int:
    return services(request).clock.now_ms()


def render(
    request: Request,
    template: str,
    context: dict[str, Any] | None = None,
    *,
    session: UiSession | None = None,
    status: int = 200,
    headers: dict[str, str] | None = None,
) -> HTMLResponse:
    svc = services(request)
    values = {
        "request": request,
        "path": request.url.path,
        "session": session,
        "now_ms": svc.clock.now_ms(),
        "currency": svc.settings.shop_currency,
        **(context or {}),
    }
    html = ui_state(request).env.get_template(template).render(values)
    return HTMLResponse(html, status_code=status, headers={**SECURITY_HEADERS, **(headers or {})})


def is_htmx(request: Request) -> bool:
    return request.headers.get("hx-request") == "true"


def safe_next(value: str | None) -> str:
    """A place on this site to go after logging in; anything else (another site,
    `//evil.example`, a scheme) becomes the dashboard."""
    if not value or len(value) > 2000 or not value.startswith("/") or value.startswith("//"):
        return "/"
    if "\\" in value or any(ord(ch) < 32 for ch in value):
        return "/"
    return value


def login_url(next_url: str) -> str:
    return "/login" if next_url == "/" else f"/login?next={quote(next_url, safe='/')}"


def current_session(request: Request) -> UiSession | None:
    token = request.cookies.get(COOKIE)
    if not token:
        return None
    return load_session(services(request).db, token, now_ms(request))


def require_session(request: Request) -> UiSession:
    session = current_session(request)
    if session is None:
        target = request.url.path
        if request.url.query:
            target += "?" + request.url.query
        if request.method != "GET" or is_htmx(request):
            # After logging in, return to the page, not to a fragment or a form post.
            current = urlsplit(request.headers.get("hx-current-url") or "/")
            target = current.path + ("?" + current.query if current.query else "")
        raise LoginRequired(safe_next(target))
    return session


Session = Annotated[UiSession, Depends(require_session)]


async def read_form(request: Request) -> FormData:
    """The submitted form; a body that is not a form reads as an empty one."""
    try:
        return await request.form(max_files=2, max_fields=200)
    except Exception:  # malformed multipart or urlencoded bodies: treat as no form
        return FormData()


async def csrf_form(request: Request, session: Session) -> FormData:
    """The form of a POST from a logged-in user, once its CSRF token matched: the
    X-CSRF-Token header (htmx requests) or the csrf_token field (plain forms)."""
    form = await read_form(request)
    token = request.headers.get("x-csrf-token") or form.get("csrf_token")
    if not isinstance(token, str) or not hmac.compare_digest(
        token.encode(), session.csrf_token.encode()
    ):
        raise CsrfRefused()
    return form


CsrfForm = Annotated[FormData, Depends(csrf_form)]


def form_text(form: FormData, name: str, limit: int = 1000) -> str:
    value = form.get(name)
    return value.strip()[:limit] if isinstance(value, str) else ""


def int_param(value: str | None, default: int, *, low: int, high: int) -> int:
    """A query parameter as a number within bounds; junk gives the default, never a 422."""
    try:
        number = int(value) if value is not None else default
    except ValueError:
        return default
    return min(max(number, low), high)
