"""Helpers for the admin UI's tests: logging in through the real form, reading the
CSRF token a page carries."""

from __future__ import annotations

import re
from html import unescape
from typing import Any

from tests.harness import NOW, Harness

EMAIL = "marta@shop.example"
PASSWORD = "correct horse battery"


def add_user(h: Harness, email: str = EMAIL, password: str = PASSWORD) -> int:
    from shopkeeper.web.users import create_user

    return create_user(h.services.db, email, password, NOW, name="Marta")


def login_token(page: str) -> str:
    found = re.search(r'name="login_token" value="([^"]+)"', page)
    assert found, page[:500]
    return found.group(1)


def csrf_token(page: str) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert found, page[:500]
    return found.group(1)


def login(client: Any, email: str = EMAIL, password: str = PASSWORD, next_url: str = "/") -> Any:
    """Submit the login form as a browser would; returns the (unfollowed) response."""
    form = client.get("/login")
    assert form.status_code == 200
    return client.post(
        "/login",
        data={
            "email": email,
            "password": password,
            "next": next_url,
            "login_token": login_token(form.text),
        },
        follow_redirects=False,
    )


def logged_in(h: Harness) -> str:
    """Add the user, log in, and return the session's CSRF token."""
    add_user(h)
    response = login(h.client)
    assert response.status_code == 303, response.text
    return csrf_token(h.client.get("/").text)


def text(html: str) -> str:
    """The page's visible text with tags removed and spaces collapsed."""
    html = re.sub(r"<(script|style)\b.*?</\1>", " ", html, flags=re.S)
    return re.sub(r"\s+", " ", unescape(re.sub(r"<[^>]+>", " ", html))).strip()
