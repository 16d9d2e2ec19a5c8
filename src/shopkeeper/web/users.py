"""Admin UI users: people who log in to the web pages, with argon2id password hashes.

Users are separate from admin API keys: a key is for programs, a user is a person, and
each is revoked on its own.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import sqlalchemy as sa
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from shopkeeper.admin import audit
from shopkeeper.storage import tables as t
from shopkeeper.storage.db import Database

# RFC 9106's second recommended option (argon2-cffi's defaults): 64 MiB, 3 passes.
_hasher = PasswordHasher()


@lru_cache(maxsize=1)
def _dummy_hash() -> str:
    """Verified against when the email is unknown, so that an unknown email costs as
    much time as a wrong password and the answer time does not tell which emails exist.
    Made on first use: hashing takes a noticeable fraction of a second."""
    return _hasher.hash("shopkeeper: no such user")


MIN_PASSWORD = 10
MAX_PASSWORD = 1000
_EMAIL = re.compile(r"^[^@\s]{1,64}@[^@\s]+\.[^@\s]+$")


class UserError(ValueError):
    pass


@dataclass(frozen=True, slots=True)
class User:
    id: int
    email: str
    name: str | None
    created_at: int
    last_login_at: int | None
    disabled_at: int | None

    @property
    def label(self) -> str:
        return self.name or self.email


def normalize_email(email: str) -> str:
    return email.strip().lower()


def check_password(password: str) -> None:
    if len(password) < MIN_PASSWORD:
        raise UserError(f"A password needs at least {MIN_PASSWORD} characters.")
    if len(password) > MAX_PASSWORD:
        raise UserError(f"A password is at most {MAX_PASSWORD} characters.")


def create_user(
    db: Database,
    email: str,
    password: str,
    now_ms: int,
    *,
    name: str | None = None,
    actor: str = "cli",
) -> int:
    """Create a user who can log in to the admin UI; returns the user id."""
    email = normalize_email(email)
    if len(email) > 320 or not _EMAIL.match(email):
        raise UserError(f"{email[:80]!r} is not an email address.")
    name = name.strip() if name else None
    if name is not None and len(name) > 200:
        raise UserError("A name is at most 200 characters.")
    check_password(password)
    password_hash = _hasher.hash(password)
    with db.write() as conn:
        exists = conn.execute(sa.select(t.users.c.id).where(t.users.c.email == email)).first()
        if exists is not None:
            raise UserError(f"A user with the email {email} already exists.")
        user_id = conn.execute(
            t.users.insert()
            .values(email=email, name=name or None, password_hash=password_hash, created_at=now_ms)
            .returning(t.users.c.id)
        ).scalar_one()
        audit.record(
            conn, at_ms=now_ms, actor=actor, action="user.create", target=f"user {user_id}"
        )
    return int(user_id)


def _user(row: Any) -> User:
    return User(
        int(row.id),
        row.email,
        row.name,
        int(row.created_at),
        None if row.last_login_at is None else int(row.last_login_at),
        None if row.disabled_at is None else int(row.disabled_at),
    )


_COLUMNS = (
    t.users.c.id,
    t.users.c.email,
    t.users.c.name,
    t.users.c.created_at,
    t.users.c.last_login_at,
    t.users.c.disabled_at,
)


def list_users(db: Database) -> list[User]:
    with db.read() as conn:
        rows = conn.execute(sa.select(*_COLUMNS).order_by(t.users.c.id)).all()
    return [_user(row) for row in rows]


def authenticate(db: Database, email: str, password: str) -> User | None:
    """The active user with this email and password, or None. Takes about as long
    whether the email is unknown, the user disabled or the password wrong."""
    email = normalize_email(email)
    with db.read() as conn:
        row = conn.execute(
            sa.select(*_COLUMNS, t.users.c.password_hash).where(t.users.c.email == email)
        ).first()
    if row is None or len(password) > MAX_PASSWORD:
        _verify(_dummy_hash(), password[:MAX_PASSWORD])
        return None
    if not _verify(row.password_hash, password) or row.disabled_at is not None:
        return None
    if _hasher.check_needs_rehash(row.password_hash):
        # Parameters got stronger since this hash was made: store a fresh one.
        with db.write() as conn:
            conn.execute(
                t.users.update()
                .where(t.users.c.id == row.id)
                .values(password_hash=_hasher.hash(password))
            )
    return _user(row)


def _verify(password_hash: str, password: str) -> bool:
    try:
        return _hasher.verify(password_hash, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False
