"""A journey's update_profile step: traits, tags and consent, written as an identify
message from the "shopkeeper" source so the pipeline applies it like any other."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from shopkeeper.messaging import internal_events
from shopkeeper.storage import tables as t
from shopkeeper.storage.db import Database


def update_profile(
    conn: Connection,
    db: Database,
    profile_id: int,
    *,
    traits: Mapping[str, Any],
    tags: Sequence[str],
    consent: Mapping[str, bool],
    key: str,
    now_ms: int,
) -> str:
    """Queue the identify; returns the step's outcome."""
    new_traits: dict[str, Any] = dict(traits)
    if tags:
        held = conn.execute(
            sa.select(t.profiles.c.traits).where(t.profiles.c.id == profile_id)
        ).scalar()
        current = (held or {}).get("tags") if isinstance(held, Mapping) else None
        merged = [x for x in current if isinstance(x, str)] if isinstance(current, list) else []
        merged += [tag for tag in tags if tag not in merged]
        new_traits["tags"] = merged
    if consent:
        new_traits["consent"] = dict(consent)
    written = internal_events.append(
        conn,
        db,
        profile_id,
        {"type": "identify", "traits": new_traits},
        message_id=key,
        now_ms=now_ms,
    )
    return "updated" if written else "no user id or anonymous id to update"
