"""Admin keys: secrets that open the admin API. Shown once at creation, stored hashed."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass

import sqlalchemy as sa

from shopkeeper.storage import tables as t
from shopkeeper.storage.db import Database

PREFIX = "sk_"


class AdminKeyError(ValueError):
    pass


@dataclass(frozen=True, slots=True)
class AdminKey:
    id: int
    name: str
    key_prefix: str
    created_at: int
    revoked_at: int | None


def _hash(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def create_admin_key(
    db: Database, name: str, now_ms: int, actor: str = "cli"
) -> tuple[str, AdminKey]:
    name = name.strip()
    if not name or len(name) > 200:
        raise AdminKeyError("A key name is 1 to 200 characters.")
    key = PREFIX + secrets.token_urlsafe(32)
    prefix = key[:10]
    with db.write() as conn:
        key_id = conn.execute(
            t.admin_keys.insert()
            .values(name=name, key_hash=_hash(key), key_prefix=prefix, created_at=now_ms)
            .returning(t.admin_keys.c.id)
        ).scalar_one()
        _audit(conn, now_ms, actor, "admin_key.create", key_id, {"name": name})
    return key, AdminKey(int(key_id), name, prefix, now_ms, None)


def verify_admin_key(db: Database, key: str) -> AdminKey | None:
    if not key.startswith(PREFIX):
        return None
    digest = _hash(key)
    with db.read() as conn:
        row = conn.execute(
            sa.select(
                t.admin_keys.c.id,
                t.admin_keys.c.name,
                t.admin_keys.c.key_prefix,
                t.admin_keys.c.created_at,
                t.admin_keys.c.revoked_at,
                t.admin_keys.c.key_hash,
            ).where(t.admin_keys.c.key_hash == digest)
        ).first()
    if row is None or row.revoked_at is not None:
        return None
    if not hmac.compare_digest(row.key_hash, digest):
        return None
    return AdminKey(int(row.id), row.name, row.key_prefix, int(row.created_at), None)


def list_admin_keys(db: Database) -> list[AdminKey]:
    with db.read() as conn:
        rows = conn.execute(
            sa.select(
                t.admin_keys.c.id,
                t.admin_keys.c.name,
                t.admin_keys.c.key_prefix,
                t.admin_keys.c.created_at,
                t.admin_keys.c.revoked_at,
            ).order_by(t.admin_keys.c.id)
        ).all()
    return [AdminKey(int(r[0]), r[1], r[2], int(r[3]), r[4]) for r in rows]


def revoke_admin_key(db: Database, key_id: int, now_ms: int, actor: str = "cli") -> None:
    with db.write() as conn:
        result = conn.execute(
            t.admin_keys.update()
            .where(t.admin_keys.c.id == key_id, t.admin_keys.c.revoked_at.is_(None))
            .values(revoked_at=now_ms)
        )
        if result.rowcount == 0:
            raise AdminKeyError(f"No active admin key with id {key_id}.")
        _audit(conn, now_ms, actor, "admin_key.revoke", key_id, {})


def _audit(
    conn: sa.Connection, at_ms: int, actor: str, action: str, key_id: int, details: dict[str, str]
) -> None:
    # The audit module imports AdminKey from here; importing it lazily avoids a cycle.
    from shopkeeper.admin import audit

    audit.record(
        conn, at_ms=at_ms, actor=actor, action=action, target=f"admin key {key_id}", details=details
    )
