"""Admin UI sessions, kept server-side, and the throttle on failed logins.

The browser holds a random token in an HttpOnly cookie; the database holds only its
SHA-256, so a copy of the database does not let anyone in. Logging out or disabling a
user ends the session at once. Each session has its own CSRF token, which every POST
must carry.
"""

from __future__ import annotations

import hashlib
import secrets
import threading
from collections import deque
from dataclasses import dataclass

import sqlalchemy as sa

from shopkeeper.admin import audit
from shopkeeper.storage import tables as t
from shopkeeper.storage.db import Database

COOKIE = "shopkeeper_session"
# A session lasts 12 hours after the last page it opened...
IDLE_MS = 12 * 3600 * 1000
# ...and never longer than a week, however busy.
MAX_AGE_MS = 7 * 24 * 3600 * 1000
# Extend the expiry at most once every few minutes: a write per page view would compete
# with the pipeline for SQLite's single writer for no benefit.
_EXTEND_EVERY_MS = 5 * 60 * 1000


@dataclass(frozen=True, slots=True)
class UiSession:
    token_hash: str
    user_id: int
    email: str
    name: str | None
    csrf_token: str

    @property
    def label(self) -> str:
        return self.name or self.email

    @property
    def actor(self) -> str:
        return audit.user_actor(self.email)


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def start_session(db: Database, user_id: int, email: str, now_ms: int) -> str:
    """A new session for a user who just proved their password; returns the cookie token."""
    token = secrets.token_urlsafe(32)
    with db.write() as conn:
        # Housekeeping: logins are rare, expired sessions few; no scheduler needed.
        conn.execute(t.ui_sessions.delete().where(t.ui_sessions.c.expires_at <= now_ms))
        conn.execute(
            t.ui_sessions.insert().values(
                token_hash=token_hash(token),
                user_id=user_id,
                csrf_token=secrets.token_urlsafe(32),
                created_at=now_ms,
                expires_at=now_ms + IDLE_MS,
            )
        )
        conn.execute(t.users.update().where(t.users.c.id == user_id).values(last_login_at=now_ms))
        audit.record(
            conn,
            at_ms=now_ms,
            actor=audit.user_actor(email),
            action="user.login",
            target=f"user {user_id}",
        )
    return token


def load_session(db: Database, token: str, now_ms: int) -> UiSession | None:
    """The live session this cookie token names, its expiry slid forward; None when the
    token is unknown, expired, or its user disabled."""
    if not token or len(token) > 200:
        return None
    digest = token_hash(token)
    with db.read() as conn:
        row = conn.execute(
            sa.select(
                t.ui_sessions.c.user_id,
                t.ui_sessions.c.csrf_token,
                t.ui_sessions.c.created_at,
                t.ui_sessions.c.expires_at,
                t.users.c.email,
                t.users.c.name,
                t.users.c.disabled_at,
            )
            .join(t.users, t.users.c.id == t.ui_sessions.c.user_id)
            .where(t.ui_sessions.c.token_hash == digest)
        ).first()
    if row is None or row.disabled_at is not None:
        return None
    if row.expires_at <= now_ms or row.created_at + MAX_AGE_MS <= now_ms:
        return None
    new_expiry = min(now_ms + IDLE_MS, row.created_at + MAX_AGE_MS)
    if new_expiry - row.expires_at >= _EXTEND_EVERY_MS:
        with db.write() as conn:
            conn.execute(
                t.ui_sessions.update()
                .where(t.ui_sessions.c.token_hash == digest)
                .values(expires_at=new_expiry)
            )
    return UiSession(digest, int(row.user_id), row.email, row.name, row.csrf_token)


def end_session(db: Database, session: UiSession, now_ms: int) -> None:
    with db.write() as conn:
        conn.execute(t.ui_sessions.delete().where(t.ui_sessions.c.token_hash == session.token_hash))
        audit.record(
            conn,
            at_ms=now_ms,
            actor=session.actor,
            action="user.logout",
            target=f"user {session.user_id}",
        )


class LoginThrottle:
    """Refuses logins for an email (or from an address) after too many recent failures.

    Kept in memory per process: it slows guessing down enough (5 tries per email per
    quarter hour) without a table, and a restart forgetting it costs an attacker little.
    """

    def __init__(
        self, *, per_email: int = 5, per_address: int = 30, window_ms: int = 15 * 60 * 1000
    ) -> None:
        self.per_email = per_email
        self.per_address = per_address
        self.window_ms = window_ms
        self._lock = threading.Lock()
        self._failures: dict[str, deque[int]] = {}

    def _recent(self, key: str, now_ms: int) -> deque[int]:
        times = self._failures.get(key)
        if times is None:
            return deque()
        while times and times[0] <= now_ms - self.window_ms:
            times.popleft()
        if not times:
            del self._failures[key]
        return times

    def blocked(self, email: str, address: str, now_ms: int) -> bool:
        with self._lock:
            return (
                len(self._recent("e:" + email, now_ms)) >= self.per_email
                or len(self._recent("a:" + address, now_ms)) >= self.per_address
            )

    def failed(self, email: str, address: str, now_ms: int) -> None:
        with self._lock:
            if len(self._failures) > 100_000:
                self._failures.clear()  # a flood of made-up emails must not grow memory
            for key in ("e:" + email, "a:" + address):
                self._failures.setdefault(key, deque()).append(now_ms)

    def succeeded(self, email: str) -> None:
        with self._lock:
            self._failures.pop("e:" + email, None)
