"""Logging in and out.

The login form carries its own CSRF token (a cookie and a matching hidden field), so
another site cannot log a browser in to an account of its choosing. A failed login
says only that the email and password do not match, whatever the reason.
"""

from __future__ import annotations

import hmac
import secrets
from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import RedirectResponse, Response
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData

from shopkeeper.web import sessions
from shopkeeper.web.ui import (
    SECURITY_HEADERS,
    CsrfForm,
    Session,
    current_session,
    form_text,
    now_ms,
    read_form,
    render,
    safe_next,
    services,
    ui_state,
)
from shopkeeper.web.users import authenticate, normalize_email

router = APIRouter(include_in_schema=False)

LOGIN_COOKIE = "shopkeeper_login"
_BAD_LOGIN = "That email and password do not match an account. Check both and try again."
_THROTTLED = (
    "Too many failed attempts. Wait 15 minutes and try again, or ask the person who "
    "runs Shopkeeper to set a new password for you."
)


def _secure(request: Request) -> bool:
    return request.url.scheme == "https"


def _login_page(
    request: Request, next_url: str, *, email: str = "", error: str | None = None, status: int = 200
) -> Response:
    token = request.cookies.get(LOGIN_COOKIE) or secrets.token_urlsafe(24)
    response = render(
        request,
        "login.html",
        {"next": next_url, "email": email, "error": error, "login_token": token},
        status=status,
    )
    response.set_cookie(
        LOGIN_COOKIE,
        token,
        httponly=True,
        samesite="lax",
        secure=_secure(request),
        max_age=3600,
    )
    return response


@router.get("/login")
def login_form(request: Request, next: str | None = None) -> Response:
    target = safe_next(next)
    if current_session(request) is not None:
        return RedirectResponse(target, status_code=303, headers=SECURITY_HEADERS)
    return _login_page(request, target)


@router.post("/login")
async def login(request: Request, form: Annotated[FormData, Depends(read_form)]) -> Response:
    target = safe_next(form_text(form, "next", 2000))
    email = normalize_email(form_text(form, "email", 320))
    password = form.get("password")
    password = password if isinstance(password, str) else ""
    cookie_token = request.cookies.get(LOGIN_COOKIE, "")
    form_token = form_text(form, "login_token", 100)
    if not cookie_token or not hmac.compare_digest(cookie_token.encode(), form_token.encode()):
        error = "Your browser must accept cookies from this site to log in. Please try again."
        return _login_page(request, target, email=email, error=error, status=403)
    if not email or not password:
        return _login_page(
            request, target, email=email, error="Enter your email and password.", status=400
        )
    throttle = ui_state(request).throttle
    address = request.client.host if request.client else "unknown"
    now = now_ms(request)
    if throttle.blocked(email, address, now):
        return _login_page(request, target, email=email, error=_THROTTLED, status=429)
    db = services(request).db
    # argon2 takes tens of milliseconds on purpose: off the event loop.
    user = await run_in_threadpool(authenticate, db, email, password)
    if user is None:
        throttle.failed(email, address, now)
        return _login_page(request, target, email=email, error=_BAD_LOGIN, status=401)
    throttle.succeeded(email)
    token = await run_in_threadpool(sessions.start_session, db, user.id, user.email, now)
    response = RedirectResponse(target, status_code=303, headers=SECURITY_HEADERS)
    response.set_cookie(
        sessions.COOKIE, token, httponly=True, samesite="lax", secure=_secure(request), path="/"
    )
    response.delete_cookie(LOGIN_COOKIE)
    return response


@router.post("/logout")
def logout(request: Request, session: Session, _form: CsrfForm) -> Response:
    sessions.end_session(services(request).db, session, now_ms(request))
    response = RedirectResponse("/login?logged_out=1", status_code=303, headers=SECURITY_HEADERS)
    response.delete_cookie(sessions.COOKIE, path="/")
    return response
