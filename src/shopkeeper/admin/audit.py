"""The audit log: who did what to which thing, for every admin action (erase, export,
key and source creation, import, user changes). Targets are ids, never personal data:
the log must survive an erase without keeping the person in it."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from shopkeeper.admin.keys import AdminKey
from shopkeeper.storage import tables as t
from shopkeeper.timeutil import ms_to_iso

CLI = "cli"


def key_actor(key: AdminKey) -> str:
    return f"admin key {key.id} ({key.name})"


def user_actor(email: str) -> str:
    return f"user {email}"


def record(
    conn: Connection,
    *,
    at_ms: int,
    actor: str,
    action: str,
    target: str | None = None,
    details: dict[str, Any] | None = None,
) -> None:
    """Write one entry in the caller's transaction (so the entry and the action commit
    or roll back together)."""
    conn.execute(
        t.audit_log.insert().values(
            at=at_ms, actor=actor[:300], action=action, target=target, details=details or {}
        )
    )


def recent(
    conn: Connection, limit: int = 100, offset: int = 0, action: str | None = None
) -> list[dict[str, Any]]:
    """Entries newest first; `action` keeps one kind (`profile.erase`) or, ending in a
    dot, a family (`profile.`)."""
    query = sa.select(t.audit_log)
    if action:
        if action.endswith("."):
            query = query.where(t.audit_log.c.action.startswith(action, autoescape=True))
        else:
            query = query.where(t.audit_log.c.action == action)
    rows = conn.execute(query.order_by(t.audit_log.c.id.desc()).limit(limit).offset(offset)).all()
    return [
        {
            "id": int(row.id),
            "at": ms_to_iso(row.at),
            "actor": row.actor,
            "action": row.action,
            "target": row.target,
            "details": row.details,
        }
        for row in rows
    ]
